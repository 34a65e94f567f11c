"""Rotary position embeddings (RoPE): the angles of a position, the rotation, a table of angles.

Queries and keys are rotated together in the (B, L, 2, H, d) layout the block's projection makes,
so the angles come as (B, L, 1, 1, d) (or (L, 1, 1, d) when every row sits at the same
positions): one broadcast serves both and every head.
"""

from __future__ import annotations

import torch

__all__ = ["RotaryTable", "apply_rotary", "rotary_cos_sin"]


def rotary_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation angles of each position, (B, L) -> cos, sin of shape (B, L, 1, 1, head_dim) fp32.

    Frequencies theta^(-2i/d) for i < d/2, each used for a pair of dimensions (the
    "rotate half" layout: dimension j pairs with j + d/2).
    """
    exponent = torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32)
    inv_freq = theta ** (-exponent / head_dim)  # (d/2,)
    angles = position_ids.to(torch.float32).unsqueeze(-1) * inv_freq  # (B, L, d/2)
    angles = torch.cat((angles, angles), dim=-1)[..., None, None, :]  # (B, L, 1, 1, d)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., d) by angles cos, sin broadcastable to it (cast to x's dtype)."""
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class RotaryTable:
    """cos, sin of positions [0, size) as (size, 1, 1, d) tensors in the activations' dtype,
    computed once by `rotary_cos_sin` (so the same values) and grown on demand: a decoding step
    slices or gathers its angles instead of computing them."""

    def __init__(
        self, head_dim: int, theta: float, dtype: torch.dtype, device: torch.device
    ) -> None:
        self.head_dim, self.theta, self.dtype, self.device = head_dim, theta, dtype, device
        self.cos = self.sin = torch.empty(0, 1, 1, head_dim, dtype=dtype, device=device)

    def grow(self, size: int) -> None:
        """Hold at least positions [0, size)."""
        if self.cos.shape[0] >= size:
            return
        positions = torch.arange(size, device=self.device)[None]  # (1, P)
        cos, sin = rotary_cos_sin(positions, self.head_dim, self.theta)  # (1, P, 1, 1, d)
        # Own tensors (not views): cheaper guards where a compiled function reads them.
        self.cos = cos[0].to(self.dtype).clone()
        self.sin = sin[0].to(self.dtype).clone()

    def span(self, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions start .. start + length - 1 of every row: (L, 1, 1, d) views."""
        return self.cos[start : start + length], self.sin[start : start + length]

    def at(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) positions -> (B, L, 1, 1, d)."""
        return self.cos[positions], self.sin[positions]
