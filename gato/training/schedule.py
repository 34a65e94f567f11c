"""The optimizer's schedule and parameter groups: pure pieces of the main job's training loop."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["LR_SCHEDULES", "block_lr_factor", "learning_rate_factor", "parameter_groups"]


LR_SCHEDULES = ("cosine", "wsd")


def learning_rate_factor(
    step: int,
    warmup: int,
    total: int,
    final_ratio: float,
    schedule: str = "cosine",
    decay_fraction: float = 0.2,
) -> float:
    """Linear warmup from 0 to 1 over `warmup` steps, then to `final_ratio` at `total`:
    "cosine", a cosine decay over all the steps after the warmup (Gato); "wsd" (warmup, stable,
    decay: Hu et al. 2024, Haegele et al. 2024), the peak held until the last `decay_fraction`
    of the `total` steps, then a linear decay. At a fixed budget the second keeps the whole rate
    for longer; the cosine is down to about half of it by mid-run."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(
            f"unknown learning-rate schedule {schedule!r}; expected one of {LR_SCHEDULES}"
        )
    if not 0.0 < decay_fraction <= 1.0:
        raise ValueError(f"decay_fraction must lie in (0, 1], got {decay_fraction}")
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "wsd":
        start = max(warmup, total - round(decay_fraction * total))
        progress = min(1.0, max(0, step - start) / max(1, total - start))
        return 1.0 - (1.0 - final_ratio) * progress
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def block_lr_factor(step: int, block_lr_scale: float, scale_from: int) -> float:
    """The factor on a block group's rate (set to `learning_rate x block_lr_scale`) at `step`:
    1 from `scale_from` on, before it 1 / block_lr_scale, so the blocks learn at the whole rate.

    The slowing is for the value encoders, which start with control; a lesson before them (the
    demo's one-object captions) learns more at the whole rate (the main job's shape words: 91%
    of new scenes against 46% at 0.3), at a cost in control (docs/captions.md).
    """
    if not block_lr_scale > 0:
        raise ValueError(f"block_lr_scale must be positive, got {block_lr_scale}")
    if scale_from < 0:
        raise ValueError(f"block_lr_scale_from must be >= 0, got {scale_from}")
    return 1.0 if step >= scale_from else 1.0 / block_lr_scale


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
    scaled = block_lr_scale != 1.0
    if scaled and learning_rate is None:
        raise ValueError("block_lr_scale needs the base learning_rate to scale")
    # Called on the bare model, before accelerate or torch.compile wrap it.
    blocks = {id(p) for p in model.layers.parameters()} if scaled else set()
    # (decayed, in a scaled block) -> parameters; the first two groups in the order they had
    # before the option existed, so that a run saved then resumes with its optimizer state.
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {
        key: [] for key in ((True, False), (False, False), (True, True), (False, True))
    }
    for name, param in model.named_parameters():
        if param.requires_grad:
            decays = param.ndim >= 2 and "position" not in name
            groups[(decays, id(param) in blocks)].append(param)
    return [
        {
            "params": params,
            "weight_decay": weight_decay if decays else 0.0,
            **({"lr": learning_rate * block_lr_scale} if in_block else {}),
        }
        for (decays, in_block), params in groups.items()
        if params or not in_block
    ]
