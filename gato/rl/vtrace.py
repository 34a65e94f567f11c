"""V-trace off-policy targets (Espeholt et al. 2018, arXiv 1802.01561, section 4.1).

Time-major throughout: `[T, B]`, time first. With per-step discounts `d_t` (gamma, or 0 where
an episode ends after step t) the n-step target is

    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} d_i c_i) delta_t,
    delta_t = rho_t (r_t + d_t V(x_{t+1}) - V(x_t)),

with truncated importance weights rho_t = min(rho_bar, pi/mu) and c_i = min(c_bar, pi/mu), and
V(x_T) the bootstrap value. It is computed here by the equivalent backward recursion

    v_s - V(x_s) = delta_s + d_s c_s (v_{s+1} - V(x_{s+1})),

and the policy gradient's advantage is rho_s (r_s + d_s v_{s+1} - V(x_s)). The targets are
constants for the learner (no gradient flows through them), so everything runs without autograd.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class VTraceReturns(NamedTuple):
    """What `vtrace` returns; both `[T, B]`, detached from the autograd graph.

    Attributes:
        vs: V-trace value targets v_s, the baseline's regression targets.
        pg_advantages: rho_s (r_s + d_s v_{s+1} - V(x_s)), the policy gradient's weights.
    """

    vs: Tensor
    pg_advantages: Tensor


def _check_inputs(
    behaviour_log_probs: Tensor,
    target_log_probs: Tensor,
    rewards: Tensor,
    discounts: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    clip_rho_threshold: float,
    clip_c_threshold: float,
) -> None:
    named = {
        "behaviour_log_probs": behaviour_log_probs,
        "target_log_probs": target_log_probs,
        "rewards": rewards,
        "discounts": discounts,
        "values": values,
        "bootstrap_value": bootstrap_value,
    }
    for name, value in named.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"vtrace: {name} must be a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"vtrace: {name} must be a floating-point tensor, got {value.dtype}")
    if behaviour_log_probs.dim() != 2:
        raise ValueError(
            "vtrace: behaviour_log_probs must be time-major [T, B], "
            f"got shape {tuple(behaviour_log_probs.shape)}"
        )
    shape = behaviour_log_probs.shape
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"vtrace: T and B must be at least 1, got [T, B] = {list(shape)}")
    for name in ("target_log_probs", "rewards", "discounts", "values"):
        if named[name].shape != shape:
            raise ValueError(
                f"vtrace: {name} has shape {tuple(named[name].shape)}, expected [T, B] = "
                f"{tuple(shape)} like behaviour_log_probs"
            )
    if bootstrap_value.shape != shape[1:]:
        raise ValueError(
            f"vtrace: bootstrap_value has shape {tuple(bootstrap_value.shape)}, expected [B] = "
            f"({shape[1]},)"
        )
    devices = {v.device for v in named.values()}
    if len(devices) > 1:
        raise ValueError(f"vtrace: inputs are on several devices {sorted(map(str, devices))}")
    for name, threshold in (
        ("clip_rho_threshold", clip_rho_threshold),
        ("clip_c_threshold", clip_c_threshold),
    ):
        if not threshold > 0:  # also rejects NaN
            raise ValueError(f"vtrace: {name} must be positive, got {threshold}")
    if clip_rho_threshold < clip_c_threshold:
        # c_bar > rho_bar would weight the traces above the fixed point's own weights; the
        # paper's analysis (and its contraction argument) assumes c_bar <= rho_bar.
        raise ValueError(
            f"vtrace: clip_rho_threshold (rho-bar = {clip_rho_threshold}) must be at least "
            f"clip_c_threshold (c-bar = {clip_c_threshold})"
        )


def vtrace(
    behaviour_log_probs: Tensor,
    target_log_probs: Tensor,
    rewards: Tensor,
    discounts: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    clip_rho_threshold: float = 1.0,
    clip_c_threshold: float = 1.0,
) -> VTraceReturns:
    """V-trace targets and policy-gradient advantages.

    Args:
        behaviour_log_probs: [T, B] log mu(a_t | x_t) of the actions taken, by the actor's policy.
        target_log_probs: [T, B] log pi(a_t | x_t) of the same actions, by the learner's policy.
        rewards: [T, B] r_t.
        discounts: [T, B] d_t: the discount after step t, 0 where the episode ended at step t.
        values: [T, B] V(x_t) by the learner's baseline.
        bootstrap_value: [B] V(x_T), the value of the observation after the last step.
        clip_rho_threshold: rho-bar, the truncation of the importance weights in delta_t and in
            the policy gradient; math.inf disables it.
        clip_c_threshold: c-bar, the truncation of the trace coefficients; at most rho-bar.

    Returns:
        `VTraceReturns(vs, pg_advantages)`, both [T, B], without gradient.

    Raises:
        TypeError: a non-tensor or non-float input.
        ValueError: mismatched shapes, non-positive thresholds, or rho-bar < c-bar.
    """
    _check_inputs(
        behaviour_log_probs,
        target_log_probs,
        rewards,
        discounts,
        values,
        bootstrap_value,
        clip_rho_threshold,
        clip_c_threshold,
    )
    with torch.no_grad():
        rhos = torch.exp(target_log_probs - behaviour_log_probs)
        clipped_rhos = rhos.clamp(max=clip_rho_threshold)
        cs = rhos.clamp(max=clip_c_threshold)
        next_values = torch.cat([values[1:], bootstrap_value.unsqueeze(0)], dim=0)  # [T, B]
        deltas = clipped_rhos * (rewards + discounts * next_values - values)
        decay = discounts * cs
        # Backward recursion over time; T is an unroll's length (tens of steps), so a Python
        # loop over [B]-vectors costs little next to the network. One fused multiply-add per
        # step, written straight into its row (a third fewer operations than add, multiply and
        # copy: the loop is a visible share of a small learner's update).
        vs_minus_values = torch.empty_like(values)
        accumulated = torch.zeros_like(bootstrap_value)
        for t in range(values.shape[0] - 1, -1, -1):
            accumulated = torch.addcmul(deltas[t], decay[t], accumulated, out=vs_minus_values[t])
        vs = values + vs_minus_values
        next_vs = torch.cat([vs[1:], bootstrap_value.unsqueeze(0)], dim=0)  # [T, B]
        pg_advantages = clipped_rhos * (rewards + discounts * next_vs - values)
    return VTraceReturns(vs=vs, pg_advantages=pg_advantages)


__all__ = ["VTraceReturns", "vtrace"]
