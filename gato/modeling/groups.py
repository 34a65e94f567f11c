"""Grouped continuous values: a run of continuous tokens enters the transformer as one position.

Gato's sequence gives every continuous value its own token: a MuJoCo-like timestep of 17
observation and 6 action values is 24 tokens, and an action of D dimensions takes D decoding
steps. The grouped encoding keeps that sequence as the interface (the tokenizer, token caches,
batches and prompts are unchanged) and compacts it inside the model:

* observation groups (`GatoConfig.continuous_observation_group` = K > 0): each timestep's run of
  continuous observation tokens (local position >= 0) is cut into chunks of K; a chunk becomes
  one position whose embedding is a learned linear map of its K values' Fourier features (those
  of the per-value embedding, `value_fourier_features` of each bin centre in [-1, 1]) and of
  which of the K slots are filled, plus the local position of its first value;
* action groups (`continuous_action_group` = K > 0): each run of continuous action tokens
  (continuous ids without a local position) is cut into chunks of K likewise; a chunk is
  predicted all at once, from the position before it, by `ActionGroupHead`: K softmaxes over
  the 1,024 bins. A continuous action of at most K dimensions is then one forward pass.

* frame groups (`GatoConfig.frame_group` = G > 0): each image of a control observation (a run
  of G x G patch tokens, or a multiple, whose observation ends in a separator) becomes one
  position per G x G patches, embedded by `gato.modeling.frames.FrameEmbedding` from its
  frame put back together. An image without a separator after it (a caption's, a question's)
  keeps its patch tokens, as does a run cut short at a window's edge.

Every other token (text, patches, discrete values, separators, padding) keeps its own position,
except that with `GatoConfig.keep_separator=False` separators take none: the action then
follows the observation directly (JAT's two positions per timestep), and is predicted from the
observation's last position.
A compacted batch is aligned as its input was: rows start at position 0 (training batches) or,
`right_align`, end at the last position (the policy's left-padded batches), so the positions of
the real tokens are contiguous either way.

`group_layout` is pure index arithmetic over the (B, L) ids; `compact_length` counts the same
positions for one numpy sequence (the policy's context bookkeeping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gato.codecs import MU_LAW_M as M
from gato.codecs import MU_LAW_MU as MU
from gato.modeling.config import GROUP_VALUE_FEATURES
from gato.modeling.embedding import fourier_table, value_fourier_features
from gato.vocab import (
    ACTION_MASK_ID,
    CONTINUOUS_OFFSET,
    NUM_CONTINUOUS_BINS,
    PATCH_ID,
    SEPARATOR_ID,
)

__all__ = [
    "ACTION_GROUP",
    "FRAME_GROUP",
    "OBSERVATION_GROUP",
    "PLAIN",
    "ActionGroupHead",
    "GroupEmbedding",
    "GroupLayout",
    "compact_length",
    "control_frames",
    "decoded_values",
    "group_layout",
    "low_frequency_features",
    "value_encoder",
]

PLAIN, OBSERVATION_GROUP, ACTION_GROUP, FRAME_GROUP = 0, 1, 2, 3
"""What a token (or a compact position) is: its own position, or part of a value or frame
group."""


@dataclass
class GroupLayout:
    """Where every token of a (B, L) batch sits in the compacted (B, L') batch.

    Attributes:
        kind: (B, L) int64 PLAIN, OBSERVATION_GROUP or ACTION_GROUP per token (PLAIN on padding).
        index: (B, L) int64 the compact position of each token (its group's position for a
            grouped token), -1 on padding.
        offset: (B, L) int64 a grouped token's slot in its group (0 for plain tokens).
        first: (B, L') int64 the first token of each compact position, -1 where a row has none.
        compact_kind: (B, L') int64 the kind of each compact position (PLAIN where empty).
        real: (B, L') bool: a position holds a token.
    """

    kind: torch.Tensor
    index: torch.Tensor
    offset: torch.Tensor
    first: torch.Tensor
    compact_kind: torch.Tensor
    real: torch.Tensor

    @property
    def length(self) -> int:
        return int(self.first.shape[1])

    def gather(self, tokens: torch.Tensor, fill: int) -> torch.Tensor:
        """(B, L) per-token values -> (B, L') the value at each position's first token."""
        picked = tokens.gather(1, self.first.clamp(min=0))
        return picked.masked_fill(~self.real, fill)


def _next_index(hit: torch.Tensor) -> torch.Tensor:
    """(B, L) bool -> (B, L) int64 the first index >= each position where `hit` holds (L: none)."""
    length = hit.shape[1]
    steps = torch.arange(length, device=hit.device).expand_as(hit)
    at = torch.where(hit, steps, length)
    return at.flip(1).cummin(dim=1).values.flip(1)


def control_frames(
    ids: torch.Tensor, local_positions: torch.Tensor | None, frame_group: int
) -> torch.Tensor:
    """(B, L) ids and local positions -> (B, L) bool: the patch tokens that frame groups of
    `frame_group` x `frame_group` patches take.

    A patch token belongs to a frame when the first token after it without a local position
    (the end of its observation) is a separator, and its run of consecutive patch tokens holds
    a whole number of frames: a caption's image is followed by BOS, and an image cut at a
    window's edge is left as patches rather than read as a frame it is not.
    """
    if not frame_group or local_positions is None:
        return torch.zeros_like(ids, dtype=torch.bool)
    length = ids.shape[1]
    steps = torch.arange(length, device=ids.device).expand_as(ids)
    end = _next_index(local_positions < 0)
    ends_in_separator = (end < length) & (ids.gather(1, end.clamp(max=length - 1)) == SEPARATOR_ID)
    candidate = (ids == PATCH_ID) & ends_in_separator
    previous = F.pad(candidate[:, :-1], (1, 0), value=False)
    start = torch.where(candidate & ~previous, steps, -1).cummax(dim=1).values
    run = _next_index(~candidate) - start  # (B, L) the length of each candidate's run
    return candidate & (run % (frame_group * frame_group) == 0)


def _token_kinds(
    ids: torch.Tensor,
    local_positions: torch.Tensor | None,
    observation_group: int,
    action_group: int,
    frame_group: int = 0,
) -> torch.Tensor:
    is_value = (ids >= CONTINUOUS_OFFSET) & (ids < CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)
    has_local = local_positions >= 0 if local_positions is not None else torch.zeros_like(is_value)
    kind = torch.zeros_like(ids)
    if observation_group:
        kind = kind.masked_fill(is_value & has_local, OBSERVATION_GROUP)
    if action_group:
        kind = kind.masked_fill(is_value & ~has_local, ACTION_GROUP)
    if frame_group:
        kind = kind.masked_fill(control_frames(ids, local_positions, frame_group), FRAME_GROUP)
    return kind


def group_layout(
    ids: torch.Tensor,
    local_positions: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    observation_group: int,
    action_group: int,
    right_align: bool = False,
    keep_separator: bool = True,
    frame_group: int = 0,
) -> GroupLayout:
    """The compaction of a batch.

    Args:
        ids: (B, L) int64 target ids (a training batch's `labels` where actions were hidden:
            a hidden action still belongs to its group).
        local_positions: (B, L) int64, -1 where none; None: none anywhere.
        attention_mask: (B, L) 1 on real tokens; None: every token is real.
        observation_group, action_group: the group sizes K (0: that kind is not grouped).
        right_align: end every row at the last compact position (left-padded inputs).
        keep_separator: False: separators take no position (index -1, like padding).
        frame_group: G > 0: control images in frames of G x G patches (`control_frames`).
    """
    if observation_group < 0 or action_group < 0 or frame_group < 0:
        raise ValueError(
            f"group sizes must be >= 0, got observation {observation_group}, action "
            f"{action_group}, frame {frame_group}"
        )
    b, length = ids.shape
    real = (
        torch.ones_like(ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    )
    if not keep_separator:
        real = real & (ids != SEPARATOR_ID)
    kind = _token_kinds(ids, local_positions, observation_group, action_group, frame_group) * real
    previous = F.pad(kind[:, :-1], (1, 0), value=PLAIN)
    run_start = (kind != PLAIN) & (kind != previous)
    steps = torch.arange(length, device=ids.device).expand(b, length)
    last_start = torch.where(run_start, steps, -1).cummax(dim=1).values  # (B, L)
    size = torch.full_like(kind, max(action_group, 1))
    size = size.masked_fill(kind == OBSERVATION_GROUP, max(observation_group, 1))
    size = size.masked_fill(kind == FRAME_GROUP, max(frame_group * frame_group, 1))
    offset = torch.where(kind != PLAIN, (steps - last_start) % size, 0)
    starts = real & (offset == 0)  # plain tokens have offset 0
    rank = starts.long().cumsum(dim=1) - 1  # (B, L)
    counts = starts.sum(dim=1)  # (B,)
    compact = int(counts.max()) if b else 0
    shift = (compact - counts)[:, None] if right_align else 0
    index = torch.where(real, rank + shift, -1)
    first = torch.full((b, compact), -1, dtype=torch.long, device=ids.device)
    rows = torch.arange(b, device=ids.device)[:, None].expand(b, length)
    first[rows[starts], index[starts]] = steps[starts]
    filled = first >= 0
    compact_kind = kind.gather(1, first.clamp(min=0)).masked_fill(~filled, PLAIN)
    return GroupLayout(kind, index, offset, first, compact_kind, filled)


def compact_length(
    ids: np.ndarray,
    local_positions: np.ndarray,
    observation_group: int,
    action_group: int,
    keep_separator: bool = True,
    frame_group: int = 0,
) -> int:
    """Positions one (L,) sequence takes once compacted (`group_layout`'s count, in numpy)."""
    ids = np.asarray(ids)
    local_positions = np.asarray(local_positions)
    if not (observation_group or action_group or frame_group) or ids.size == 0:
        return int(ids.size) if keep_separator else int((ids != SEPARATOR_ID).sum())
    # Frames are found before separators are dropped: a separator is what marks them.
    frames = (
        control_frames(
            torch.from_numpy(ids)[None], torch.from_numpy(local_positions)[None], frame_group
        )[0].numpy()
        if frame_group
        else np.zeros(ids.shape, bool)
    )
    if not keep_separator:
        kept = ids != SEPARATOR_ID
        ids, local_positions, frames = ids[kept], local_positions[kept], frames[kept]
    is_value = (ids >= CONTINUOUS_OFFSET) & (ids < CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS)
    has_local = local_positions >= 0
    kind = np.zeros(ids.shape, np.int64)
    if observation_group:
        kind[is_value & has_local] = OBSERVATION_GROUP
    if action_group:
        kind[is_value & ~has_local] = ACTION_GROUP
    kind[frames] = FRAME_GROUP
    sizes = {
        OBSERVATION_GROUP: observation_group,
        ACTION_GROUP: action_group,
        FRAME_GROUP: frame_group * frame_group,
    }
    # Runs of equal non-plain kind: each takes ceil(len / K) positions.
    change = np.flatnonzero(np.diff(kind, prepend=-1, append=-1))
    total = int((kind == PLAIN).sum())
    for start, stop in zip(change[:-1], change[1:], strict=True):
        k = int(kind[start])
        if k != PLAIN:
            total += -(-int(stop - start) // sizes[k])
    return total


def decoded_values(bins: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
    """(n,) int64 bins, (n,) bool -> (n,) float64 the value each bin stands for: an
    observation's bin centre decoded from mu-law (`gato.codecs.mu_law_decode`, up to +-256), an
    action's bin centre as it is (actions are tokenized in [-1, 1] without mu-law)."""
    n = NUM_CONTINUOUS_BINS
    centre = (2 * bins + 1 - n).double() / n  # the bin centre in [-1, 1]
    decoded = torch.sign(centre) * torch.expm1(centre.abs() * math.log1p(MU * M)) / MU
    return torch.where(observation, decoded, centre)


def symlog_value_features(bins: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
    """(n,) int64 bins, (n,) bool -> (n, 1) symlog(x) = sign(x) log(1 + |x|) of the value a bin
    stands for in the environment's own units (`decoded_values`)."""
    x = decoded_values(bins, observation)
    return (torch.sign(x) * torch.log1p(x.abs())).float().unsqueeze(-1)


def low_frequency_features(
    bins: torch.Tensor, observation: torch.Tensor, period: float
) -> torch.Tensor:
    """(n,) int64 bins, (n,) bool -> (n, 3) [x, sin(2 pi x / period), cos(2 pi x / period)] of
    the value x a bin stands for (`decoded_values`): one smooth bend over a standardised
    value's range (period 8: +-4 deviations), no high frequency to fit the data's noise."""
    x = decoded_values(bins, observation)
    angle = (2 * math.pi / period) * x
    return torch.stack([x, torch.sin(angle), torch.cos(angle)], dim=-1).float()


def value_encoder(inputs: int, hidden: int, width: int) -> nn.Sequential:
    """The MLP specialist's shape as an observation group's encoder: Linear-ReLU-Linear-ReLU-
    Linear, every layer with PyTorch's default (fan-in) initialisation, which `GatoModel` keeps
    (`keep_default_init`) instead of its N(0, 0.02): the encoder must be non-linear from the
    first step, as the specialist's layers are."""
    layers = [nn.Linear(inputs, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, width)]
    for layer in layers:
        layer.keep_default_init = True
    return nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])


class GroupEmbedding(nn.Module):
    """A value group's embedding: Linear([features of each slot, filled]) of its K slots, one map
    per kind. A slot's features (`features`):

    - "fourier": `value_fourier_features` of its bin centre (2 F + 1 numbers), the centre being
      an observation's mu-law code. A linear map of the codes alone learnt pendulum at -18% of
      expert (typical values sit in a sliver of [-1, 1]: |x| <= 1 codes within +-0.46);
    - "symlog": one number, symlog of the value in the environment's units
      (`symlog_value_features`). Fourier features of the mu-law code let a clone fit its data
      closely and act badly off it: an MLP given them reached 26% of expert on the swing-up
      where the same MLP on the values reached 89% (docs/control_learning.md);
    - "symlog_mlp": the symlog values through a GELU hidden layer (4 x width) before the map;
    - "lowfreq": [x, sin(2 pi x / P), cos(2 pi x / P)] of the value x (`low_frequency_features`,
      P = `period`), for values the tokenizer standardised (`GatoTokenizer.standardising`):
      the MLP given this reading cloned both the swing-up and pendulum;
    - "lowfreq_mlp": those of an observation group through `value_encoder` (two ReLU layers of
      `hidden` units, the MLP specialist's shape) instead of a linear map; action groups keep
      the linear map. The transformer's blocks cannot make a smooth reading of the values
      sharp enough for pendulum's balance in the specialist's time; an encoder that is
      non-linear from the start can (docs/control_learning.md).

    Both symlog forms scored below "fourier" in the transformer (docs/control_learning.md).

    Empty slots (a chunk shorter than K, an action hidden by `mask_actions`) read 0 with
    filled = 0, so a value of 0 and a missing one differ.
    """

    def __init__(
        self,
        width: int,
        observation_group: int,
        action_group: int,
        num_frequencies: int = 16,
        top: int = 64,
        features: str = "fourier",
        period: float = 8.0,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        if features not in GROUP_VALUE_FEATURES:
            raise ValueError(
                f"group value features must be one of {list(GROUP_VALUE_FEATURES)}, "
                f"got {features!r}"
            )
        self.observation_group = observation_group
        self.action_group = action_group
        self.num_frequencies = num_frequencies
        self.top = top
        self.features = features
        self.period = period
        base = features.removesuffix("_mlp")
        fourier = 2 * num_frequencies + 1
        sizes = {"fourier": fourier, "lowfreq": 3, "lowfreq+fourier": 3 + fourier}
        self.per_slot = sizes.get(base, 1) + 1
        # Not saved (a function of the config); held so no forward copies it from the host.
        self.register_buffer("multiples", fourier_table(num_frequencies, top), persistent=False)

        def projection(size: int, kind: int) -> nn.Module | None:
            if not size:
                return None
            if features == "lowfreq_mlp":
                if kind == OBSERVATION_GROUP:
                    return value_encoder(self.per_slot * size, hidden, width)
                return nn.Linear(self.per_slot * size, width)
            if features.endswith("_mlp"):
                # The values through a hidden layer: the first non-linearity comes before the
                # trunk, as in the MLP specialist.
                return nn.Sequential(
                    nn.Linear(self.per_slot * size, 4 * width),
                    nn.GELU(),
                    nn.Linear(4 * width, width),
                )
            return nn.Linear(self.per_slot * size, width)

        self.observations = projection(observation_group, OBSERVATION_GROUP)
        self.actions = projection(action_group, ACTION_GROUP)

    def forward(
        self, layout: GroupLayout, input_ids: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        """-> (B, L', D) the value groups' embeddings (0 at other positions).

        `input_ids` (B, L) are the inputs (a hidden action's id is `ACTION_MASK_ID`)."""
        b, compact = layout.real.shape
        width = max(self.observation_group, self.action_group)
        grouped = (layout.kind == OBSERVATION_GROUP) | (layout.kind == ACTION_GROUP)  # (B, L)
        known = grouped & (input_ids != ACTION_MASK_ID)
        slots = torch.zeros(b, compact, width, self.per_slot, device=input_ids.device)
        rows = torch.arange(b, device=input_ids.device)[:, None].expand_as(input_ids)
        bins = input_ids[known] - CONTINUOUS_OFFSET
        observation = layout.kind[known] == OBSERVATION_GROUP
        if self.features == "fourier":
            features = value_fourier_features(
                bins, self.num_frequencies, self.top, self.multiples
            )  # (n, 2F + 1)
        elif self.features.startswith("lowfreq"):
            features = low_frequency_features(bins, observation, self.period)
            if self.features == "lowfreq+fourier":
                code = value_fourier_features(bins, self.num_frequencies, self.top, self.multiples)
                features = torch.cat([features, code], dim=-1)
        else:
            features = symlog_value_features(bins, observation)
        filled = torch.ones(features.shape[0], 1, device=features.device)
        slots[rows[known], layout.index[known], layout.offset[known]] = torch.cat(
            [features, filled], dim=-1
        )
        out = None
        for module, size, kind in (
            (self.observations, self.observation_group, OBSERVATION_GROUP),
            (self.actions, self.action_group, ACTION_GROUP),
        ):
            if module is None:
                continue
            inputs = slots[:, :, :size].flatten(2)  # (B, L', K per_slot)
            weight_dtype = next(module.parameters()).dtype
            part = module(inputs.to(weight_dtype)).to(dtype)  # (B, L', D)
            part = part * (layout.compact_kind == kind).unsqueeze(-1).to(dtype)
            out = part if out is None else out + part
        return out


class ActionGroupHead(nn.Module):
    """(N, D) hidden states -> (N, K, bins) logits: every slot of an action chunk at once.

    `bins` (dividing 1,024) may be coarser than the tokens' bins: a target token's class is its
    bin // (1024 / bins), and a decoded class stands for the token at the middle of its span
    (`token_ids`). Coarser classes cost less (the head is most of a grouped training step) and
    each is learnt from more examples.
    """

    def __init__(
        self, width: int, action_group: int, bins: int = NUM_CONTINUOUS_BINS, skip: bool = False
    ) -> None:
        super().__init__()
        if bins < 1 or NUM_CONTINUOUS_BINS % bins:
            raise ValueError(f"action head bins must divide {NUM_CONTINUOUS_BINS}, got {bins}")
        self.action_group = action_group
        self.bins = bins
        self.span = NUM_CONTINUOUS_BINS // bins
        self.projection = nn.Linear(width, action_group * bins)
        # `GatoConfig.action_head_skip`: the input embedding's map starts at the scale of the
        # encoder's own layers, so the path around the blocks carries signal from the first step.
        self.skip = nn.Linear(width, width) if skip else None
        if self.skip is not None:
            self.skip.keep_default_init = True

    def forward(self, hidden: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D) final hidden states [and (N, D) input embeddings at the same positions, which
        a head with a skip needs] -> (N, K, bins) logits."""
        if self.skip is not None:
            if inputs is None:
                raise ValueError(
                    "this action head reads the predicting position's input embedding too "
                    "(GatoConfig.action_head_skip): pass inputs"
                )
            hidden = hidden + self.skip(inputs.to(hidden.dtype))
        logits = self.projection(hidden)
        return logits.view(*hidden.shape[:-1], self.action_group, self.bins)

    def classes(self, ids: torch.Tensor) -> torch.Tensor:
        """Continuous action ids -> the head's classes (int64, same shape)."""
        return (ids - CONTINUOUS_OFFSET) // self.span

    def token_ids(self, classes: torch.Tensor) -> torch.Tensor:
        """The head's classes -> the continuous ids they decode to (the middle of each span)."""
        return classes * self.span + self.span // 2 + CONTINUOUS_OFFSET
