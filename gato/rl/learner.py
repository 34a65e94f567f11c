"""IMPALA's learner: the loss, the update, checkpoints and the exported policy.

The loss of a batch of unrolls (sums over time and batch, as in the paper, so the gradient-norm
clip of 40 and the learning rate 6e-4 keep their meaning):

    policy   = - sum_{t,b} log pi(a_t | x_t) * A_t                A_t: V-trace's pg advantage
    baseline = baseline_cost * 1/2 * sum_{t,b} (v_t - V(x_t))^2   v_t: V-trace target
    entropy  = - entropy_cost * sum_{t,b} H(pi(. | x_t))          (a bonus: lowers the loss)

and the update is RMSProp (decay 0.99, epsilon 0.01, no momentum) on the clipped gradient, the
learning rate falling linearly to 0 over the run.

Checkpoints: `<run>/checkpoints/step-<steps>/` holds `policy.pt` + `policy.json` (the network's
weights, class, hyperparameters and spaces: enough to act without the training code),
`learner.pt` (optimizer, counters, random state) and `config.json`, with a checksummed
MANIFEST.json (the run folder's format is `gato.checkpoints`). Each is written to a temporary
folder, renamed into place, and `checkpoints/latest` is replaced atomically after: a crash at any
moment leaves the previous good checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gato.checkpoints import (
    CHECKPOINTS,
    latest_checkpoint,
    prune,
    publish,
    step_name,
    verify_checkpoint,
    write_latest,
    write_manifest,
)
from gato.rl.networks import ActorCritic, build_network, network_target
from gato.rl.spaces import space_from_dict, space_to_dict
from gato.rl.vtrace import vtrace

POLICY_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """The loss or its gradient went NaN or infinite; training stops, checkpoints stay good."""


class ImpalaLoss(NamedTuple):
    """Scalar terms of the IMPALA loss (`total` = the sum of the other three)."""

    total: Tensor
    policy: Tensor
    baseline: Tensor
    entropy: Tensor


def impala_loss(
    behaviour_log_probs: Tensor,
    target_log_probs: Tensor,
    entropy: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    rewards: Tensor,
    discounts: Tensor,
    baseline_cost: float = 0.5,
    entropy_cost: float = 0.01,
    clip_rho_threshold: float = 1.0,
    clip_c_threshold: float = 1.0,
) -> ImpalaLoss:
    """The IMPALA loss of a batch; all inputs [T, B] but `bootstrap_value` [B].

    `target_log_probs`, `entropy` and `values` carry the learner's gradient; V-trace sees them
    detached (its targets are constants).
    """
    if entropy.shape != target_log_probs.shape:
        raise ValueError(
            f"impala_loss: entropy has shape {tuple(entropy.shape)}, expected "
            f"{tuple(target_log_probs.shape)} like target_log_probs"
        )
    targets = vtrace(
        behaviour_log_probs,
        target_log_probs.detach(),
        rewards,
        discounts,
        values.detach(),
        bootstrap_value.detach(),
        clip_rho_threshold,
        clip_c_threshold,
    )
    policy = -(target_log_probs * targets.pg_advantages).sum()
    baseline = baseline_cost * 0.5 * (targets.vs - values).pow(2).sum()
    entropy_term = -entropy_cost * entropy.sum()
    return ImpalaLoss(policy + baseline + entropy_term, policy, baseline, entropy_term)


class Learner:
    """The network, its RMSProp optimizer and the update of one batch of unrolls.

    Args:
        network: the policy being learnt.
        config: an `ImpalaConfig` (discount, costs, clips, optimizer and schedule fields).
    """

    def __init__(self, network: ActorCritic, config: Any) -> None:
        self.network = network
        self.config = config
        # foreach: one multi-tensor kernel per RMSProp operation instead of one per parameter
        # (the same arithmetic; torch picks it by itself only on GPUs).
        self.optimizer = torch.optim.RMSprop(
            network.parameters(),
            lr=config.learning_rate,
            alpha=config.rmsprop_alpha,
            eps=config.rmsprop_eps,
            momentum=config.rmsprop_momentum,
            foreach=True,
        )
        # The default Categorical over logits is scored by one log-softmax (checked once here).
        self.categorical = (
            network.discrete and type(network).distribution is ActorCritic.distribution
        )
        self.steps = 0
        self.updates = 0

    def learning_rate(self) -> float:
        """Linear decay from the configured rate to 0 at `total_steps` (when annealing)."""
        cfg = self.config
        if not cfg.anneal_lr:
            return cfg.learning_rate
        return cfg.learning_rate * max(0.0, 1.0 - self.steps / cfg.total_steps)

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One optimizer step on a batch from `stack_unrolls` (obs [T + 1, B, ...], ...)."""
        cfg = self.config
        action = batch["action"]
        T, B = action.shape[:2]
        if batch["obs"].shape[:2] != (T + 1, B):
            raise ValueError(
                f"batch: obs must be [T + 1, B, ...] = [{T + 1}, {B}, ...], got "
                f"{tuple(batch['obs'].shape)}"
            )
        network = self.network
        params, values = network(batch["obs"].flatten(0, 1))  # (T+1)B rows
        params = params.view(T + 1, B, -1)
        values = values.view(T + 1, B)
        if self.categorical:
            # What Categorical(logits=...) computes, in three operations instead of about ten.
            log_pi = torch.log_softmax(params[:-1].flatten(0, 1), dim=-1)  # (T B, A)
            target_log_probs = log_pi.gather(1, action.reshape(-1, 1)).view(T, B)
            p_log_p = log_pi.clamp(min=torch.finfo(log_pi.dtype).min) * log_pi.exp()
            entropy = -p_log_p.sum(-1).view(T, B)
        else:
            dist = network.distribution(params[:-1].flatten(0, 1))
            target_log_probs = dist.log_prob(action.flatten(0, 1)).view(T, B)
            entropy = dist.entropy().view(T, B)
        rewards = batch["reward"].float()
        if cfg.reward_clip is not None:
            rewards = rewards.clamp(-cfg.reward_clip, cfg.reward_clip)
        discounts = (~batch["done"]).float() * cfg.discount
        loss = impala_loss(
            batch["behaviour_log_prob"],
            target_log_probs,
            entropy,
            values[:-1],
            values[-1],
            rewards,
            discounts,
            cfg.baseline_cost,
            cfg.entropy_cost,
            cfg.clip_rho_threshold,
            cfg.clip_c_threshold,
        )
        terms = {name: float(value.detach()) for name, value in loss._asdict().items()}
        if not all(math.isfinite(v) for v in terms.values()):
            raise NonFiniteLossError(
                f"non-finite IMPALA loss at update {self.updates + 1} (step {self.steps}): "
                + ", ".join(f"{k}={v}" for k, v in terms.items())
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        grad_norm = self._clip_gradients(cfg.grad_clip)
        learning_rate = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.optimizer.step()
        self.steps += T * B
        self.updates += 1
        with torch.no_grad():
            ratio = (target_log_probs.detach() - batch["behaviour_log_prob"]).exp()
        return {
            "loss/total": terms["total"],
            "loss/policy": terms["policy"],
            "loss/baseline": terms["baseline"],
            "loss/entropy": terms["entropy"],
            "learner/entropy": float(entropy.detach().mean()),
            "learner/grad_norm": grad_norm,
            "learner/learning_rate": learning_rate,
            "learner/importance_ratio": float(ratio.mean()),
            "learner/value": float(values.detach().mean()),
        }

    def _clip_gradients(self, max_norm: float) -> float:
        """`torch.nn.utils.clip_grad_norm_` (the same arithmetic) without its per-call wrapping
        and parameter walks; raises `NonFiniteLossError` on a non-finite norm, before scaling."""
        grads = [p.grad for p in self.network.parameters() if p.grad is not None]
        if not grads:
            return 0.0
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        grad_norm = float(total)
        if not math.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"non-finite gradient norm at update {self.updates + 1} (step {self.steps})"
            )
        coefficient = (max_norm / (total + 1e-6)).clamp(max=1.0)
        if float(coefficient) < 1.0:  # x 1.0 would change nothing
            torch._foreach_mul_(grads, coefficient)
        return grad_norm

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "updates": self.updates,
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group["foreach"] = True  # checkpoints of older versions saved None
        self.steps = int(state["steps"])
        self.updates = int(state["updates"])
        torch.set_rng_state(state["torch_rng"])


# ---------------------------------------------------------------------------------------------
# Policy files
# ---------------------------------------------------------------------------------------------


def write_policy(folder: Path, network: ActorCritic, info: dict[str, Any]) -> None:
    """`policy.pt` (weights) and `policy.json` (class, hyperparameters, spaces, `info`)."""
    torch.save(network.state_dict(), folder / "policy.pt")
    meta = {
        "format": POLICY_FORMAT,
        "network": network_target(network),
        "hyperparameters": network.hyperparameters(),
        "observation_space": space_to_dict(network.observation_space),
        "action_space": space_to_dict(network.action_space),
        **info,
    }
    (folder / "policy.json").write_text(json.dumps(meta, indent=2))


def resolve_policy_folder(path: str | Path) -> Path:
    """A folder holding policy.json: the folder itself, or a run's latest checkpoint."""
    path = Path(path)
    if (path / "policy.json").exists():
        return path
    latest = latest_checkpoint(path)
    if latest is not None and (latest / "policy.json").exists():
        return latest
    raise FileNotFoundError(
        f"no IMPALA policy at {path}: expected policy.json there, or a run folder with "
        "checkpoints/latest"
    )


def load_policy(path: str | Path) -> tuple[ActorCritic, dict[str, Any]]:
    """The network saved in a policy folder (or a run's latest checkpoint), in eval mode, and
    its policy.json. The folder's checksums are verified first."""
    folder = resolve_policy_folder(path)
    verify_checkpoint(folder)
    meta = json.loads((folder / "policy.json").read_text())
    if meta.get("format") != POLICY_FORMAT:
        raise ValueError(f"{folder}/policy.json: unknown format {meta.get('format')!r}")
    network = build_network(
        meta["network"],
        space_from_dict(meta["observation_space"]),
        space_from_dict(meta["action_space"]),
        meta.get("hyperparameters", {}),
    )
    state = torch.load(folder / "policy.pt", map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    network.eval()
    return network, meta


def export_policy(source: str | Path, destination: str | Path) -> Path:
    """Copy the policy of a checkpoint (or a run's latest) to `destination`, replacing it whole.

    The destination is what an `impala` expert's `checkpoint` parameter names: two small files
    and a manifest, no optimizer state.
    """
    folder = resolve_policy_folder(source)
    verify_checkpoint(folder)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in ("policy.pt", "policy.json"):
        shutil.copy2(folder / name, tmp / name)
    write_manifest(tmp, {"source": str(folder)})
    old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
    if destination.exists():
        os.replace(destination, old)
    os.replace(tmp, destination)
    shutil.rmtree(old, ignore_errors=True)
    return destination


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def checkpoint_name(steps: int) -> str:
    """`step-000000012800`: 12 digits, as environment frames run to billions."""
    return step_name(steps, digits=12)


def save_checkpoint(
    run_dir: Path,
    learner: Learner,
    config: dict[str, Any],
    info: dict[str, Any],
    extra: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write `checkpoints/step-<steps>/` atomically, point `latest` at it, prune old ones.

    `info` goes into policy.json (task, column, returns); `extra` into learner.pt (log offsets).
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(learner.steps)
    final = root / name
    if not final.exists():
        tmp = root / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write_policy(tmp, learner.network, {**info, "steps": learner.steps})
        torch.save({**learner.state_dict(), "extra": extra}, tmp / "learner.pt")
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        write_manifest(tmp, {"steps": learner.steps, "updates": learner.updates})
        publish(tmp, final)
    write_latest(root, name)
    prune(root, keep=max(1, keep), current=name)
    return final


def load_checkpoint(folder: Path, learner: Learner) -> dict[str, Any]:
    """Restore the network and learner from a checkpoint folder; returns its `extra`."""
    verify_checkpoint(folder)
    state = torch.load(folder / "policy.pt", map_location="cpu", weights_only=True)
    learner.network.load_state_dict(state)
    learner_state = torch.load(folder / "learner.pt", map_location="cpu", weights_only=False)
    learner.load_state_dict(learner_state)
    return learner_state.get("extra", {})


__all__ = [
    "ImpalaLoss",
    "Learner",
    "NonFiniteLossError",
    "checkpoint_name",
    "export_policy",
    "impala_loss",
    "load_checkpoint",
    "load_policy",
    "resolve_policy_folder",
    "save_checkpoint",
    "write_policy",
]
