"""The loss: the output head and the cross-entropy fused and chunked (`linear_cross_entropy`).

Training never holds the (N, V) logits of its targets (1.1 GB in fp32 at B=8, L=1024, twice
that with their gradient): each chunk's logits are turned into the gradients of the hidden states
and of the head inside the forward pass.
"""

from __future__ import annotations

import torch

__all__ = ["CPU_LOSS_CHUNK_ROWS", "LOSS_CHUNK_ROWS", "default_chunk_rows", "linear_cross_entropy"]

LOSS_CHUNK_ROWS = 1024
"""Targets per chunk of the fused head + cross-entropy on an accelerator: a (1024, 34112) fp32
block is 140 MB."""

CPU_LOSS_CHUNK_ROWS = 128
"""Targets per chunk on the CPU. Each chunk's logits are passed over several times (the softmax,
its gradient, the casts); at 128 rows a chunk's (128, 34112) fp32 block (17 MB) is reused from
one chunk to the next instead of each 140 MB block being fresh memory: the default run's step
took 7-12% less (`benchmarks/cpu_step_choices.py`; a ~900-target head alone ~130 against ~180 ms,
2 threads), 64 rows no better and 32 worse."""


def default_chunk_rows(device: torch.device) -> int:
    """Targets per chunk when the caller names none: `CPU_LOSS_CHUNK_ROWS` on the CPU,
    `LOSS_CHUNK_ROWS` elsewhere."""
    return CPU_LOSS_CHUNK_ROWS if device.type == "cpu" else LOSS_CHUNK_ROWS


class _LinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(hidden_i @ weight.T, labels_i), chunk by chunk, gradients computed on the way.

    Each chunk's logits live only inside the loop: the gradient of a sum of cross-entropies
    with respect to the logits is softmax - onehot, known in the forward pass, so the forward
    turns it straight into the gradients of `hidden` and `weight` and keeps those instead of the
    (N, V) logits (plus their softmax and its gradient) that autograd would keep. Same FLOPs as
    the plain head + `F.cross_entropy`; memory O(N D + V D) rather than O(N V).
    """

    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk_rows):
        device_type = hidden.device.type
        autocast = torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type) if autocast else weight.dtype
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if want_weight else None
        per_target = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        w = weight.to(dtype)
        with torch.autocast(device_type, enabled=False):
            for start in range(0, hidden.shape[0], chunk_rows):
                h = hidden[start : start + chunk_rows].to(dtype)  # (n, D)
                y = labels[start : start + chunk_rows]  # (n,)
                logits = (h @ w.T).float()  # (n, V)
                picked = logits.gather(1, y[:, None])  # (n, 1)
                # One in-place pass for both the log-sum-exp and the softmax (its gradient).
                top = logits.amax(dim=-1, keepdim=True)  # (n, 1)
                grad = logits.sub_(top).exp_()  # unnormalised softmax, (n, V)
                norm = grad.sum(dim=-1, keepdim=True)  # (n, 1)
                per_target[start : start + chunk_rows] = (norm.log() + top - picked).squeeze(1)
                if not (want_hidden or want_weight):
                    continue
                grad.div_(norm)
                grad[torch.arange(y.shape[0], device=y.device), y] -= 1.0
                grad = grad.to(dtype)
                if want_hidden:
                    grad_hidden[start : start + chunk_rows] = grad @ w
                if want_weight and dtype == torch.float32:
                    grad_weight.addmm_(grad.T, h)  # no (V, D) temporary
                elif want_weight:
                    grad_weight += (grad.T @ h).float()  # fp32 sum of low-precision chunks
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        # The per-target losses are for logging (per task, per sequence): only the sum has a
        # gradient, since the gradients above are those of the sum.
        ctx.mark_non_differentiable(per_target)
        return per_target.sum(), per_target

    @staticmethod
    def backward(ctx, grad_total, _grad_per_target):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_total.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_total).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    chunk_rows: int = 0,
    return_per_target: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of the logits `hidden @ weight.T` against `labels`, never holding
    more than one chunk of logits.

    Args:
        hidden: (N, D) hidden states that predict the targets.
        weight: (V, D) output head.
        labels: (N,) int64 targets.
        chunk_rows: targets per chunk (0: `default_chunk_rows` of `hidden`'s device).

    Returns:
        () fp32 sum over the N targets (divide by N for the mean). Under autocast the matmuls run
        in the autocast dtype and the softmax in fp32, as with the plain head. With
        `return_per_target`, also the (N,) fp32 loss of each target, without a gradient.
    """
    if chunk_rows < 0:
        raise ValueError(f"linear_cross_entropy: chunk_rows={chunk_rows} must be >= 0 (0: default)")
    total, per_target = _LinearCrossEntropy.apply(
        hidden, weight, labels, chunk_rows or default_chunk_rows(hidden.device)
    )
    return (total, per_target) if return_per_target else total
