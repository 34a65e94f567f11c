"""IMPALA (Espeholt et al. 2018): actors step environments, one learner learns with V-trace.

    python -m gato.rl.impala --task gym-cartpole --preset classic --total_steps 500000

trains the task's policy with `num_actors` actor processes (or Ray actors with `--backend ray`),
writing to `runs/impala/<task>/`: `run.json` (command and config), `metrics.jsonl` (one line per
update), `episodes.jsonl` (one line per finished episode), TensorBoard logs under `tb/`,
checkpoints under `checkpoints/` (`--resume` continues from the latest), `learning_curve.png`
and `summary.json` at the end. `--export_dir data/experts/impala/<task>` copies the final policy
where the `impala` expert (`gato.rl.expert`) loads it.

From Python, `train(config, network_fn)` runs the same loop; `network_fn(observation_space,
action_space) -> ActorCritic` replaces the default network (see `gato.rl.networks`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.checkpoints import latest_checkpoint
from gato.files import gato_home
from gato.rl.actors import actor_settings
from gato.rl.learner import (
    Learner,
    NonFiniteLossError,
    checkpoint_name,
    export_policy,
    load_checkpoint,
    save_checkpoint,
)
from gato.rl.networks import ActorCritic, default_network
from gato.rl.runner import make_layout, stack_unrolls
from gato.rl.spaces import observation_column, task_spaces
from gato.tasks.envs import make_env
from gato.tasks.registry import UnknownTaskError, get_task


@dataclass
class ImpalaConfig:
    """One IMPALA run. Defaults are the paper's Atari hyperparameters where it gives them."""

    task: str = field(default="gym-cartpole", metadata={"help": "task id in the registry"})
    registry: str | None = field(
        default=None, metadata={"help": "task registry file (default data/tasks.toml)"}
    )
    preset: str | None = field(
        default=None, metadata={"help": "the named preset these values started from"}
    )
    total_steps: int = field(
        default=1_000_000,
        metadata={"help": "environment (agent) steps to learn from; frames = steps x frame skip"},
    )
    num_actors: int = field(default=2, metadata={"help": "actor processes (or Ray actors)"})
    envs_per_actor: int = field(
        default=8, metadata={"help": "environments each actor steps, batched through its policy"}
    )
    unroll_length: int = field(default=20, metadata={"help": "steps per unroll (paper: 20)"})
    batch_size: int = field(
        default=32,
        metadata={"help": "unroll columns per update (paper: 32); a multiple of envs_per_actor"},
    )
    buffers_per_actor: int = field(
        default=2, metadata={"help": "shared buffers per actor (2: fill one while one is read)"}
    )
    discount: float = field(default=0.99, metadata={"help": "discount gamma"})
    learning_rate: float = field(default=6e-4, metadata={"help": "initial RMSProp step size"})
    anneal_lr: bool = field(
        default=True, metadata={"help": "decay the learning rate linearly to 0 at total_steps"}
    )
    rmsprop_alpha: float = field(default=0.99, metadata={"help": "RMSProp decay"})
    rmsprop_eps: float = field(default=0.01, metadata={"help": "RMSProp epsilon (paper: 0.01)"})
    rmsprop_momentum: float = field(default=0.0, metadata={"help": "RMSProp momentum"})
    grad_clip: float = field(default=40.0, metadata={"help": "global gradient-norm clip"})
    baseline_cost: float = field(default=0.5, metadata={"help": "weight of the value loss"})
    entropy_cost: float = field(default=0.01, metadata={"help": "weight of the entropy bonus"})
    clip_rho_threshold: float = field(default=1.0, metadata={"help": "V-trace rho-bar"})
    clip_c_threshold: float = field(
        default=1.0, metadata={"help": "V-trace c-bar (at most rho-bar)"}
    )
    reward_clip: float | None = field(
        default=None, metadata={"help": "clip rewards to [-x, x] in the loss (Atari: 1)"}
    )
    bootstrap_truncated: bool = field(
        default=True,
        metadata={"help": "at a time limit, add discount x V(final observation) to the reward"},
    )
    hidden: list[int] = field(
        default_factory=lambda: [64, 64], metadata={"help": "hidden widths of the MLP networks"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the network and the environments"})
    backend: str = field(default="local", metadata={"help": "local (processes) or ray"})
    start_method: str = field(
        default="forkserver",
        metadata={"help": "start method of local actors: forkserver (fast restarts), spawn, fork"},
    )
    ray_address: str | None = field(
        default=None, metadata={"help": "Ray cluster address (None: start a local instance)"}
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "run folder (default runs/impala/<task>)"}
    )
    checkpoint_every: int = field(default=200_000, metadata={"help": "steps between checkpoints"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept on disk"})
    resume: bool = field(default=False, metadata={"help": "continue the run in output_dir"})
    stop_at_return: float | None = field(
        default=None,
        metadata={
            "help": "stop once the mean return of the last return_window episodes reaches it"
        },
    )
    return_window: int = field(
        default=100, metadata={"help": "episodes in the moving mean of the return"}
    )
    export_dir: str | None = field(
        default=None, metadata={"help": "copy the final policy here (an impala expert folder)"}
    )
    max_actor_restarts: int = field(
        default=100, metadata={"help": "dead actors replaced before the run gives up"}
    )
    learner_threads: int = field(default=1, metadata={"help": "torch threads of the learner"})
    log_every: int = field(default=10, metadata={"help": "updates between TensorBoard points"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        positive = (
            "total_steps", "num_actors", "envs_per_actor", "unroll_length", "batch_size",
            "buffers_per_actor", "checkpoint_every", "keep_checkpoints", "return_window",
            "learner_threads", "log_every",
        )  # fmt: skip
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.batch_size % self.envs_per_actor:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of envs_per_actor "
                f"({self.envs_per_actor}): a batch is whole actor unrolls"
            )
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")
        for name in ("learning_rate", "grad_clip", "clip_rho_threshold", "clip_c_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.clip_rho_threshold < self.clip_c_threshold:
            raise ValueError(
                f"clip_rho_threshold (rho-bar = {self.clip_rho_threshold}) must be at least "
                f"clip_c_threshold (c-bar = {self.clip_c_threshold})"
            )
        for name in ("baseline_cost", "entropy_cost", "rmsprop_momentum", "rmsprop_eps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if not 0.0 <= self.rmsprop_alpha < 1.0:
            raise ValueError(f"rmsprop_alpha must be in [0, 1), got {self.rmsprop_alpha}")
        if self.reward_clip is not None and not self.reward_clip > 0:
            raise ValueError(f"reward_clip must be positive or None, got {self.reward_clip}")
        if self.backend not in ("local", "ray"):
            raise ValueError(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if self.start_method not in ("spawn", "forkserver", "fork"):
            raise ValueError(
                f"start_method must be spawn, forkserver or fork, got {self.start_method!r}"
            )
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive widths, got {self.hidden}")
        if self.output_dir is None:
            self.output_dir = str(gato_home() / "runs" / "impala" / self.task)

    @property
    def unrolls_per_batch(self) -> int:
        """Actor unrolls (of envs_per_actor columns each) in one learner batch."""
        return self.batch_size // self.envs_per_actor

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ImpalaConfig:
        """A named preset (`PRESETS`) with some fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], "preset": name, **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    # The paper's Atari settings (unroll 20, batch 32, entropy 0.01, RMSProp 6e-4, eps 0.01,
    # clip 40, rewards clipped to [-1, 1]); 4 envs per actor keeps an actor's CNN batches small.
    "atari": {"envs_per_actor": 4, "num_actors": 2, "reward_clip": 1.0, "total_steps": 50_000_000},
    # Cheap discrete tasks (CartPole, Acrobot): many environments per actor so the policy's
    # forward pass is shared, a larger learning rate for the small MLP.
    "classic": {
        "envs_per_actor": 16, "batch_size": 32, "unroll_length": 20, "learning_rate": 1e-3,
        "total_steps": 1_000_000, "checkpoint_every": 100_000,
    },
    # Continuous control (Gaussian MLP): a smaller entropy bonus, since the Gaussian's entropy
    # grows without bound as its log-std does.
    "continuous": {
        "envs_per_actor": 16, "batch_size": 64, "unroll_length": 20, "learning_rate": 3e-4,
        "entropy_cost": 0.0, "hidden": [64, 64], "total_steps": 2_000_000,
        "checkpoint_every": 200_000,
    },
}  # fmt: skip
"""Named starting points; every field can still be overridden."""


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        run_dir: the run folder.
        steps, updates: environment steps learnt from and optimizer steps, in all (resumes too).
        episode_returns: (steps when learnt, return) of every finished episode of this call.
        checkpoint: the last checkpoint written.
        seconds: wall time of this call's training loop.
        restarts: actors replaced after dying.
    """

    run_dir: Path
    steps: int
    updates: int
    episode_returns: list[tuple[int, float]]
    checkpoint: Path | None
    seconds: float
    restarts: int


def _make_actors(config: ImpalaConfig, task, network: ActorCritic, record_ids: bool):
    layout = make_layout(task, config.unroll_length, config.envs_per_actor)
    settings = actor_settings(
        task, network, layout, config.discount, config.bootstrap_truncated, config.seed
    )
    if config.backend == "ray":
        from gato.rl.ray_backend import RayActors

        return RayActors(
            settings,
            network,
            config.num_actors,
            buffers_per_actor=config.buffers_per_actor,
            address=config.ray_address,
            max_restarts=config.max_actor_restarts,
            record_ids=record_ids,
        )
    from gato.rl.actors import LocalActors

    return LocalActors(
        settings,
        network,
        config.num_actors,
        buffers_per_actor=config.buffers_per_actor,
        start_method=config.start_method,
        max_restarts=config.max_actor_restarts,
        record_ids=record_ids,
    )


def _truncate(path: Path, size: int | None) -> None:
    """Cut a log back to its size at the checkpoint, so a resumed run never repeats lines."""
    if size is not None and path.exists() and path.stat().st_size > size:
        with open(path, "r+b") as handle:
            handle.truncate(size)


def train(
    config: ImpalaConfig,
    network_fn: Callable[[Any, Any], ActorCritic] | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    record_ids: bool = False,
) -> TrainResult:
    """Train a task's policy with IMPALA; see the module docstring for what is written where.

    Args:
        config: the run.
        network_fn: `(observation_space, action_space) -> ActorCritic`; default
            `default_network` with `config.hidden`. Actors rebuild the network from its class
            and `hyperparameters()`, so the class must be importable by its module path.
        on_update: called after every update with {"learner", "actors", "stats", "steps"}
            (tests use it to kill actors mid-run).
        record_ids: keep every unroll's (actor, generation, seq) in the actors' stats.

    Raises:
        UnknownTaskError: the task is not in the registry.
        NonFiniteLossError: the loss went NaN or infinite (the last good checkpoint stays).
    """
    task = get_task(config.task, config.registry)
    observation_column(task)  # fails early on tasks IMPALA cannot learn
    probe = make_env(task)
    try:
        observation_space, action_space = task_spaces(task, probe)
    finally:
        probe.close()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.learner_threads)
    if network_fn is None:
        network = default_network(observation_space, action_space, config.hidden)
    else:
        network = network_fn(observation_space, action_space)
    if not isinstance(network, ActorCritic):
        raise TypeError(f"network_fn must return an ActorCritic, got {type(network).__name__}")
    learner = Learner(network, config)

    run_dir = Path(config.output_dir)
    metrics_path, episodes_path = run_dir / "metrics.jsonl", run_dir / "episodes.jsonl"
    latest = latest_checkpoint(run_dir)
    if latest is not None and not config.resume:
        raise ValueError(
            f"{run_dir} already holds a run (checkpoint {latest.name}); pass resume=True "
            "(--resume) to continue it or choose another output_dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.resume and latest is not None:
        extra = load_checkpoint(latest, learner)
        _truncate(metrics_path, extra.get("metrics_bytes"))
        _truncate(episodes_path, extra.get("episodes_bytes"))
    elif config.resume:
        raise ValueError(f"resume=True but {run_dir} has no checkpoint to resume")
    else:
        for path in (metrics_path, episodes_path):
            path.unlink(missing_ok=True)
    run = {"command": " ".join(sys.argv), "config": config.to_dict(), "resumed_at": learner.steps}
    (run_dir / f"run-{learner.steps:012d}.json").write_text(json.dumps(run, indent=2))

    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    writer = SummaryWriter(str(run_dir / "tb"))
    window: deque[float] = deque(maxlen=config.return_window)
    if episodes_path.exists():
        for line in episodes_path.read_text().splitlines()[-config.return_window :]:
            window.append(json.loads(line)["return"])
    info = {"task": task.id, "observation_column": observation_column(task)}
    returns: list[tuple[int, float]] = []
    checkpoint = latest
    next_checkpoint = (learner.steps // config.checkpoint_every + 1) * config.checkpoint_every
    bar = tqdm(
        total=config.total_steps, initial=learner.steps, disable=not config.progress,
        desc=f"impala {task.id}", unit="step", dynamic_ncols=True,
    )  # fmt: skip

    def checkpoint_now() -> Path:
        extra = {
            "metrics_bytes": metrics_path.stat().st_size if metrics_path.exists() else 0,
            "episodes_bytes": episodes_path.stat().st_size if episodes_path.exists() else 0,
        }
        mean = float(np.mean(window)) if window else None
        return save_checkpoint(
            run_dir, learner, config.to_dict(), {**info, "mean_return": mean}, extra,
            config.keep_checkpoints,
        )  # fmt: skip

    actors = _make_actors(config, task, network, record_ids)
    start = time.perf_counter()
    start_steps = learner.steps
    try:
        with open(metrics_path, "a") as metrics_log, open(episodes_path, "a") as episodes_log:
            while learner.steps < config.total_steps:
                unrolls = actors.next_unrolls(config.unrolls_per_batch)
                lag = learner.updates + 1 - np.mean([u["policy_version"][0] for u in unrolls])
                batch = stack_unrolls(unrolls)
                stats = learner.update(batch)
                actors.publish(network)
                ended = ~torch.isnan(batch["episode_return"])
                for value in batch["episode_return"][ended].tolist():
                    window.append(value)
                    returns.append((learner.steps, value))
                    episodes_log.write(json.dumps({"step": learner.steps, "return": value}) + "\n")
                elapsed = time.perf_counter() - start
                stats.update({
                    "actors/steps_per_second": (learner.steps - start_steps) / max(elapsed, 1e-9),
                    "actors/policy_lag": float(lag),
                    "actors/restarts": actors.stats.restarts,
                })  # fmt: skip
                if window:
                    stats["episode/mean_return"] = float(np.mean(window))
                record = {"update": learner.updates, "step": learner.steps, **stats}
                metrics_log.write(json.dumps(record) + "\n")
                if learner.updates % config.log_every == 0:
                    for key, value in stats.items():
                        writer.add_scalar(key, value, learner.steps)
                bar.update(learner.steps - bar.n)
                bar.set_postfix(
                    ret=f"{stats.get('episode/mean_return', math.nan):.1f}",
                    sps=f"{stats['actors/steps_per_second']:,.0f}",
                )
                if on_update is not None:
                    on_update({"learner": learner, "actors": actors, "stats": stats,
                               "steps": learner.steps})  # fmt: skip
                solved = (
                    config.stop_at_return is not None
                    and len(window) == config.return_window
                    and float(np.mean(window)) >= config.stop_at_return
                )
                if learner.steps >= next_checkpoint or solved:
                    metrics_log.flush()
                    episodes_log.flush()
                    checkpoint = checkpoint_now()
                    next_checkpoint += config.checkpoint_every
                if solved:
                    break
        if checkpoint is None or checkpoint.name != checkpoint_name(learner.steps):
            checkpoint = checkpoint_now()
    except NonFiniteLossError as err:
        last = latest_checkpoint(run_dir)
        raise NonFiniteLossError(
            f"{err}; training stopped, the last good checkpoint is "
            f"{last if last is not None else '(none written yet)'}"
        ) from None
    finally:
        bar.close()
        writer.close()
        actors.close()
    seconds = time.perf_counter() - start
    from gato.rl.plots import plot_learning_curve, write_summary

    write_summary(run_dir, config, learner.updates, seconds, learner.steps - start_steps)
    plot_learning_curve(run_dir, threshold=config.stop_at_return, window=config.return_window)
    if config.export_dir:
        export_policy(checkpoint, config.export_dir)
    return TrainResult(
        run_dir, learner.steps, learner.updates, returns, checkpoint, seconds,
        actors.stats.restarts,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> ImpalaConfig:
    """`--preset NAME` (optional) then `--field value` for any `ImpalaConfig` field."""
    from gato.cli import parse

    return parse(ImpalaConfig, argv, prog="python -m gato.rl.impala", description=__doc__,
                 presets=PRESETS)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
        result = train(config)
    except (UnknownTaskError, ValueError, NonFiniteLossError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if not isinstance(err, NonFiniteLossError) else 1
    print(
        f"{config.task}: {result.steps:,} steps, {result.updates:,} updates in "
        f"{result.seconds:.0f} s; checkpoint {result.checkpoint}; curve "
        f"{result.run_dir / 'learning_curve.png'}"
    )
    return 0


__all__ = ["PRESETS", "ImpalaConfig", "TrainResult", "main", "parse_args", "train"]

if __name__ == "__main__":
    sys.exit(main())
