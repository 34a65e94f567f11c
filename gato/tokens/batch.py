"""The structures the tokenizer produces and the model consumes.

A `TokenSequence` is one tokenized episode (numpy, unbatched); `collate` pads several into a
`GatoBatch` (torch, batch-major). Image patches are not ids: where a patch sits, the id is
`PATCH_ID`, and the patches themselves travel in one flat tensor in the order their placeholders
appear when the batch is read row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from gato.vocab import (
    ACTION_MASK_ID,
    DISCRETE_OFFSET,
    NO_LOCAL_POSITION,
    PAD_ID,
    PATCH_ID,
    SEPARATOR_ID,
    TEXT_VOCAB_SIZE,
)

PAD_SEGMENT = -1
"""`GatoBatch.segment_ids` of padding."""
SHARED_SEGMENT = -2
"""`GatoBatch.segment_ids` of a row's shared prefix (its prompt), seen by every segment after it."""


def _empty_patches(patch_size: int = 16, channels: int = 4) -> np.ndarray:
    return np.zeros((0, channels, patch_size, patch_size), dtype=np.uint8)


@dataclass
class TokenSequence:
    """One tokenized sequence (an episode, a window of one, a caption, a text).

    Attributes:
        ids: (L,) int64 token ids; `PATCH_ID` where an image patch sits.
        local_positions: (L,) int64 index of each observation token within its timestep's
            observation; `NO_LOCAL_POSITION` (-1) for actions, separators and free text.
        loss_mask: (L,) bool, True on the tokens the model is trained to predict.
        patches: (N, C, P, P) uint8 pixels, N = number of `PATCH_ID` in `ids`.
        patch_positions: (N, 4) int64 [row_lo, row_hi, col_lo, col_hi) of each patch's pixel
            interval quantised to position bins (hi exclusive).
        timestep_starts: (T,) int64 offset of each timestep's first token (empty for plain text);
            windows are cut at these boundaries.
        segment_starts: (S,) int64 offsets, ascending and above 0, where an independent sequence
            begins inside this one (the packed windows of a control row, the image-text pairs
            of a captions row; `TokenSequence.pack`); empty: one sequence. `collate(segments=
            True)` turns them into `GatoBatch.segment_ids`, with which a token attends only
            within its own sequence.
        shared_prefix: the first tokens (a control row's prompt) that every later sequence of
            the row may attend to as well as its own: a prompt prompts every window packed
            after it. 0: none.
    """

    ids: np.ndarray
    local_positions: np.ndarray
    loss_mask: np.ndarray
    patches: np.ndarray = field(default_factory=_empty_patches)
    patch_positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    timestep_starts: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    segment_starts: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    shared_prefix: int = 0

    def __post_init__(self) -> None:
        length = self.ids.shape[0]
        for name in ("ids", "local_positions", "loss_mask"):
            value = getattr(self, name)
            if value.ndim != 1 or value.shape[0] != length:
                raise ValueError(
                    f"TokenSequence.{name} must have shape ({length},), got {value.shape}"
                )
        if self.patches.ndim != 4:
            raise ValueError(
                f"TokenSequence.patches must be (N, C, P, P), got {self.patches.shape}"
            )
        if self.patch_positions.shape != (self.patches.shape[0], 4):
            raise ValueError(
                f"TokenSequence.patch_positions must be ({self.patches.shape[0]}, 4), "
                f"got {self.patch_positions.shape}"
            )
        starts = self.segment_starts
        if starts.ndim != 1 or (
            starts.size
            and (starts[0] <= 0 or starts[-1] >= length or bool((np.diff(starts) <= 0).any()))
        ):
            raise ValueError(
                "TokenSequence.segment_starts must be ascending offsets in [1, "
                f"{length}), got {starts.tolist()}"
            )
        if not 0 <= self.shared_prefix <= length:
            raise ValueError(
                f"TokenSequence.shared_prefix must be in [0, {length}], got {self.shared_prefix}"
            )
        n_placeholders = int(np.count_nonzero(self.ids == PATCH_ID))
        if n_placeholders != self.patches.shape[0]:
            raise ValueError(
                f"TokenSequence has {n_placeholders} patch placeholders but "
                f"{self.patches.shape[0]} patches"
            )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def num_timesteps(self) -> int:
        return int(self.timestep_starts.shape[0])

    def slice(self, start: int, stop: int) -> TokenSequence:
        """Tokens [start, stop) with their patches; timestep starts shifted to the slice."""
        length = len(self)
        start, stop, _ = slice(start, stop).indices(length)
        stop = max(start, stop)
        is_patch = self.ids == PATCH_ID
        first_patch = int(np.count_nonzero(is_patch[:start]))
        last_patch = first_patch + int(np.count_nonzero(is_patch[start:stop]))
        starts = self.timestep_starts
        starts = starts[(starts >= start) & (starts < stop)] - start
        segments = self.segment_starts
        segments = segments[(segments > start) & (segments < stop)] - start
        return TokenSequence(
            ids=self.ids[start:stop],
            local_positions=self.local_positions[start:stop],
            loss_mask=self.loss_mask[start:stop],
            patches=self.patches[first_patch:last_patch],
            patch_positions=self.patch_positions[first_patch:last_patch],
            timestep_starts=starts,
            segment_starts=segments,
            shared_prefix=max(0, min(self.shared_prefix, stop) - start),
        )

    @staticmethod
    def concatenate(parts: Sequence[TokenSequence]) -> TokenSequence:
        """Join sequences end to end into one sequence (a prompt followed by the window it
        prompts); the parts' own segment starts are kept. `pack` joins independent ones."""
        return TokenSequence._join(parts, independent=False)

    @staticmethod
    def pack(parts: Sequence[TokenSequence], shared_first: bool = False) -> TokenSequence:
        """Join independent sequences end to end (packed windows, image-text pairs): each
        part after the first begins a segment (`segment_starts`). `shared_first`: the first
        part (a prompt) is the row's `shared_prefix`, seen by every later part."""
        return TokenSequence._join(parts, independent=True, shared_first=shared_first)

    @staticmethod
    def _join(
        parts: Sequence[TokenSequence], independent: bool, shared_first: bool = False
    ) -> TokenSequence:
        if not parts:
            what = "pack" if independent else "concatenate"
            raise ValueError(f"TokenSequence.{what} needs at least one sequence")
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        with_patches = [p.patches for p in parts if p.patches.shape[0]]
        patches = np.concatenate(with_patches) if with_patches else parts[0].patches
        if any(p.shared_prefix for p in parts[1:]):
            raise ValueError("TokenSequence: only the first of the parts joined may hold a prefix")
        segments = []
        for part, offset in zip(parts, offsets, strict=True):
            # An empty part begins nothing; the part at offset 0 is the first.
            if independent and offset and len(part):
                segments.append(np.array([offset], np.int64))
            segments.append(part.segment_starts + offset)
        return TokenSequence(
            ids=np.concatenate([p.ids for p in parts]),
            local_positions=np.concatenate([p.local_positions for p in parts]),
            loss_mask=np.concatenate([p.loss_mask for p in parts]),
            patches=patches,
            patch_positions=np.concatenate([p.patch_positions for p in parts]),
            timestep_starts=np.concatenate(
                [p.timestep_starts + o for p, o in zip(parts, offsets, strict=True)]
            ),
            segment_starts=np.concatenate(segments).astype(np.int64),
            shared_prefix=len(parts[0]) if shared_first else parts[0].shared_prefix,
        )


@dataclass
class GatoBatch:
    """A padded batch, batch-major, ready for the model.

    Attributes:
        input_ids: (B, L) int64; `PATCH_ID` where a patch sits, `PAD_ID` after a sequence ends.
        attention_mask: (B, L) int64, 1 on real tokens, 0 on padding.
        local_positions: (B, L) int64, -1 where a token has no local position.
        loss_mask: (B, L) bool, True on tokens that are prediction targets.
        patches: (N, C, P, P) uint8, in the order of the placeholders read row by row.
        patch_positions: (N, 4) int64 [row_lo, row_hi, col_lo, col_hi) in position bins.
        labels: (B, L) int64 target ids where they differ from the inputs (`mask_actions` hides
            inputs and keeps their targets); None: the targets are `input_ids`.
        segment_ids: (B, L) int64 the packed sequence each token belongs to within its row (0,
            1, ... from `TokenSequence.segment_starts`; `SHARED_SEGMENT` on a shared prefix,
            `PAD_SEGMENT` on padding): a token attends only to tokens of its own segment and of
            the shared prefix. None: a row is one sequence, as Gato trains.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    local_positions: torch.Tensor
    loss_mask: torch.Tensor
    patches: torch.Tensor
    patch_positions: torch.Tensor
    labels: torch.Tensor | None = None
    segment_ids: torch.Tensor | None = None

    def _map(self, fn) -> GatoBatch:
        return GatoBatch(
            **{
                f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                for f in fields(self)
            }
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> GatoBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> GatoBatch:
        return self._map(lambda t: t.pin_memory())

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for `GatoModel.forward` (`labels`, `segment_ids` only when set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for optional in ("labels", "segment_ids"):
            if out[optional] is None:
                del out[optional]
        return out

    def rows(self, rows: slice) -> GatoBatch:
        """A contiguous block of rows, with the patches whose placeholders lie in them."""
        per_row = (self.input_ids == PATCH_ID).sum(dim=1)  # (B,)
        start, stop, _ = rows.indices(len(per_row))
        first = int(per_row[:start].sum())
        count = int(per_row[start:stop].sum())
        return GatoBatch(
            input_ids=self.input_ids[start:stop],
            attention_mask=self.attention_mask[start:stop],
            local_positions=self.local_positions[start:stop],
            loss_mask=self.loss_mask[start:stop],
            patches=self.patches[first : first + count],
            patch_positions=self.patch_positions[first : first + count],
            labels=None if self.labels is None else self.labels[start:stop],
            segment_ids=None if self.segment_ids is None else self.segment_ids[start:stop],
        )

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens in the batch."""
        return int(self.attention_mask.sum())

    def validate(self, vocab_size: int) -> None:
        """Raise `ValueError` naming the first inconsistency; cheap enough to run every step."""
        validate_batch(vocab_size=vocab_size, **self.as_dict())


def validate_batch(
    *,
    vocab_size: int,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    local_positions: torch.Tensor | None = None,
    loss_mask: torch.Tensor | None = None,
    patches: torch.Tensor | None = None,
    patch_positions: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    segment_ids: torch.Tensor | None = None,
) -> None:
    """Check a batch's shapes, dtypes and id ranges; raise `ValueError` naming the problem."""
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
    shape = tuple(input_ids.shape)
    for name, value in (
        ("attention_mask", attention_mask),
        ("local_positions", local_positions),
        ("loss_mask", loss_mask),
        ("labels", labels),
        ("segment_ids", segment_ids),
    ):
        if value is not None and tuple(value.shape) != shape:
            raise ValueError(
                f"{name} must have the shape of input_ids {shape}, got {tuple(value.shape)}"
            )
    if input_ids.numel():
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(
                f"input_ids must lie in [0, {vocab_size}), found values in [{lo}, {hi}]"
            )
    if labels is not None and labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"labels must lie in [0, {vocab_size}), found values in [{lo}, {hi}]")
    n_placeholders = int((input_ids == PATCH_ID).sum())
    n_patches = 0 if patches is None else int(patches.shape[0])
    if patches is not None and (patches.ndim != 4 or patches.shape[-1] != patches.shape[-2]):
        raise ValueError(f"patches must be (N, C, P, P), got shape {tuple(patches.shape)}")
    if n_placeholders != n_patches:
        raise ValueError(
            f"input_ids hold {n_placeholders} patch placeholders (PATCH_ID={PATCH_ID}) "
            f"but {n_patches} patches were given"
        )
    if n_patches:
        if patch_positions is None or tuple(patch_positions.shape) != (n_patches, 4):
            got = None if patch_positions is None else tuple(patch_positions.shape)
            raise ValueError(f"patch_positions must be ({n_patches}, 4), got {got}")
        if bool((patch_positions[:, 1] <= patch_positions[:, 0]).any()) or bool(
            (patch_positions[:, 3] <= patch_positions[:, 2]).any()
        ):
            raise ValueError("patch_positions intervals must be non-empty: lo < hi")


def collate(
    sequences: Sequence[TokenSequence],
    *,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
    padding_side: str = "right",
    segments: bool = False,
) -> GatoBatch:
    """Pad sequences to a common length and stack them into a `GatoBatch`.

    `segments`: also give `segment_ids` from each sequence's `segment_starts`, so that packed
    sequences attend only within themselves (padding: -1).

    Sequences longer than `max_length` are an error rather than silently cut: windows are cut at
    timestep boundaries by the caller (`TokenSequence.slice`), where it knows what it drops.
    """
    if not sequences:
        raise ValueError("collate needs at least one sequence")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    lengths = [len(s) for s in sequences]
    length = max(lengths)
    if max_length is not None and length > max_length:
        raise ValueError(
            f"a sequence has {length} tokens, more than max_length={max_length}; "
            "cut it into windows first"
        )
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    channel_counts = {s.patches.shape[1:] for s in sequences if s.patches.shape[0]}
    if len(channel_counts) > 1:
        raise ValueError(
            f"all patches in a batch must share one shape, got {sorted(channel_counts)}"
        )

    batch = len(sequences)
    input_ids = np.full((batch, length), PAD_ID, dtype=np.int64)
    attention_mask = np.zeros((batch, length), dtype=np.int64)
    local_positions = np.full((batch, length), NO_LOCAL_POSITION, dtype=np.int64)
    loss_mask = np.zeros((batch, length), dtype=bool)
    segment_ids = np.full((batch, length), PAD_SEGMENT, dtype=np.int64) if segments else None
    for row, seq in enumerate(sequences):
        n = len(seq)
        cols = slice(0, n) if padding_side == "right" else slice(length - n, length)
        input_ids[row, cols] = seq.ids
        attention_mask[row, cols] = 1
        local_positions[row, cols] = seq.local_positions
        loss_mask[row, cols] = seq.loss_mask
        if segment_ids is not None:
            begins = np.zeros(n, dtype=np.int64)
            begins[seq.segment_starts] = 1
            ids = np.cumsum(begins)
            ids[: seq.shared_prefix] = SHARED_SEGMENT
            segment_ids[row, cols] = ids
    with_patches = [s for s in sequences if s.patches.shape[0]]
    if with_patches:
        patches = np.concatenate([s.patches for s in with_patches])
        patch_positions = np.concatenate([s.patch_positions for s in with_patches])
    else:
        patches = sequences[0].patches
        patch_positions = np.zeros((0, 4), dtype=np.int64)
    return GatoBatch(
        input_ids=torch.from_numpy(input_ids),
        attention_mask=torch.from_numpy(attention_mask),
        local_positions=torch.from_numpy(local_positions),
        loss_mask=torch.from_numpy(loss_mask),
        patches=torch.from_numpy(np.ascontiguousarray(patches)),
        patch_positions=torch.from_numpy(np.ascontiguousarray(patch_positions, dtype=np.int64)),
        segment_ids=None if segment_ids is None else torch.from_numpy(segment_ids),
    )


def mask_actions(
    batch: GatoBatch, probability: float, generator: torch.Generator | None = None
) -> GatoBatch:
    """Hide random action tokens of the context behind `ACTION_MASK_ID` (history dropout).

    An expert's actions change slowly (a swing-up pushes one way for dozens of steps), so a model
    that sees its previous actions can predict the next one by copying them: the training loss
    falls, and in closed loop the policy repeats its own last action instead of reading the
    observation. Hiding each action token with `probability` (ids in the discrete and continuous
    ranges that are loss targets: actions, never observations) makes copying unreliable. Only
    the input is hidden: a hidden token stays a target, with its id in `labels` (it is predicted
    from the positions before it, which do not see it), so no training signal is lost.

    `probability=1` hides every action (no draw): a model trained so never sees an action in
    its context, and its policy must hide them too (`PolicyConfig.hide_actions`, which calls
    this function on what it feeds).

    Returns a new batch; `batch` is not modified. Shapes as `GatoBatch`.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"mask_actions: probability must be in [0, 1], got {probability}")
    return _hide_targets(batch, probability, generator, DISCRETE_OFFSET, SEPARATOR_ID)


def mask_text(
    batch: GatoBatch, probability: float, generator: torch.Generator | None = None
) -> GatoBatch:
    """Hide random text tokens that are targets (captions, answers, prose) behind
    `ACTION_MASK_ID` in the input; their targets stay (word dropout).

    A caption names an object's colour before its shape, and a colour-shape pair that training
    never shows is one whose shape word never followed that colour word: a model that leans on
    the words before it learns "no triangle after red" and writes another shape when the image
    shows a red triangle. Hidden words leave the image as the only witness of what comes next, so
    the model learns to read attributes from the patches. Only text that is a loss target is
    hidden (a VQA question, which is context, is kept). Returns a new batch; shapes as
    `GatoBatch`.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"mask_text: probability must be in [0, 1], got {probability}")
    return _hide_targets(batch, probability, generator, 0, TEXT_VOCAB_SIZE)


def _hide_targets(
    batch: GatoBatch,
    probability: float,
    generator: torch.Generator | None,
    low: int,
    high: int,
) -> GatoBatch:
    """Hide each target token with an id in [low, high) with `probability` (1: all, no draw)."""
    if probability == 0.0:
        return batch
    ids = batch.input_ids
    if batch.labels is not None:
        ids = torch.where(ids == ACTION_MASK_ID, batch.labels, ids)  # hidden before: re-read
    chosen = batch.loss_mask & (ids >= low) & (ids < high)
    if probability == 1.0:
        hidden = chosen
    else:
        draw = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
        hidden = chosen & (draw < probability)  # (B, L)
    changed = {
        "input_ids": batch.input_ids.masked_fill(hidden, ACTION_MASK_ID),
        "labels": ids if batch.labels is None else batch.labels,
    }
    return GatoBatch(**{f.name: changed.get(f.name, getattr(batch, f.name)) for f in fields(batch)})
