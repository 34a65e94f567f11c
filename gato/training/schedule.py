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


def parameter_groups(
    model: torch.nn.Module,
    weight_decay: float,
    block_lr_scale: float = 1.0,
    learning_rate: float | None = None,
) -> list[dict[str, Any]]:
    """Decay matrices (and conv kernels); leave biases, norms and position tables undecayed.

    `block_lr_scale` != 1: the transformer blocks (`model.layers`) learn at `learning_rate` x
    the scale, everything else (embeddings, encoders, heads) at `learning_rate`; a scheduler
    scales every group alike. Blocks that learn as fast as a fresh value encoder keep changing
    what it feeds, and a clone from smooth inputs stalls (docs/control_learning.md).
    """
    if not block_lr_scale > 0:
        raise ValueError(f"block_lr_scale must be positive, got {block_lr_scale}")
    if block_lr_scale != 1.0 and learning_rate is None:
        raise ValueError("block_lr_scale needs the base learning_rate to scale")
    inner = model
    while hasattr(inner, "module") and not hasattr(inner, "layers"):  # DDP, torch.compile
        inner = inner.module
    blocks = {id(p) for p in inner.layers.parameters()} if block_lr_scale != 1.0 else set()
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_table = "position" in name
        decays = param.ndim >= 2 and not is_table
        groups.setdefault((decays, id(param) in blocks), []).append(param)
    # The order of the groups before the option existed (decayed, then not), so that a run
    # saved then resumes with its optimizer state; the blocks' groups, when scaled, come last.
    out = [
        {"params": groups.get((True, False), []), "weight_decay": weight_decay},
        {"params": groups.get((False, False), []), "weight_decay": 0.0},
    ]
    for decays in (True, False):
        if (decays, True) in groups:
            out.append(
                {
                    "params": groups[(decays, True)],
                    "weight_decay": weight_decay if decays else 0.0,
                    "lr": learning_rate * block_lr_scale,
                }
            )
    return out
