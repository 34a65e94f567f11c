"""Control frames as one position: a frame group's patches put back together and read whole.

With `GatoConfig.frame_group` = G, the tokenizer still cuts an observation's image into
`patch_size` patches in raster order (its sequence, token caches and batches are unchanged);
inside the model each run of G x G patch tokens of a control observation
(`gato.modeling.groups.control_frames`) is one position, whose vector is the Nature DQN stack
(`NaturePatchEmbedding`) on the (C, G P, G P) frame those patches came from. The frame needs no
row and column encodings: it is the whole image. With `GatoConfig.frame_differences` the
stack also gives its C - 1 differences between consecutive frames (`with_differences`).
"""

from __future__ import annotations

import torch
from torch import nn

from gato.codecs import patch_grid
from gato.modeling.config import GatoConfig
from gato.modeling.embedding import NaturePatchEmbedding, standardised_patches

__all__ = ["FrameEmbedding", "frame_pixels", "frames_left_as_patches", "with_differences"]


def frame_pixels(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """(M, G*G, C, P, P) patches of M frames in raster order -> (M, C, G*P, G*P) the frames.

    The inverse of the tokenizer's cut (`gato.codecs.frames_to_patches`): patch k holds rows
    [r P, (r + 1) P) and columns [c P, (c + 1) P) of its frame, r = k // G, c = k % G.
    """
    if patches.ndim != 5 or patches.shape[1] != grid * grid:
        raise ValueError(
            f"frame patches must be (M, {grid * grid}, C, P, P) for a {grid}x{grid} grid, got "
            f"{tuple(patches.shape)}"
        )
    m, _, c, p, _ = patches.shape
    x = patches.view(m, grid, grid, c, p, p).permute(0, 3, 1, 4, 2, 5)  # (M, C, G, P, G, P)
    return x.reshape(m, c, grid * p, grid * p)


def frames_left_as_patches(
    image_sides: dict[str, tuple[int, int]], patch_size: int, frame_group: int
) -> dict[str, tuple[int, int]]:
    """{task: (height, width) of its observation images} -> {task: (rows, columns) of patches}
    for the tasks whose images a frame group of `frame_group` does not read whole: the tokenizer
    cuts them into a grid other than `frame_group` x `frame_group`, so they enter as patch
    tokens (`gato.modeling.groups.control_frames` marks only runs of G x G)."""
    grids = {task: patch_grid(h, w, patch_size) for task, (h, w) in image_sides.items()}
    return {task: grid for task, grid in grids.items() if grid != (frame_group, frame_group)}


def with_differences(x: torch.Tensor) -> torch.Tensor:
    """(M, C, H, W) a stack of C frames, oldest first -> (M, 2 C - 1, H, W): the stack, then
    frame k + 1 minus frame k for k = 0 .. C - 2."""
    if x.ndim != 4 or x.shape[1] < 2:
        raise ValueError(
            f"with_differences needs (M, C, H, W) stacks of 2 or more frames, got {tuple(x.shape)}"
        )
    return torch.cat([x, x[:, 1:] - x[:, :-1]], dim=1)


class FrameEmbedding(nn.Module):
    """(M, G*G, C, P, P) uint8 patches of M control frames -> (M, D): each frame put back
    together and read by the Nature DQN's convolutions on its standardised pixels (and, with
    `frame_differences`, their differences between consecutive frames)."""

    def __init__(self, config: GatoConfig) -> None:
        super().__init__()
        self.grid = config.frame_group
        self.differences = config.frame_differences
        c = config.image_channels
        channels = 2 * c - 1 if self.differences else c
        self.encoder = NaturePatchEmbedding(
            config, side=self.grid * config.patch_size, channels=channels
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = standardised_patches(frame_pixels(patches, self.grid))  # (M, C, G P, G P)
        return self.encoder.read(with_differences(x) if self.differences else x)
