"""Control frames as one position: a frame group's patches put back together and read whole.

With `GatoConfig.frame_group` = G, the tokenizer still cuts an observation's image into
`patch_size` patches in raster order (its sequence, token caches and batches are unchanged);
inside the model each run of G x G patch tokens of a control observation
(`gato.modeling.groups.control_frames`) is one position, whose vector is the Nature DQN stack
(`NaturePatchEmbedding`) on the (C, G P, G P) frame those patches came from. The frame needs no
row and column encodings: it is the whole image.
"""

from __future__ import annotations

import torch
from torch import nn

from gato.modeling.config import GatoConfig
from gato.modeling.embedding import NaturePatchEmbedding

__all__ = ["FrameEmbedding", "frame_pixels"]


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


class FrameEmbedding(nn.Module):
    """(M, G*G, C, P, P) uint8 patches of M control frames -> (M, D): each frame put back
    together and read by the Nature DQN's convolutions on its standardised pixels."""

    def __init__(self, config: GatoConfig) -> None:
        super().__init__()
        self.grid = config.frame_group
        self.encoder = NaturePatchEmbedding(config, side=self.grid * config.patch_size)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.encoder(frame_pixels(patches, self.grid))
