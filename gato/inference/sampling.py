"""Picking a token from logits: greedy at temperature 0, else a softmax draw."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "ORDERED_DECODINGS",
    "mean_classes",
    "median_classes",
    "ordered_classes",
    "sample_tokens",
]


def sample_tokens(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, V') logits -> (B,) int64 indices: argmax at temperature 0, else a softmax draw."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def median_classes(logits: torch.Tensor) -> torch.Tensor:
    """(B, V') logits over ordered classes (a continuous value's bins, low to high) -> (B,)
    int64 the median class: the first whose cumulative probability reaches one half.

    Where the most likely class is a narrow spike (an expert's clipped torque, always the same
    bin) beside mass spread over many neighbouring bins (its finer law elsewhere), the mode
    picks the spike even when most of the mass lies elsewhere; the median does not, and, unlike
    the mean, it is a class the model gives weight to."""
    cdf = F.softmax(logits.float(), dim=-1).cumsum(dim=-1)
    return (cdf < 0.5).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


def mean_classes(logits: torch.Tensor) -> torch.Tensor:
    """(B, V') logits over ordered classes equally spaced in value (a continuous action's bins)
    -> (B,) int64 the class nearest the distribution's mean (the expected value's bin)."""
    probs = F.softmax(logits.float(), dim=-1)
    index = torch.arange(logits.shape[-1], device=logits.device, dtype=probs.dtype)
    return (probs @ index).round().long()


ORDERED_DECODINGS = ("mode", "median", "mean")
"""How greedy decoding reads classes that are ordered values (`ordered_classes`)."""


def ordered_classes(
    logits: torch.Tensor,
    temperature: float,
    decoding: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, V') logits over ordered, equally spaced classes (a continuous action's bins) -> (B,)
    int64: at temperature 0 the `decoding` of `ORDERED_DECODINGS` (the most likely class, the
    median or the mean's), else a softmax draw as `sample_tokens`."""
    if decoding not in ORDERED_DECODINGS:
        raise ValueError(f"decoding must be one of {ORDERED_DECODINGS}, got {decoding!r}")
    if temperature == 0 and decoding == "median":
        return median_classes(logits)
    if temperature == 0 and decoding == "mean":
        return mean_classes(logits)
    return sample_tokens(logits, temperature, generator)
