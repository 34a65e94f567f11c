"""Gato's input embedding: token lookup, ResNet patch embedding, patch and local positions.

Every position of a batch gets one vector of the model width:

* ids: a learned lookup over the padded vocabulary;
* image patches (where the id is `PATCH_ID`): uint8 pixels, normalised inside the model (so batches
  and the wire carry bytes), through one pre-activation ResNet v2 block (GroupNorm, GELU) to the
  width, plus learned row and column position encodings of the patch's place in its image;
* observation tokens (local position >= 0): plus a learned encoding of their index within the
  timestep's observation. Actions, separators and text (local position -1) get none;
* continuous-value tokens, with `value_embedding` other than "table": plus (or, without the
  "table+" prefix, instead of their row) a learned function of the value their bin stands for
  (`ValueEmbedding`).

The patch block (`GatoConfig.patch_encoder`: "resnet" by default; "linear" is ViT's flattened
pixels through one linear map, "resnet+linear" the sum of both, "mono_resnet+linear" the sum
with the block reading a colour-blind silhouette of the patch, `patch_silhouette`): a 3x3
stride-2 stem conv (P x P -> P/2 x P/2, `resnet_channels`), the residual block
GN-GELU-conv3x3-GN-GELU-conv3x3 (+ identity), a final GN-GELU, 2x2 average pooling, and a linear
map of the (channels, P/4, P/4) features to the width. Working at half resolution and pooling
before the projection keep a patch's forward cost near 11 MFLOP (about 7% of a 79M model's
per-token forward, under 1% of the 1.18B model's) and the projection at 16 x `resnet_channels` x
width parameters (2.1M at the 1.18B width rather than 34M for a full 16x16 flatten).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gato.modeling.config import GatoConfig
from gato.tokens.tokenizer import normalize_patches
from gato.vocab import CONTINUOUS_OFFSET, NUM_CONTINUOUS_BINS, PATCH_ID

__all__ = [
    "GatoEmbedding",
    "LinearPatchEmbedding",
    "NaturePatchEmbedding",
    "PatchEmbedding",
    "ValueEmbedding",
    "nature_convolutions",
    "nature_side",
    "ordinal_embedding",
    "patch_position_indices",
    "standardised_patches",
]


def ordinal_embedding(
    num_bins: int,
    width: int,
    std: float,
    length_scales: tuple[float, float] = (0.01, 0.2),
    num_features: int = 256,
    independent: float = 0.25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(num_bins, width) initial rows for ordered value bins: nearby bins start out alike.

    Row i is a random linear map of random Fourier features of the bin's centre v_i in [-1, 1]
    (phi_j(v) = sqrt(2 / F) cos(w_j v + b_j), w_j ~ N(0, 1 / l_j^2) with l_j log-uniform in
    `length_scales`, b_j uniform), plus an independent normal part holding the fraction
    `independent` of the variance so that every bin stays distinguishable. The dot product of
    two rows is then about std^2 width ((1 - independent) k(v_i - v_j) + independent [i = j])
    with k a mixture of Gaussian kernels of those lengths: near 1 for neighbouring bins, near 0
    for distant ones. Every entry has variance ~std^2, as a normal initialisation.

    Why: with independent rows, a value bin's embedding is learnt only from the steps where that
    bin occurs, and a continuous control policy must then see every bin of every observation
    value to act well there. Tied to the output head, the same structure makes the first
    predicted action distributions smooth over neighbouring bins.
    """
    lo, hi = length_scales
    if num_bins < 1 or width < 1 or num_features < 1 or not 0.0 < lo <= hi:
        raise ValueError(
            "ordinal_embedding: need positive num_bins, width, num_features and 0 < length "
            f"scales ascending, got {num_bins}, {width}, {num_features}, {length_scales}"
        )
    if not 0.0 <= independent <= 1.0:
        raise ValueError(f"ordinal_embedding: independent must lie in [0, 1], got {independent}")
    f64 = dict(generator=generator, dtype=torch.float64)
    centres = (torch.arange(num_bins, dtype=torch.float64) + 0.5) / num_bins * 2.0 - 1.0
    scales = torch.exp(math.log(lo) + torch.rand(num_features, **f64) * math.log(hi / lo))
    frequencies = torch.randn(num_features, **f64) / scales
    phases = torch.rand(num_features, **f64) * 2.0 * math.pi
    features = (2.0 / num_features) ** 0.5 * torch.cos(centres[:, None] * frequencies + phases)
    smooth = features @ torch.randn(num_features, width, **f64)  # entries of variance ~1
    noise = torch.randn(num_bins, width, **f64)
    rows = (1.0 - independent) ** 0.5 * smooth + independent**0.5 * noise
    return (std * rows).to(torch.float32)


def patch_position_indices(
    intervals: torch.Tensor, training: bool, num_bins: int | None = None
) -> torch.Tensor:
    """Pick one position bin inside each [lo, hi) interval.

    Args:
        intervals: (N, 2) int64 [lo, hi) with lo < hi.
        training: sample uniformly in [lo, hi) (a regulariser, as Gato) rather than taking the
            middle bin (lo + hi) // 2.
        num_bins: the number of position bins; an interval that spans them all (an image that
            is one patch, `patch_size=84` on Atari frames) takes the middle bin in training too.
            Why: there the draw says nothing of where the patch is, it only adds two random
            rows to the frame's vector at every step, noise the model must learn to ignore.

    Returns:
        (N,) int64 bins.
    """
    lo, hi = intervals[:, 0], intervals[:, 1]
    middle = (lo + hi) // 2
    if not training:
        return middle
    span = (hi - lo).to(torch.float32)
    offset = torch.floor(torch.rand(lo.shape, device=lo.device) * span).to(lo.dtype)
    # rand < 1 so offset < span, but guard float rounding at the top of a wide interval.
    drawn = torch.minimum(lo + offset, hi - 1)
    if num_bins is None:
        return drawn
    return torch.where((lo == 0) & (hi >= num_bins), middle, drawn)


MONO_EPS = 0.05
"""Floor of a patch's brightness spread in `patch_silhouette` (in units of full scale): a patch of
background noise alone (spread ~0.01-0.02) stays faint instead of being stretched to unit
variance like a patch that holds an object (spread ~0.3)."""


def patch_silhouette(patches: torch.Tensor) -> torch.Tensor:
    """uint8 patches (N, C, P, P) -> (N, 1, P, P) float: each pixel's brightest channel on a
    0-1 scale, standardised within its patch (mean 0, spread 1 with `MONO_EPS` as its floor).

    Colour-blind by construction: two patches that differ only in the hue of an object (or in a
    common brightness scale) give the same silhouette, so what a network reads from it is shape.
    """
    x = patches.amax(dim=1, keepdim=True).to(torch.float32) / 255.0  # (N, 1, P, P)
    mean = x.mean(dim=(2, 3), keepdim=True)
    spread = x.std(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) / (spread + MONO_EPS)


class PatchEmbedding(nn.Module):
    """uint8 patches (N, C, P, P) -> (N, D): one pre-activation ResNet v2 block and a projection.

    mono: the block reads `patch_silhouette(patches)` (one colour-blind channel) instead of the
    normalised pixels ("mono_resnet+linear", where colour comes from the linear path alone).
    """

    def __init__(self, config: GatoConfig, mono: bool = False) -> None:
        super().__init__()
        ch, groups = config.resnet_channels, config.resnet_groups
        self.mono = mono
        in_channels = 1 if mono else config.image_channels
        self.stem = nn.Conv2d(in_channels, ch, kernel_size=3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(groups, ch, eps=1e-6)
        self.conv1 = nn.Conv2d(ch, ch, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(groups, ch, eps=1e-6)
        self.conv2 = nn.Conv2d(ch, ch, kernel_size=3, padding=1)
        self.norm_out = nn.GroupNorm(groups, ch, eps=1e-6)
        side = config.patch_size // 4
        self.proj = nn.Linear(ch * side * side, config.hidden_size)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches: (N, C, P, P) uint8 -> (N, D) in the projection's (autocast) dtype."""
        if self.mono:
            x = patch_silhouette(patches).to(self.stem.weight.dtype)
        else:
            x = normalize_patches(patches.to(self.stem.weight.dtype))
        x = self.stem(x)  # (N, ch, P/2, P/2)
        h = self.conv1(F.gelu(self.norm1(x)))
        h = self.conv2(F.gelu(self.norm2(h)))
        x = x + h
        x = F.avg_pool2d(F.gelu(self.norm_out(x)), 2)  # (N, ch, P/4, P/4)
        return self.proj(x.flatten(1))


class LinearPatchEmbedding(nn.Module):
    """uint8 patches (N, C, P, P) -> (N, D): one linear map of the normalised pixels (ViT's).

    Linear in every pixel: a patch whose pixels are a mix of seen patches' pixels (a colour
    never seen on that shape) is embedded as the same mix of their vectors. `GatoConfig.
    patch_encoder` = "linear".
    """

    def __init__(self, config: GatoConfig) -> None:
        super().__init__()
        side = config.patch_size
        self.proj = nn.Linear(config.image_channels * side * side, config.hidden_size)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches: (N, C, P, P) uint8 -> (N, D) in the projection's (autocast) dtype."""
        return self.proj(normalize_patches(patches.to(self.proj.weight.dtype)).flatten(1))


FRAME_EPS = 1.0 / 255.0
"""Floor of a patch's pixel spread in `standardised_patches` (0-1 scale): a blank patch stays
blank instead of having its last grey level stretched to unit variance."""


def standardised_patches(patches: torch.Tensor) -> torch.Tensor:
    """uint8 patches (N, C, P, P) -> float (N, C, P, P), each patch's pixels at mean 0 and
    spread 1 over all its channels (`FRAME_EPS` the spread's floor).

    Why not Gato's fixed [-1, 1] / 4: a Pong frame is a grey background with a ball and two
    paddles of a few pixels each, so at the fixed scale its pixels spread by ~0.09 and a
    convolution stack without normalisation learns nothing for thousands of steps (the
    benchmark's CNN, docs/control_learning.md); standardised, it learns from the first hundreds.
    Per patch rather than by a dataset's statistics, so nothing has to be stored beside the
    weights.
    """
    # On the 0-255 scale (the floor 255 FRAME_EPS), a patch flattened to one row: torch's `std`
    # over several dimensions is a single-thread Welford pass, ~3x the time of a mean and a sum
    # of squares per row (7.8 against 2.0-2.8 ms for 64 Pong frames of 4 x 80 x 80, one thread;
    # two-pass, so a near-blank frame's spread does not cancel away). Not a dot product: under
    # bf16 autocast that would be a bf16 matmul, this stays float32.
    x = patches.to(torch.float32).reshape(len(patches), -1)
    centred = x - x.mean(dim=1, keepdim=True)
    spread = (centred.square().sum(dim=1) / x.shape[1]).sqrt_()
    scale = 1.0 / (spread + 255.0 * FRAME_EPS)
    return centred.mul_(scale.unsqueeze(1)).view(patches.shape)


def nature_side(patch_size: int) -> int:
    """The side of the Nature DQN stack's last feature map for a `patch_size` input (7 for an
    84x84 frame), 0 when the patch is too small for its three convolutions (below 36)."""
    side = (patch_size - 8) // 4 + 1
    side = (side - 4) // 2 + 1
    return max(side - 2, 0)


def nature_convolutions(channels: int) -> list[nn.Module]:
    """The Nature DQN's convolution stack (Mnih et al. 2015), (B, channels, 84, 84) -> (B, 64,
    7, 7): its layers, for a caller to put in its own `nn.Sequential`."""
    return [
        nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
    ]  # fmt: skip


class NaturePatchEmbedding(nn.Module):
    """uint8 patches (N, C, P, P) -> (N, D): the Nature DQN's convolutions (Mnih et al. 2015:
    32x8x8 stride 4, 64x4x4 stride 2, 64x3x3, ReLU) and one projection, on standardised pixels.

    Meant for a patch that is a whole frame (`patch_size=84` on Atari's 84x84 stacks: one token
    an observation, as JAT embeds Atari frames), `GatoConfig.patch_encoder` = "nature". Why: on
    Pong's frames a transformer reading 25 patch tokens stayed at the entropy of the action
    frequencies for thousands of steps, finding a ball of a few pixels by attention, where one
    frame token from this stack learns close behind the CNN specialist
    (docs/control_learning.md, benchmarks/image_readout.py).
    """

    def __init__(
        self, config: GatoConfig, side: int | None = None, channels: int | None = None
    ) -> None:
        """`side`: the input's side (default `patch_size`; a frame group's frame side).
        `channels`: the input's channels (default `image_channels`; more where a frame group
        adds its differences)."""
        super().__init__()
        # GatoConfig refuses patches (and frames) too small for the three convolutions.
        side = nature_side(config.patch_size if side is None else side)
        channels = config.image_channels if channels is None else channels
        self.conv = nn.Sequential(*nature_convolutions(channels))
        self.proj = nn.Linear(64 * side * side, config.hidden_size)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches: (N, C, P, P) uint8 -> (N, D) in the projection's (autocast) dtype."""
        return self.read(standardised_patches(patches))

    def read(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised float input (N, channels, side, side) -> (N, D)."""
        x = x.to(self.proj.weight.dtype)
        return self.proj(self.conv(x).flatten(1))  # (N, 64, s, s) -> (N, D)


VALUE_TOP_MULTIPLE = 64
"""The highest value frequency, in multiples of pi: a period of 2 / 64 in v, 32 bins. Higher
frequencies would make neighbouring bins' features differ most (at a period of two bins they flip
sign), the opposite of sharing; single bins are told apart by their table rows."""


def fourier_multiples(num_frequencies: int, top: int = VALUE_TOP_MULTIPLE) -> list[int]:
    """Distinct integers n_k, about geometric from 1 to `top` (at least `num_frequencies`): the
    value features' frequencies are n_k pi, from one period over [-1, 1] to a period of
    2 / top."""
    top = max(top, num_frequencies)
    out: list[int] = []
    for k in range(num_frequencies):
        n = round(top ** (k / max(num_frequencies - 1, 1)))
        out.append(max(n, out[-1] + 1) if out else n)
    return out


def fourier_table(num_frequencies: int, top: int = VALUE_TOP_MULTIPLE) -> torch.Tensor:
    """`fourier_multiples` as the int64 tensor the modules hold as a buffer."""
    return torch.tensor(fourier_multiples(num_frequencies, top), dtype=torch.long)


def value_fourier_features(
    bins: torch.Tensor,
    num_frequencies: int,
    top: int = VALUE_TOP_MULTIPLE,
    multiples: torch.Tensor | None = None,
) -> torch.Tensor:
    """(...) int64 bins in [0, NUM_CONTINUOUS_BINS) -> (..., 2 F + 1) float32
    [v, sin(n_k pi v), cos(n_k pi v)] of each bin's centre v in [-1, 1]
    (`fourier_multiples(num_frequencies, top)`).

    The angles are reduced modulo 2 pi in integers (n_k pi v = pi (n_k m mod 2N) / N with
    m = 2 bin + 1 - N), so the features are exact to float32 even at the highest frequency.
    `multiples`: those n_k as an int64 tensor on `bins`' device; modules pass the one they hold
    as a buffer, since making it from a list here would copy from the host inside every forward,
    which a CUDA graph cannot capture.
    """
    n = NUM_CONTINUOUS_BINS
    m = 2 * bins + 1 - n  # v = m / n, m odd
    if multiples is None:
        multiples = fourier_table(num_frequencies, top).to(bins.device)
    residues = torch.remainder(m.unsqueeze(-1) * multiples, 2 * n)  # (..., F) in [0, 2n)
    angles = residues.float() * (math.pi / n)
    value = (m.float() / n).unsqueeze(-1)
    return torch.cat([value, angles.sin(), angles.cos()], dim=-1)


class ValueEmbedding(nn.Module):
    """A learned function of a continuous token's value, added to (or replacing) its id's row.

    A continuous id's bin stands for a coordinate v in [-1, 1] (the bin centre: the mu-law
    coordinate of an observation, the clipped value of an action). With only a table, each of
    the 1,024 rows is learnt from the steps whose value lands in that bin, and neighbouring
    values share nothing; f(v), one function of every value, makes what is learnt at one value
    carry to its neighbours. f is a linear map of `value_fourier_features` ("fourier"), those
    features through Linear-GELU-Linear ("fourier_mlp"), or W v + b ("linear"). `replaces_row`:
    the config's variant has no "table+" prefix, so f(v) is the token's whole embedding. Other
    ids get nothing.
    """

    def __init__(self, config: GatoConfig) -> None:
        super().__init__()
        kind = config.value_embedding.removeprefix("table+")
        self.replaces_row = not config.value_embedding.startswith("table+")
        self.kind = kind
        self.num_frequencies = config.value_fourier_features
        self.top = config.value_fourier_top
        features = 2 * self.num_frequencies + 1
        width = config.hidden_size
        # Not saved: a function of the config, as old checkpoints without it expect.
        self.register_buffer(
            "multiples", fourier_table(self.num_frequencies, self.top), persistent=False
        )
        if kind == "fourier":
            self.function = nn.Linear(features, width)
        elif kind == "fourier_mlp":
            self.function = nn.Sequential(
                nn.Linear(features, width), nn.GELU(), nn.Linear(width, width)
            )
        elif kind == "linear":
            self.function = nn.Linear(1, width)
        else:
            raise ValueError(
                f"ValueEmbedding: no value function for value_embedding={config.value_embedding!r}"
            )

    def value_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) bool: which ids are continuous values."""
        bins = input_ids - CONTINUOUS_OFFSET
        return (bins >= 0) & (bins < NUM_CONTINUOUS_BINS)

    def forward(
        self, input_ids: torch.Tensor, is_value: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L) int64 ids -> (B, L, D): f(bin centre) on continuous ids, 0 elsewhere
        (`is_value`: their `value_mask`, when the caller has it)."""
        if is_value is None:
            is_value = self.value_mask(input_ids)
        weight = next(self.function.parameters())
        bins = (input_ids - CONTINUOUS_OFFSET).clamp(0, NUM_CONTINUOUS_BINS - 1)
        if self.kind == "linear":
            features = ((2 * bins + 1 - NUM_CONTINUOUS_BINS).float() / NUM_CONTINUOUS_BINS)[
                ..., None
            ]  # (B, L, 1): v, the bin centre
        else:
            features = value_fourier_features(bins, self.num_frequencies, self.top, self.multiples)
        out = self.function(features.to(weight.dtype))  # (B, L, D)
        return out * is_value.unsqueeze(-1).to(out.dtype)

    def embed(self, rows: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """The token rows (B, L, D) of `input_ids` -> their embeddings with the value function:
        row + f(v), or f(v) alone on value ids when `replaces_row`."""
        is_value = self.value_mask(input_ids)
        f = self.forward(input_ids, is_value).to(rows.dtype)
        if self.replaces_row:
            rows = rows * (~is_value).unsqueeze(-1).to(rows.dtype)
        return rows + f


class GatoEmbedding(nn.Module):
    """Token, patch and position embeddings -> the transformer's input (B, L, D)."""

    def __init__(self, config: GatoConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.tokens = nn.Embedding(config.vocab_size, width)
        encoder = config.patch_encoder
        if encoder == "linear":
            self.patches: nn.Module = LinearPatchEmbedding(config)
        elif encoder == "nature":
            self.patches = NaturePatchEmbedding(config)
        else:
            self.patches = PatchEmbedding(config, mono=encoder == "mono_resnet+linear")
        # "...+linear": the block's vector plus a linear map of the pixels (a second path, in
        # which a colour reads the same on every shape).
        self.patch_linear = LinearPatchEmbedding(config) if encoder.endswith("+linear") else None
        self.patch_rows = nn.Embedding(config.num_position_bins, width)
        self.patch_cols = nn.Embedding(config.num_position_bins, width)
        self.local_positions = nn.Embedding(config.max_local_positions, width)
        self.values = ValueEmbedding(config) if config.value_embedding != "table" else None
        self.dropout = nn.Dropout(config.dropout)

    def embed_patch_content(self, patches: torch.Tensor) -> torch.Tensor:
        """uint8 patches (N, C, P, P) -> (N, D): what a patch holds, before its position rows
        (the block, plus the linear path for "...+linear")."""
        emb = self.patches(patches)
        if self.patch_linear is not None:
            emb = emb + self.patch_linear(patches)
        return emb

    def embed_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 ids with no patch and no local position -> (B, L, D): what `forward`
        computes for them in eval mode (fed-back action tokens)."""
        x = self.tokens(input_ids)  # (B, L, D)
        if self.values is not None:
            x = self.values.embed(x, input_ids)
        return x

    def forward(
        self,
        input_ids: torch.Tensor,
        local_positions: torch.Tensor | None = None,
        patches: torch.Tensor | None = None,
        patch_positions: torch.Tensor | None = None,
        replace: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Embed a batch.

        Args:
            input_ids: (B, L) int64, `PATCH_ID` where a patch sits.
            local_positions: (B, L) int64, -1 where a token has none; None = none anywhere.
            patches: (N, C, P, P) uint8 in placeholder order (row-major over the batch).
            patch_positions: (N, 4) int64 [row_lo, row_hi, col_lo, col_hi) in position bins.
            replace: (mask (B, L) bool, vectors (B, L, D)): where mask, the vector stands for the
                id's lookup (a value group's embedding); positions are added as usual.

        Returns:
            (B, L, D) in the token table's dtype.
        """
        x = self.embed_ids(input_ids)  # (B, L, D)
        if replace is not None:
            mask, vectors = replace
            x = torch.where(mask.unsqueeze(-1), vectors.to(x.dtype), x)
        if patches is not None and patches.shape[0]:
            if patch_positions is None or patch_positions.shape != (len(patches), 4):
                raise ValueError(
                    f"{len(patches)} patches need their (N, 4) patch_positions, got "
                    f"{None if patch_positions is None else tuple(patch_positions.shape)}"
                )
            bins = self.patch_rows.num_embeddings
            rows = patch_position_indices(patch_positions[:, 0:2], self.training, bins)
            cols = patch_position_indices(patch_positions[:, 2:4], self.training, bins)
            content = self.embed_patch_content(patches)  # (N, D)
            emb = content + self.patch_rows(rows) + self.patch_cols(cols)
            # masked_scatter fills the selected positions in row-major order: placeholder order.
            x = x.masked_scatter((input_ids == PATCH_ID).unsqueeze(-1), emb.to(x.dtype))
        if local_positions is not None:
            has_local = local_positions >= 0
            local = self.local_positions(local_positions.clamp(min=0))  # (B, L, D)
            x = x + local * has_local.unsqueeze(-1).to(local.dtype)
        return self.dropout(x)
