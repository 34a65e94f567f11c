"""No forgetting: a PathNet-FFN `GatoModel` learns a new task on a fresh pathway.

1. A generalist (`GatoConfig(ffn="pathnet")`, pathway P0 = modules 0..N-1 of every block)
   trains on the old tasks (a mixture of registry tasks, equal weights).
2. It is scored on the old tasks: the mean action-token loss on fixed batches drawn with a seed
   the training never uses, and the expert-normalised return of a few greedy rollouts.
3. From that same state, the new task is learned two ways for the same number of steps:
   - pathnet: P0 is frozen, every shared weight too; only a fresh pathway P1's new modules train
     (`gato.experiments.pathnet.transfer.new_task_parameters`);
   - finetune: every parameter trains, on P0 (plain fine-tuning).
4. Both are scored again: the old tasks (pathnet through P0) and the new task (pathnet
   through P1). Pathnet must leave every old weight, loss and return bit-identical.

The evaluation batches come from the training episodes (the cached control datasets have one
split), under a different sampling seed: a measure of what the model retains, not of how it
generalises.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.experiments.pathnet.report import markdown_table
from gato.files import atomic_write_json, atomic_write_text

__all__ = ["ContinualConfig", "run_continual", "task_losses", "train_steps"]


@dataclass
class ContinualConfig:
    """The GatoModel continual-learning (no forgetting) experiment."""

    old_tasks: list[str] = field(default_factory=lambda: ["gym-cartpole", "gym-pendulum"])
    """Registry tasks the generalist learns first (their data must be collected)."""
    new_task: str = "dmc-cartpole-swingup"
    """The task learned afterwards."""
    preset: str = "tiny"
    """Model preset."""
    context: int = 128
    """Tokens per sequence."""
    batch_size: int = 8
    """Sequences per step."""
    old_steps: int = 300
    """Training steps on the old tasks."""
    new_steps: int = 200
    """Training steps on the new task (each way)."""
    learning_rate: float = 2e-3
    """AdamW peak learning rate (constant after a 20-step warmup)."""
    weight_decay: float = 0.1
    """AdamW weight decay (frozen weights are outside the optimizer, so it cannot touch them)."""
    pathnet_modules: int = 8
    """M: FFN modules per block."""
    pathnet_active: int = 4
    """N: modules per block in a pathway."""
    reuse: int = 0
    """Frozen old modules the new pathway reads in every block (the rest are fresh)."""
    eval_batches: int = 4
    """Fixed batches per task for the losses."""
    episodes: int = 5
    """Greedy rollouts per old task for returns (0: losses only)."""
    seed: int = 0
    """Seed of the weights, the data order and the rollouts."""
    output_dir: str = "runs/pathnet/gato"
    """Where results go."""

    def __post_init__(self) -> None:
        if not self.old_tasks:
            raise ValueError("ContinualConfig.old_tasks is empty")
        if self.new_task in self.old_tasks:
            raise ValueError(f"the new task {self.new_task!r} is one of the old tasks")
        for name in ("context", "batch_size", "old_steps", "new_steps", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"ContinualConfig.{name} must be >= 1")
        if not 0 <= self.reuse <= self.pathnet_active:
            raise ValueError(f"reuse must lie in [0, pathnet_active={self.pathnet_active}]")
        if self.pathnet_modules < self.pathnet_active + (self.pathnet_active - self.reuse):
            raise ValueError(
                f"pathnet_modules={self.pathnet_modules} leaves too few fresh modules for a new "
                f"pathway of {self.pathnet_active - self.reuse} fresh modules next to the "
                f"{self.pathnet_active} of the old one"
            )


def _mixture(tasks: list[str], config: ContinualConfig, seed: int) -> Any:
    from gato.data.mixture import Mixture, MixtureConfig, Recipe, SourceEntry

    recipe = Recipe("pathnet", tuple(SourceEntry(task=t, weight=1.0) for t in tasks))
    mix_cfg = MixtureConfig(context_length=config.context, batch_size=config.batch_size, seed=seed)
    return Mixture(recipe, mix_cfg, progress=False)


def train_steps(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    mixture: Any,
    steps: int,
    config: ContinualConfig,
    desc: str,
) -> list[float]:
    """`steps` AdamW steps on `params` over the mixture's batches 0.. steps-1; returns losses."""
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = min(20, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    model.train()
    losses = []
    bar = tqdm(range(steps), desc=desc, leave=False)
    for step in bar:
        batch = mixture.batch(step).batch
        loss = model(**batch.as_dict()).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


@torch.no_grad()
def task_losses(model: torch.nn.Module, mixture: Any, batches: int) -> dict[str, float]:
    """Mean target-token loss per source over the mixture's batches 0..batches-1."""
    model.eval()
    sums: dict[str, list[float]] = {}
    for step in range(batches):
        mixed = mixture.batch(step)
        out = model(**mixed.batch.as_dict())
        for row, index in enumerate(mixed.source_index.tolist()):
            entry = sums.setdefault(mixed.source_names[index], [0.0, 0.0])
            entry[0] += float(out.sequence_loss_sums[row])
            entry[1] += float(out.sequence_loss_counts[row])
    return {name: s / max(n, 1.0) for name, (s, n) in sorted(sums.items())}


def _returns(model: torch.nn.Module, tasks: list[str], config: ContinualConfig) -> dict[str, Any]:
    """Greedy rollouts: mean return and expert-normalised score per task."""
    if config.episodes == 0:
        return {}
    from gato.evaluation.control import ControlEvalConfig, evaluate_task
    from gato.tasks.registry import get_task
    from gato.tokens.tokenizer import GatoTokenizer

    tokenizer = GatoTokenizer.from_config(model.config)
    eval_cfg = ControlEvalConfig(
        episodes=config.episodes, num_envs=config.episodes, seed=config.seed, progress=False
    )
    out = {}
    for task in tasks:
        result = evaluate_task(model, tokenizer, get_task(task), eval_cfg)
        out[task] = {"mean_return": result.mean_return, "normalized": result.normalized_score}
    return out


def run_continual(
    config: ContinualConfig, progress: bool = True, command: str | None = None
) -> dict[str, Any]:
    """The whole experiment; writes result.json and result.md under `config.output_dir`."""
    from gato.experiments.pathnet.transfer import (
        freeze_pathway,
        fresh_pathway,
        new_task_parameters,
    )
    from gato.modeling.config import GatoConfig
    from gato.modeling.ffn import get_pathway, set_pathway
    from gato.modeling.model import GatoModel

    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    model_cfg = GatoConfig.from_preset(
        config.preset,
        ffn="pathnet",
        pathnet_modules=config.pathnet_modules,
        pathnet_active=config.pathnet_active,
        max_position_embeddings=config.context,
    )
    model = GatoModel(model_cfg)
    old_train = _mixture(config.old_tasks, config, config.seed)
    new_train = _mixture([config.new_task], config, config.seed)
    # Evaluation batches: the same episodes under a seed the training never draws with.
    old_eval = _mixture(config.old_tasks, config, config.seed + 10_000)
    new_eval = _mixture([config.new_task], config, config.seed + 10_000)

    p0 = get_pathway(model)
    old_curve = train_steps(
        model, list(model.parameters()), old_train, config.old_steps, config, "old tasks"
    )
    base_state = copy.deepcopy(model.state_dict())
    before = {
        "old_loss": task_losses(model, old_eval, config.eval_batches),
        "new_loss": task_losses(model, new_eval, config.eval_batches),
        "returns": _returns(model, config.old_tasks, config),
    }

    results: dict[str, Any] = {}
    for way in ("pathnet", "finetune"):
        model.load_state_dict(base_state)
        model.requires_grad_(True)
        set_pathway(model, p0)
        if way == "pathnet":
            freeze_pathway(model, p0)
            p1 = fresh_pathway(model, reuse=config.reuse)
            params = new_task_parameters(model, p1)
        else:
            p1 = p0
            params = list(model.parameters())
        trainable = sum(p.numel() for p in params)
        curve = train_steps(model, params, new_train, config.new_steps, config, way)
        set_pathway(model, p1)
        new_loss = task_losses(model, new_eval, config.eval_batches)
        set_pathway(model, p0)
        state = model.state_dict()
        # Modules outside P0 are never read by the old tasks.
        unread = {
            f"layers.{layer}.mlp.experts.{m}."
            for layer, row in enumerate(p0)
            for m in range(model_cfg.pathnet_modules)
            if m not in set(row.tolist())
        }
        # Which tensors the old tasks read changed (pathnet: none; buffers aside).
        changed = [
            name
            for name, tensor in base_state.items()
            if not any(name.startswith(prefix) for prefix in unread)
            and not name.endswith((".pathway", ".frozen"))
            and not torch.equal(tensor, state[name])
        ]
        results[way] = {
            "trainable_parameters": trainable,
            "new_pathway": np.asarray(p1).tolist(),
            "new_loss": new_loss,
            "old_loss": task_losses(model, old_eval, config.eval_batches),
            "returns": _returns(model, config.old_tasks, config),
            "old_weights_changed": len(changed),
            "train_loss_first_last": [curve[0], float(np.mean(curve[-10:]))],
        }
    report = {
        "command": command,
        "config": asdict(config),
        "seconds": time.perf_counter() - start,
        "old_train_loss_first_last": [old_curve[0], float(np.mean(old_curve[-10:]))],
        "before": before,
        **results,
    }
    report["table"] = continual_table(report, config)
    out = Path(config.output_dir)
    atomic_write_json(out / "result.json", report)
    atomic_write_text(out / "result.md", report["table"] + "\n")
    return report


def continual_table(report: dict[str, Any], config: ContinualConfig) -> str:
    """Old and new tasks: before, after PathNet, after fine-tuning."""
    rows = []
    ways = ("before", "pathnet", "finetune")
    for task in config.old_tasks:
        rows.append(
            [f"{task} (old) loss"]
            + [f"{report[w]['old_loss'].get(task, float('nan')):.4f}" for w in ways]
        )
        if report["before"]["returns"]:
            rows.append(
                [f"{task} (old) return"]
                + [f"{report[w]['returns'][task]['mean_return']:.1f}" for w in ways]
            )
    rows.append(
        [f"{config.new_task} (new) loss"]
        + [f"{report[w]['new_loss'][config.new_task]:.4f}" for w in ways]
    )
    rows.append(
        ["old-task weights changed", "-"]
        + [str(report[w]["old_weights_changed"]) for w in ways[1:]]
    )
    rows.append(
        ["trainable parameters", "-"] + [f"{report[w]['trainable_parameters']:,}" for w in ways[1:]]
    )
    return markdown_table(
        ["", "after old tasks", "+ new task: PathNet", "+ new task: fine-tune"], rows
    )
