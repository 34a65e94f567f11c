"""The optimizer's schedule and parameter groups: pure pieces of the main job's training loop."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["learning_rate_factor", "parameter_groups"]


def learning_rate_factor(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Linear warmup from 0 to 1 over `warmup` steps, then cosine decay to `final_ratio`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (and conv kernels); leave biases, norms and position tables undecayed."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_table = "position" in name
        (decay if param.ndim >= 2 and not is_table else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
