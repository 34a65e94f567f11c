"""Picking a token from logits: greedy at temperature 0, else a softmax draw."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sample_tokens"]


def sample_tokens(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, V') logits -> (B,) int64 indices: argmax at temperature 0, else a softmax draw."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
