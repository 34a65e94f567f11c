"""V-trace against slow references written from the paper's formulas (arXiv 1802.01561, 4.1)."""

from __future__ import annotations

import math

import pytest
import torch
from references import vtrace_recursive_reference, vtrace_sum_formula_reference

from gato.rl.vtrace import VTraceReturns, vtrace


def random_inputs(T: int, B: int, seed: int, episode_end_rate: float = 0.2) -> dict:
    """Random time-major inputs in float64; some discounts are 0 (episode ends)."""
    g = torch.Generator().manual_seed(seed)
    behaviour = -torch.rand(T, B, generator=g, dtype=torch.float64) * 2.0
    # Target log-probs on both sides of the behaviour's, so some ratios exceed the clips.
    target = behaviour + torch.randn(T, B, generator=g, dtype=torch.float64) * 0.7
    ends = torch.rand(T, B, generator=g, dtype=torch.float64) < episode_end_rate
    return {
        "behaviour_log_probs": behaviour,
        "target_log_probs": target,
        "rewards": torch.randn(T, B, generator=g, dtype=torch.float64),
        "discounts": torch.where(ends, 0.0, 0.9).to(torch.float64),
        "values": torch.randn(T, B, generator=g, dtype=torch.float64),
        "bootstrap_value": torch.randn(B, generator=g, dtype=torch.float64),
    }


CASES = [(1, 1), (1, 5), (7, 1), (5, 3), (20, 4)]


@pytest.mark.parametrize(("T", "B"), CASES)
@pytest.mark.parametrize(("rho_bar", "c_bar"), [(1.0, 1.0), (2.0, 0.5), (math.inf, 1.0)])
def test_matches_sum_formula_and_recursion(T: int, B: int, rho_bar: float, c_bar: float) -> None:
    inputs = random_inputs(T, B, seed=T * 100 + B)
    out = vtrace(**inputs, clip_rho_threshold=rho_bar, clip_c_threshold=c_bar)
    assert isinstance(out, VTraceReturns)
    assert out.vs.shape == (T, B) and out.pg_advantages.shape == (T, B)
    vs_sum, adv_sum = vtrace_sum_formula_reference(inputs, rho_bar, c_bar)
    vs_rec = vtrace_recursive_reference(inputs, rho_bar, c_bar)
    torch.testing.assert_close(out.vs, torch.tensor(vs_sum, dtype=torch.float64), rtol=1e-10,
                               atol=1e-10)  # fmt: skip
    torch.testing.assert_close(out.vs, torch.tensor(vs_rec, dtype=torch.float64), rtol=1e-10,
                               atol=1e-10)  # fmt: skip
    torch.testing.assert_close(
        out.pg_advantages, torch.tensor(adv_sum, dtype=torch.float64), rtol=1e-10, atol=1e-10
    )


def test_float32_close_to_float64() -> None:
    inputs = random_inputs(20, 8, seed=3)
    out64 = vtrace(**inputs)
    out32 = vtrace(**{k: v.float() for k, v in inputs.items()})
    torch.testing.assert_close(out32.vs, out64.vs.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out32.pg_advantages, out64.pg_advantages.float(), rtol=1e-5,
                               atol=1e-5)  # fmt: skip


def test_on_policy_is_n_step_return() -> None:
    """With pi = mu, c-bar = rho-bar = 1 and no episode end, v_s is the n-step return."""
    T, B, gamma = 6, 3, 0.95
    inputs = random_inputs(T, B, seed=11, episode_end_rate=0.0)
    inputs["target_log_probs"] = inputs["behaviour_log_probs"].clone()
    inputs["discounts"] = torch.full((T, B), gamma, dtype=torch.float64)
    out = vtrace(**inputs)
    r, boot = inputs["rewards"], inputs["bootstrap_value"]
    for s in range(T):
        expected = sum(gamma ** (t - s) * r[t] for t in range(s, T)) + gamma ** (T - s) * boot
        torch.testing.assert_close(out.vs[s], expected, rtol=1e-10, atol=1e-10)


def test_episode_end_cuts_the_trace() -> None:
    """A zero discount at step k: targets before k ignore everything after k."""
    inputs = random_inputs(8, 2, seed=5, episode_end_rate=0.0)
    inputs["discounts"][3] = 0.0
    first = vtrace(**inputs)
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["rewards"][4:] += 10.0
    changed["bootstrap_value"] += 10.0
    second = vtrace(**changed)
    torch.testing.assert_close(first.vs[:4], second.vs[:4])
    assert not torch.allclose(first.vs[4:], second.vs[4:])


def test_no_gradient_flows() -> None:
    inputs = random_inputs(4, 2, seed=1)
    inputs["values"].requires_grad_(True)
    inputs["target_log_probs"].requires_grad_(True)
    out = vtrace(**inputs)
    assert not out.vs.requires_grad and not out.pg_advantages.requires_grad


def test_rejects_mismatched_shapes() -> None:
    inputs = random_inputs(5, 3, seed=0)
    bad = dict(inputs, rewards=inputs["rewards"][:4])
    with pytest.raises(ValueError, match="rewards has shape"):
        vtrace(**bad)
    bad = dict(inputs, bootstrap_value=torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="bootstrap_value has shape"):
        vtrace(**bad)
    bad = dict(inputs, behaviour_log_probs=inputs["behaviour_log_probs"][0])
    with pytest.raises(ValueError, match=r"time-major \[T, B\]"):
        vtrace(**bad)
    bad = dict(inputs, values=inputs["values"].T)
    with pytest.raises(ValueError, match="values has shape"):
        vtrace(**bad)


def test_rejects_bad_thresholds_and_types() -> None:
    inputs = random_inputs(3, 2, seed=0)
    with pytest.raises(ValueError, match="must be at least clip_c_threshold"):
        vtrace(**inputs, clip_rho_threshold=0.5, clip_c_threshold=1.0)
    with pytest.raises(ValueError, match="clip_c_threshold must be positive"):
        vtrace(**inputs, clip_c_threshold=0.0)
    with pytest.raises(ValueError, match="clip_rho_threshold must be positive"):
        vtrace(**inputs, clip_rho_threshold=math.nan)
    with pytest.raises(TypeError, match="rewards must be a floating-point"):
        vtrace(**dict(inputs, rewards=torch.ones(3, 2, dtype=torch.int64)))
    with pytest.raises(TypeError, match="values must be a torch.Tensor"):
        vtrace(**dict(inputs, values=inputs["values"].numpy()))
