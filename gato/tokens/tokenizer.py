"""The unified tokenizer: text, images, discrete and continuous values into one sequence.

Every modality maps into the id table of `gato.vocab`. Within a timestep the order is: text
tokens, image patches, discrete values, continuous values (each modality's nested keys in
lexicographic order, tensors row-major), then the separator, then the action tokens. Episodes are
timesteps in time order.

Episodes are tokenized in one vectorised pass over time (each modality for all timesteps at once,
then interleaved by index arithmetic), so a 1,000-step episode costs a handful of numpy calls rather
than thousands.

Clipping, as in Gato: continuous observations are mu-law encoded and values whose encoding falls
outside [-1, 1] (|x| > M) are clipped to the end bins. Continuous actions reach the tokens on one
scale, [-1, 1] mapped linearly onto the task's action bounds (`ActionSpec.bounds`), and are
binned uniformly without mu-law. A dataset stores them either on that scale already
(`action_scale="unit"`: this project's collections) or as the environment's own values
(`action_scale="raw"`: JAT, Minari), which are mapped by the bounds here; raw values outside the
bounds are clipped to them (the environment would clip them too) with a warning that counts them.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gato.codecs import (
    Patches,
    bins_to_continuous,
    check_image,
    continuous_to_bins,
    frames_to_patches,
    image_to_patches,
    mu_law_decode,
    mu_law_encode,
    normalize_patches,
    patch_position_bins,
)
from gato.schema import (
    ACTION_COLUMNS,
    MODALITIES,
    OBSERVATION_COLUMNS,
    ActionSpec,
    check_action_scale,
)
from gato.tokens.batch import TokenSequence
from gato.tokens.statistics import ObservationStatistics
from gato.vocab import (
    BOS_ID,
    CONTINUOUS_OFFSET,
    DISCRETE_OFFSET,
    EOS_ID,
    NO_LOCAL_POSITION,
    NUM_CONTINUOUS_BINS,
    NUM_DISCRETE_VALUES,
    PAD_ID,
    PADDED_VOCAB_SIZE,
    PATCH_ID,
    SEPARATOR_ID,
    SPECIAL_TOKENS,
    TEXT_VOCAB_SIZE,
    VOCAB_SIZE,
)

__all__ = [
    "BOS_ID",
    "CONTINUOUS_OFFSET",
    "DISCRETE_OFFSET",
    "EOS_ID",
    "NUM_CONTINUOUS_BINS",
    "NUM_DISCRETE_VALUES",
    "PAD_ID",
    "PADDED_VOCAB_SIZE",
    "PATCH_ID",
    "SEPARATOR_ID",
    "SPECIAL_TOKENS",
    "TEXT_VOCAB_SIZE",
    "VOCAB_SIZE",
    "GatoTokenizer",
    "Patches",
    "bins_to_continuous",
    "continuous_to_bins",
    "image_to_patches",
    "mu_law_decode",
    "mu_law_encode",
    "normalize_patches",
    "patch_position_bins",
]

# ---------------------------------------------------------------------------------------------
# Validation helpers: every error names the field and the problem.
# ---------------------------------------------------------------------------------------------


def _check_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        bad = values[~np.isfinite(values)].ravel()[0]
        raise ValueError(f"{name}: continuous values must be finite, found {bad}")


def _as_integers(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or (array != np.round(array)).any():
            raise ValueError(f"{name}: discrete values must be integers, got non-integral floats")
        return array.astype(np.int64)
    raise ValueError(f"{name}: discrete values must be integers, got dtype {array.dtype}")


def _as_floats(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name}: continuous values must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    _check_finite(array, name)
    return array


def _flatten_keys(value: Any, name: str) -> list[tuple[str, Any]]:
    """Nested mappings -> [(path, leaf)] in lexicographic key order at every level."""
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for key in sorted(value, key=str):
            out.extend(_flatten_keys(value[key], f"{name}/{key}"))
        return out
    return [(name, value)]


# ---------------------------------------------------------------------------------------------
# Sequence assembly
# ---------------------------------------------------------------------------------------------


@dataclass
class _Segment:
    """One piece of every timestep: flat ids for all steps, and how many belong to each step."""

    ids: np.ndarray  # (sum(lengths),) int64
    lengths: np.ndarray  # (T,) int64
    observation: bool
    loss: bool


def _interleave(segments: list[_Segment]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lay segments out step by step (segment order within a step) by index arithmetic.

    Returns ids (L,), local positions (L,), loss mask (L,) and each step's first index (T,).
    """
    lengths = np.stack([s.lengths for s in segments], axis=1)  # (T, K)
    step_len = lengths.sum(axis=1)
    step_start = np.cumsum(step_len) - step_len
    seg_start = step_start[:, None] + np.cumsum(lengths, axis=1) - lengths  # (T, K)
    total = int(step_len.sum())
    ids = np.empty(total, dtype=np.int64)
    local = np.full(total, NO_LOCAL_POSITION, dtype=np.int64)
    loss = np.zeros(total, dtype=bool)
    for k, seg in enumerate(segments):
        n = int(seg.lengths.sum())
        if n == 0:
            continue
        within = np.cumsum(seg.lengths) - seg.lengths
        dest = np.repeat(seg_start[:, k] - within, seg.lengths) + np.arange(n)
        ids[dest] = seg.ids
        loss[dest] = seg.loss
        if seg.observation:
            local[dest] = dest - np.repeat(step_start, seg.lengths)
    return ids, local, loss, step_start.astype(np.int64)


class GatoTokenizer:
    """Turns observations, actions, images and text into `TokenSequence`s, and actions back.

    Args:
        text_model_path: SentencePiece model; default `default_text_model_path()`.
            Loaded on first use, so non-text work never needs it.
        patch_size: side of the square image patches.
        image_channels: channels every patch carries; images with fewer are zero-padded so
            RGB captions and 4-frame Atari stacks share one patch shape (and one embedding).
        num_position_bins: quantisation of patch row/column intervals.
        mu, M: mu-law parameters for continuous observations.
        text_observation_loss: whether text inside control observations (a mission string) is a
            prediction target. Gato trains on all text tokens, so True by default.
    """

    def __init__(
        self,
        text_model_path: str | Path | None = None,
        *,
        patch_size: int = 16,
        image_channels: int = 4,
        num_position_bins: int = 128,
        mu: float = 100.0,
        M: float = 256.0,
        text_observation_loss: bool = True,
    ) -> None:
        if patch_size < 1 or image_channels < 1 or num_position_bins < 1:
            raise ValueError("patch_size, image_channels and num_position_bins must be positive")
        self.text_model_path = text_model_path
        self.patch_size = patch_size
        self.image_channels = image_channels
        self.num_position_bins = num_position_bins
        self.mu = mu
        self.M = M
        self.text_observation_loss = text_observation_loss
        self.observation_statistics: ObservationStatistics | None = None
        self._text_model = None

    def standardising(self, statistics: ObservationStatistics | None) -> GatoTokenizer:
        """This tokenizer, tokenizing each continuous observation value as (x - mean) / std of
        `statistics` (one task's, `gato.tokens.statistics`) before mu-law; None: as it comes.
        A copy: the text model is shared, `self` is unchanged."""
        if statistics is not None and not isinstance(statistics, ObservationStatistics):
            raise TypeError(
                f"statistics must be ObservationStatistics or None, got {type(statistics)}"
            )
        twin = copy.copy(self)
        twin.observation_statistics = statistics
        return twin

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> GatoTokenizer:
        """Build from any config with the same-named attributes (a `GatoConfig`)."""
        names = ("patch_size", "image_channels", "num_position_bins")
        params = {n: getattr(config, n) for n in names if hasattr(config, n)}
        params.update(kwargs)
        return cls(**params)

    # -- text ----------------------------------------------------------------------------------

    @property
    def text_model(self):
        """The SentencePiece processor (loaded lazily)."""
        if self._text_model is None:
            from gato.tokens.text_model import load_text_model

            model = load_text_model(self.text_model_path)
            if model.get_piece_size() > TEXT_VOCAB_SIZE:
                raise ValueError(
                    f"text model has {model.get_piece_size()} pieces, more than the "
                    f"{TEXT_VOCAB_SIZE} text ids of the vocabulary"
                )
            self._text_model = model
        return self._text_model

    def encode_text(self, text: str) -> np.ndarray:
        """Text -> (n,) int64 ids in [0, 32000). Exact round trip through `decode_text`."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected a str, got {type(text).__name__}")
        return np.asarray(self.text_model.encode(text), dtype=np.int64)

    def _encode_texts(self, texts: Sequence[str], name: str) -> list[np.ndarray]:
        for t in texts:
            if not isinstance(t, str):
                raise ValueError(f"{name}: expected str, got {type(t).__name__}")
        # Missions repeat every step: encode each distinct string once.
        unique = list(dict.fromkeys(texts))
        encoded = dict(zip(unique, self.text_model.encode(unique), strict=True))
        return [np.asarray(encoded[t], dtype=np.int64) for t in texts]

    def decode_text(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text ids -> str; special tokens (EOS, BOS, padding) are dropped, other ids rejected."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        ids = ids[~np.isin(ids, (EOS_ID, BOS_ID, PAD_ID))]
        bad = ids[(ids < 0) | (ids >= TEXT_VOCAB_SIZE)]
        if bad.size:
            raise ValueError(f"text ids must lie in [0, {TEXT_VOCAB_SIZE}), got {int(bad[0])}")
        return self.text_model.decode(ids.tolist())

    # -- discrete and continuous values --------------------------------------------------------

    def encode_discrete(
        self, values: Any, name: str = "discrete", num_values: int = NUM_DISCRETE_VALUES
    ) -> np.ndarray:
        """Integers in [0, num_values) -> ids in [32000, 33024), same shape."""
        array = _as_integers(values, name)
        if array.size and (array.min() < 0 or array.max() >= num_values):
            bad = array[(array < 0) | (array >= num_values)].ravel()[0]
            raise ValueError(f"{name}: discrete values must lie in [0, {num_values}), got {bad}")
        return array + DISCRETE_OFFSET

    def decode_discrete(self, ids: Any, name: str = "discrete") -> np.ndarray:
        ids = _as_integers(ids, name)
        _check_range(ids, DISCRETE_OFFSET, DISCRETE_OFFSET + NUM_DISCRETE_VALUES, name)
        return ids - DISCRETE_OFFSET

    def encode_continuous(
        self, values: Any, name: str = "continuous", mu_law: bool = True
    ) -> np.ndarray:
        """Floats -> ids in [33024, 34048), same shape: mu-law (optional), clip, 1024 bins."""
        array = _as_floats(values, name)
        y = mu_law_encode(array, self.mu, self.M) if mu_law else np.clip(array, -1.0, 1.0)
        return continuous_to_bins(y) + CONTINUOUS_OFFSET

    def decode_continuous(
        self, ids: Any, name: str = "continuous", mu_law: bool = True
    ) -> np.ndarray:
        """Ids -> bin centres (through the inverse mu-law when `mu_law`), float64."""
        ids = _as_integers(ids, name)
        _check_range(ids, CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS, name)
        y = bins_to_continuous(ids - CONTINUOUS_OFFSET)
        return mu_law_decode(y, self.mu, self.M) if mu_law else y

    # -- images ----------------------------------------------------------------------------------

    def image_to_patches(self, image: np.ndarray) -> Patches:
        return image_to_patches(image, self.patch_size)

    def _image_segment(self, frames: Any, name: str, num_steps: int):
        """(T, H, W, C) frames -> placeholder segment, pixels (T, N, C', P, P), bins (T, N, 4)."""
        try:
            array = (
                np.stack([np.asarray(f) for f in frames])
                if not isinstance(frames, np.ndarray)
                else frames
            )
        except ValueError as err:
            raise ValueError(
                f"{name}: images within one episode must share a shape ({err})"
            ) from None
        if array.dtype != np.uint8:
            raise ValueError(f"{name}: images must be uint8, got dtype {array.dtype}")
        if array.ndim == 3:
            array = array[..., None]
        if array.ndim != 4:
            raise ValueError(
                f"{name}: expected images (T, H, W) or (T, H, W, C), got shape {array.shape}"
            )
        _check_steps(array, num_steps, name)
        channels = array.shape[-1]
        if channels > self.image_channels:
            raise ValueError(
                f"{name}: images have {channels} channels, more than image_channels="
                f"{self.image_channels}"
            )
        patches = frames_to_patches(array, self.patch_size, resize=True)
        pixels = patches.pixels
        if channels < self.image_channels:
            pad = [(0, 0), (0, 0), (0, self.image_channels - channels), (0, 0), (0, 0)]
            pixels = np.pad(pixels, pad)
        bins = patch_position_bins(patches.intervals, patches.image_size, self.num_position_bins)
        n = pixels.shape[1]
        segment = _Segment(
            ids=np.full(num_steps * n, PATCH_ID, dtype=np.int64),
            lengths=np.full(num_steps, n, dtype=np.int64),
            observation=True,
            loss=False,
        )
        return segment, pixels, np.broadcast_to(bins, (num_steps, n, 4))

    # -- timesteps and episodes ----------------------------------------------------------------

    def encode_episode(
        self,
        observations: Mapping[str, Any],
        actions: Mapping[str, Any] | None = None,
        action_spec: ActionSpec | None = None,
        action_scale: str = "unit",
    ) -> TokenSequence:
        """Tokenize an episode given time-major arrays.

        Args:
            observations: {type: value} with type in text, image, discrete, continuous (or the
                JAT column names `text_observations`, ...); a value is an array with a leading
                time dimension T (a list of T strings for text) or a nested mapping of such
                arrays, read in lexicographic key order.
            actions: {"discrete": (T, ...) ints} or {"continuous": (T, ...) floats} (or
                `discrete_actions` / `continuous_actions`); T or T - 1 steps. A timestep with no
                action still ends with the separator, ready for the policy to act.
            action_spec: checks and encodes the actions; inferred from the action type if None.
            action_scale: how `actions` are stored when continuous: "unit" ([-1, 1], taken as
                they are) or "raw" (the environment's values, mapped into [-1, 1] by
                `action_spec`'s bounds; [-1, 1] without a spec).

        Returns:
            a `TokenSequence` with one timestep per observation step.
        """
        by_type = _group_observations(observations)
        num_steps = _count_steps(by_type)
        segments: list[_Segment] = []
        pixels, bins = [], []
        for name, texts in by_type.get("text", []):
            if isinstance(texts, str):
                raise ValueError(f"{name}: expected a list of T strings, got one str")
            encoded = self._encode_texts(list(texts), name)
            _check_steps(encoded, num_steps, name)
            segments.append(
                _Segment(
                    ids=np.concatenate(encoded) if encoded else np.zeros(0, np.int64),
                    lengths=np.array([len(e) for e in encoded], dtype=np.int64),
                    observation=True,
                    loss=self.text_observation_loss,
                )
            )
        for name, frames in by_type.get("image", []):
            segment, p, b = self._image_segment(frames, name, num_steps)
            segments.append(segment)
            pixels.append(p)
            bins.append(b)
        for name, values in by_type.get("discrete", []):
            ids = self.encode_discrete(values, name)
            segments.append(_fixed_segment(ids, num_steps, name, observation=True, loss=False))
        for name, values in self._standardised(by_type.get("continuous", []), num_steps):
            ids = self.encode_continuous(values, name, mu_law=True)
            segments.append(_fixed_segment(ids, num_steps, name, observation=True, loss=False))
        segments.append(
            _Segment(
                ids=np.full(num_steps, SEPARATOR_ID, dtype=np.int64),
                lengths=np.ones(num_steps, dtype=np.int64),
                observation=False,
                loss=False,
            )
        )
        if actions is not None:
            segments.append(self._action_segment(actions, action_spec, num_steps, action_scale))

        ids, local, loss, step_start = _interleave(segments)
        if pixels:
            # Placeholders of one step come key by key, and steps in time order.
            all_pixels = np.concatenate(pixels, axis=1)  # (T, N_step, C, P, P)
            all_bins = np.concatenate(bins, axis=1)  # (T, N_step, 4)
            patches = all_pixels.reshape(-1, *all_pixels.shape[2:])
            patch_positions = np.ascontiguousarray(all_bins.reshape(-1, 4))
        else:
            patches = self._no_patches()
            patch_positions = np.zeros((0, 4), np.int64)
        return TokenSequence(ids, local, loss, patches, patch_positions, step_start)

    def _standardised(self, leaves: list[tuple[str, Any]], num_steps: int) -> list[tuple[str, Any]]:
        """The continuous leaves, standardised by `observation_statistics` when set (the
        statistics cover the leaves' values flattened and concatenated in order)."""
        stats = self.observation_statistics
        if stats is None or not leaves:
            return leaves
        arrays = [_as_floats(values, name) for name, values in leaves]
        for (name, _), array in zip(leaves, arrays, strict=True):
            if array.ndim == 0 or array.shape[0] != num_steps:
                raise ValueError(f"{name}: expected {num_steps} timesteps, got {array.shape}")
        flat = np.concatenate([a.reshape(num_steps, -1) for a in arrays], axis=1)
        try:
            z = stats.standardise(flat)
        except ValueError as err:
            names = ", ".join(name for name, _ in leaves)
            raise ValueError(f"{names}: {err}") from None
        out, start = [], 0
        for (name, _), array in zip(leaves, arrays, strict=True):
            width = int(np.prod(array.shape[1:], dtype=np.int64))
            out.append((name, z[:, start : start + width].reshape(array.shape)))
            start += width
        return out

    def _no_patches(self) -> np.ndarray:
        return np.zeros((0, self.image_channels, self.patch_size, self.patch_size), np.uint8)

    def _action_segment(
        self, actions: Mapping[str, Any], spec: ActionSpec | None, num_steps: int, scale: str
    ) -> _Segment:
        if not isinstance(actions, Mapping) or len(actions) != 1:
            raise ValueError(
                "actions must be a mapping with exactly one of 'discrete' or 'continuous' "
                f"(or the JAT column names), got {actions!r:.80}"
            )
        ((key, values),) = actions.items()
        kind = ACTION_COLUMNS.get(key, key)
        if kind not in ("discrete", "continuous"):
            raise ValueError(f"unknown action type {key!r}; expected 'discrete' or 'continuous'")
        if spec is not None and spec.kind != kind:
            raise ValueError(f"actions are {kind} but the action spec is {spec.kind}")
        name = f"actions/{key}"
        array = np.asarray(values)
        if array.ndim == 0 or array.shape[0] not in (num_steps, num_steps - 1):
            raise ValueError(
                f"{name}: expected {num_steps} (or {num_steps - 1}) steps on the leading axis, "
                f"got shape {array.shape}"
            )
        if spec is not None and int(np.prod(array.shape[1:], dtype=np.int64)) != spec.num_tokens:
            raise ValueError(
                f"{name}: each action must have shape {spec.shape}, got {array.shape[1:]}"
            )
        if kind == "discrete":
            num_values = spec.num_values if spec is not None else NUM_DISCRETE_VALUES
            ids = self.encode_discrete(array, name, num_values=num_values)
        else:
            if check_action_scale(scale) == "raw":
                array = _raw_to_unit(array, spec, name)
            ids = self.encode_continuous(array, name, mu_law=spec.mu_law if spec else False)
        segment = _fixed_segment(ids, array.shape[0], name, observation=False, loss=True)
        if array.shape[0] < num_steps:
            segment.lengths = np.append(segment.lengths, 0)
        return segment

    def encode_timestep(
        self,
        observation: Mapping[str, Any],
        action: Any = None,
        action_spec: ActionSpec | None = None,
        action_scale: str = "unit",
    ) -> TokenSequence:
        """One timestep: observation tokens, separator, then the action's tokens if given.

        `observation` is {type: value} as in `encode_episode` without the time axis (text a str).
        `action` is a mapping {"discrete"|"continuous": value}, or a bare value with `action_spec`;
        `action_scale` as in `encode_episode`.
        """
        batched = {}
        for key, value in _check_observation_mapping(observation).items():
            batched[key] = _add_time_axis(value)
        actions = None
        if action is not None:
            if not isinstance(action, Mapping):
                if action_spec is None:
                    raise ValueError("a bare action needs an action_spec (or pass {kind: value})")
                action = {action_spec.kind: action}
            actions = {k: np.asarray(v)[None] for k, v in action.items()}
        return self.encode_episode(batched, actions, action_spec, action_scale)

    def encode_jat_episode(
        self,
        row: Mapping[str, Any],
        action_spec: ActionSpec | None = None,
        action_scale: str = "unit",
    ) -> TokenSequence:
        """An episode row in the JAT column schema (rewards are not tokens in Gato).

        `action_spec` (the task's) checks the actions; `action_scale` says how the dataset stores
        continuous ones (see `encode_episode`; JAT's own datasets are "raw").
        """
        observations = {k: row[k] for k in OBSERVATION_COLUMNS if row.get(k) is not None}
        actions = {k: row[k] for k in ACTION_COLUMNS if row.get(k) is not None}
        if not observations:
            raise ValueError(
                f"episode has none of the observation columns {sorted(OBSERVATION_COLUMNS)}; "
                f"columns: {sorted(row)}"
            )
        if len(actions) > 1:
            raise ValueError(f"episode has both {sorted(actions)}; expected one action column")
        return self.encode_episode(observations, actions or None, action_spec, action_scale)

    def encode_caption(
        self, image: np.ndarray, text: str, question: str | None = None
    ) -> TokenSequence:
        """An image-text pair: patches, BOS, [question,] text, EOS.

        The patches are the observation (local positions, no loss); the text and EOS are targets.
        A question (visual question answering) is context for the answer, not a target, so the
        loss measures answering rather than guessing the question.
        """
        patches = self.encode_episode({"image": check_image(image, "image")[None]})
        patches = patches.slice(0, len(patches) - 1)  # no separator: the caption is not an action
        parts = [patches]
        if question is not None:
            context = self.encode_text_sequence(question)
            context = context.slice(0, len(context) - 1)  # BOS + question, no EOS
            context.loss_mask[:] = False
            parts.append(context)
            # The text model adds no dummy prefix: a space keeps "...square? red" two words.
            answer = self.encode_text_sequence(" " + text)
            parts.append(answer.slice(1, len(answer)))  # the answer continues after the question
        else:
            parts.append(self.encode_text_sequence(text))
        sequence = TokenSequence.concatenate(parts)
        sequence.timestep_starts = np.zeros(1, np.int64)
        return sequence

    def encode_text_sequence(self, text: str) -> TokenSequence:
        """Free text: BOS, the text's tokens, EOS; every token after BOS is a target."""
        ids = np.concatenate([[BOS_ID], self.encode_text(text), [EOS_ID]]).astype(np.int64)
        loss = np.ones(len(ids), dtype=bool)
        loss[0] = False
        return TokenSequence(
            ids=ids,
            local_positions=np.full(len(ids), NO_LOCAL_POSITION, dtype=np.int64),
            loss_mask=loss,
            patches=self._no_patches(),
            timestep_starts=np.zeros(1, np.int64),
        )

    # -- actions back out ----------------------------------------------------------------------

    def decode_action(self, ids: Any, spec: ActionSpec) -> np.ndarray | int:
        """Action token ids -> the environment's action (int for a scalar discrete action)."""
        ids = _as_integers(ids, "action ids").ravel()
        if ids.size != spec.num_tokens:
            raise ValueError(f"action ids: expected {spec.num_tokens} tokens, got {ids.size}")
        lo, hi = spec.token_range()
        _check_range(ids, lo, hi, "action ids")
        if spec.kind == "discrete":
            values = ids - DISCRETE_OFFSET
            return int(values[0]) if spec.shape == () else values.reshape(spec.shape)
        values = self.decode_continuous(ids, "action ids", mu_law=spec.mu_law)
        return values.astype(np.float32).reshape(spec.shape)


# ---------------------------------------------------------------------------------------------
# Episode helpers
# ---------------------------------------------------------------------------------------------


def _raw_to_unit(array: np.ndarray, spec: ActionSpec | None, name: str) -> np.ndarray:
    """Environment actions (T, *shape) -> [-1, 1] by the spec's bounds (no spec: [-1, 1]);
    values outside the bounds are clipped to them (as the environment clips them), with a
    warning."""
    if spec is None:  # no task to say otherwise: bounds [-1, 1]
        spec = ActionSpec("continuous", array.shape[1:])
    unit, outside = spec.to_unit(_as_floats(array, name))
    if outside:
        low, high = spec.bounds()
        # One message per bounds (not per count), so a dataset warns once, not every episode.
        warnings.warn(
            f"{name}: raw actions outside the task's bounds [{low.min():g}, {high.max():g}] are "
            "clipped to them, as the environment clips them",
            stacklevel=4,
        )
    return unit


def _check_range(ids: np.ndarray, lo: int, hi: int, name: str) -> None:
    if ids.size and (ids.min() < lo or ids.max() >= hi):
        bad = ids[(ids < lo) | (ids >= hi)].ravel()[0]
        raise ValueError(f"{name}: token id {bad} is outside the valid range [{lo}, {hi})")


def _check_observation_mapping(observation: Any) -> Mapping[str, Any]:
    if not isinstance(observation, Mapping):
        raise ValueError(
            f"an observation must be a mapping {{JAT column: value}} with keys among "
            f"{tuple(OBSERVATION_COLUMNS)} (or the short types {MODALITIES}), got "
            f"{type(observation).__name__}"
        )
    return observation


def _add_time_axis(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _add_time_axis(v) for k, v in value.items()}
    if isinstance(value, str):
        return [value]
    return np.asarray(value)[None]


def _group_observations(observations: Mapping[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """{type or JAT column: value} -> {type: [(field name, leaf)]}, keys sorted within a type."""
    _check_observation_mapping(observations)
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for key, value in observations.items():
        kind = OBSERVATION_COLUMNS.get(key, key)
        if kind not in MODALITIES:
            raise ValueError(
                f"unknown observation type {key!r}; expected one of the JAT columns "
                f"{tuple(OBSERVATION_COLUMNS)} (or the short types {MODALITIES})"
            )
        if kind in grouped:
            raise ValueError(f"observation type {kind!r} given twice (as {key!r})")
        grouped[kind] = _flatten_keys(value, key)
    if not grouped:
        raise ValueError("an observation needs at least one of text, image, discrete, continuous")
    return grouped


def _count_steps(by_type: dict[str, list[tuple[str, Any]]]) -> int:
    counts = {name: len(leaf) for leaves in by_type.values() for name, leaf in leaves}
    if not counts:
        raise ValueError("observations are empty")
    if len(set(counts.values())) != 1:
        raise ValueError(f"observation fields disagree on the number of timesteps: {counts}")
    num_steps = next(iter(counts.values()))
    if num_steps == 0:
        raise ValueError("an episode needs at least one timestep")
    return num_steps


def _check_steps(values: Any, num_steps: int, name: str) -> None:
    if len(values) != num_steps:
        raise ValueError(f"{name}: expected {num_steps} timesteps, got {len(values)}")


def _fixed_segment(
    ids: np.ndarray, num_steps: int, name: str, observation: bool, loss: bool
) -> _Segment:
    """(T, ...) ids -> a segment of prod(...) tokens per step, row-major."""
    if ids.ndim == 0:
        raise ValueError(f"{name}: expected a leading time axis, got a scalar")
    _check_steps(ids, num_steps, name)
    per_step = int(np.prod(ids.shape[1:], dtype=np.int64))
    return _Segment(
        ids=ids.reshape(-1),
        lengths=np.full(num_steps, per_step, dtype=np.int64),
        observation=observation,
        loss=loss,
    )
