"""Algorithm Distillation (Laskin et al., ICLR 2023) with `GatoModel` on Dark Room.

A causal transformer trained to predict the actions of a source RL algorithm across many
episodes of its learning history learns, in its context, an improvement operator: at test time on
a new task it acts, sees its rewards, and does better episode after episode with frozen weights.

Three commands, one run folder (`output_dir`):

    python -m gato.experiments.algorithm_distillation collect  --preset default --output_dir runs/ad
    python -m gato.experiments.algorithm_distillation train    --preset default --output_dir runs/ad
    python -m gato.experiments.algorithm_distillation evaluate --preset default --output_dir runs/ad

- collect: the fixed goal split; tabular Q-learning from scratch on every training goal
  (`histories_per_goal` runs of `history_episodes` episodes, each recorded in order) and
  shortest-path expert episodes on the same goals, written as datasets (`data/histories`,
  `data/expert`).
- train: `GatoModel` with the toolkit's `Trainer` on windows of `context_episodes` episodes of
  one task (`gato.experiments.algorithm_distillation.histories.HistoryWindows`): AD on the
  histories, and the expert-distillation
  baseline (ED) on the expert episodes, one model per seed in `train_seeds`
  (`models/{ad,ed}-seed{N}`).
- evaluate: on the held-out goals, every model acts in context for `eval_episodes` episodes
  (`eval_repeats` independent runs per goal), against the source algorithm learning from scratch
  on the same goals and a uniformly random policy; writes `results.json` and `curves.png`.

The in-context loop (`in_context_returns`) drives `GatoModel` directly through its KV cache:
each step feeds the previous action and the new observation, and samples one action token with
the logits masked to the 5 actions. At every episode start the cache is rebuilt from the last
`context_episodes - 1` episodes, so the context always begins at an episode boundary, as the
training windows do, and never exceeds the trained length.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.experiments.algorithm_distillation.dark_room import DarkRoom, goal_split, optimal_return
from gato.experiments.algorithm_distillation.histories import (
    ACTION_SPEC,
    START_CODE,
    Histories,
    HistoryWindows,
    QLearningConfig,
    expert_histories,
    histories_from_dataset,
    histories_to_dataset,
    q_learning_histories,
    random_histories,
    reward_code,
)
from gato.files import atomic_write_json
from gato.vocab import NO_LOCAL_POSITION, SEPARATOR_ID

__all__ = [
    "PRESETS",
    "ADConfig",
    "collect",
    "episodes_to_reach",
    "evaluate",
    "in_context_returns",
    "main",
    "train",
]


@dataclass
class ADConfig:
    """One Algorithm Distillation experiment on Dark Room: data, models, evaluation."""

    output_dir: str = field(default="runs/ad", metadata={"help": "run folder"})
    preset: str = field(default="default", metadata={"help": "named preset: default, tiny"})
    # -- environment and tasks ---------------------------------------------------------------
    size: int = field(default=9, metadata={"help": "side of the room"})
    episode_length: int = field(default=20, metadata={"help": "steps per episode"})
    num_held_out: int = field(default=16, metadata={"help": "goals held out for evaluation"})
    # -- source algorithm --------------------------------------------------------------------
    history_episodes: int = field(
        default=300, metadata={"help": "episodes of each learning history"}
    )
    histories_per_goal: int = field(
        default=2, metadata={"help": "source runs (seeds) per training goal"}
    )
    q_learning_rate: float = field(default=0.1, metadata={"help": "Q-learning step size"})
    q_discount: float = field(default=0.9, metadata={"help": "Q-learning discount"})
    epsilon_start: float = field(default=0.1, metadata={"help": "first episode's exploration"})
    epsilon_end: float = field(default=0.05, metadata={"help": "exploration floor"})
    epsilon_decay: float = field(default=0.99, metadata={"help": "per-episode epsilon factor"})
    q_initial_value: float = field(
        default=2.0, metadata={"help": "initial Q-values: optimism that directs exploration"}
    )
    expert_episodes: int = field(
        default=40, metadata={"help": "shortest-path episodes per training goal (ED data)"}
    )
    # -- model and training ------------------------------------------------------------------
    model_preset: str = field(default="tiny", metadata={"help": "GatoConfig preset"})
    context_episodes: int = field(default=4, metadata={"help": "episodes in one window"})
    stride: int = field(
        default=6, metadata={"help": "history episodes between a window's episodes"}
    )
    train_steps: int = field(default=700, metadata={"help": "optimizer steps of each AD model"})
    ed_steps: int = field(
        default=200, metadata={"help": "optimizer steps of each ED model (an easier target)"}
    )
    batch_size: int = field(default=12, metadata={"help": "windows per optimizer step"})
    learning_rate: float | None = field(
        default=None, metadata={"help": "peak learning rate (None: the preset's)"}
    )
    train_seeds: list[int] = field(
        default_factory=lambda: [0], metadata={"help": "one AD and one ED model per seed"}
    )
    models: list[str] = field(
        default_factory=lambda: ["ad", "ed"], metadata={"help": "which models to train: ad, ed"}
    )
    # -- evaluation --------------------------------------------------------------------------
    eval_episodes: int = field(default=120, metadata={"help": "in-context episodes per run"})
    eval_repeats: int = field(
        default=3, metadata={"help": "independent in-context runs per held-out goal and model"}
    )
    source_seeds: int = field(
        default=3, metadata={"help": "source-algorithm runs per held-out goal (baseline)"}
    )
    smooth: int = field(
        default=10, metadata={"help": "episodes averaged when finding where a curve reaches"}
    )
    resume: bool = field(
        default=False, metadata={"help": "train: continue each model's run up to its steps"}
    )
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    seed: int = field(default=0, metadata={"help": "seed of data collection and evaluation"})

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; presets: {sorted(PRESETS)}")
        for name in (
            "size", "episode_length", "history_episodes", "histories_per_goal",
            "expert_episodes", "context_episodes", "stride", "train_steps", "ed_steps",
            "batch_size",
            "eval_episodes", "eval_repeats", "source_seeds", "smooth", "threads",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.context_episodes < 2:
            raise ValueError(
                f"context_episodes={self.context_episodes}: in-context learning needs at least "
                "2 episodes in the context"
            )
        if (self.context_episodes - 1) * self.stride >= self.history_episodes:
            raise ValueError(
                f"a window of context_episodes={self.context_episodes} every stride="
                f"{self.stride} does not fit in history_episodes={self.history_episodes}"
            )
        if self.context_episodes > self.expert_episodes:
            raise ValueError(
                f"expert_episodes={self.expert_episodes} is fewer than context_episodes="
                f"{self.context_episodes}: an ED window would not fit"
            )
        if not 0 < self.num_held_out < self.size * self.size:
            raise ValueError(
                f"num_held_out must lie in [1, {self.size**2 - 1}], got {self.num_held_out}"
            )
        if not self.train_seeds:
            raise ValueError("train_seeds must name at least one seed")
        unknown = set(self.models) - {"ad", "ed"}
        if unknown or not self.models:
            raise ValueError(f"models must be among 'ad', 'ed', got {self.models}")
        self.q_learning  # noqa: B018 - the Q-learning fields are checked there

    @property
    def q_learning(self) -> QLearningConfig:
        return QLearningConfig(
            learning_rate=self.q_learning_rate,
            discount=self.q_discount,
            epsilon_start=self.epsilon_start,
            epsilon_end=self.epsilon_end,
            epsilon_decay=self.epsilon_decay,
            initial_value=self.q_initial_value,
        )

    @property
    def episode_tokens(self) -> int:
        """Tokens of one episode: T steps of 3 + separator + action, then 3 + separator."""
        return 5 * self.episode_length + 4

    @property
    def context_tokens(self) -> int:
        return self.context_episodes * self.episode_tokens

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ADConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], "preset": name, **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    # The experiment of docs/algorithm_distillation.md, sized for ~30 minutes of a shared CPU.
    "default": {},
    # A minute on a CPU: every stage end to end, no claim about the result.
    "tiny": dict(
        num_held_out=4,
        history_episodes=24,
        histories_per_goal=1,
        expert_episodes=4,
        context_episodes=2,
        stride=2,
        train_steps=3,
        ed_steps=2,
        batch_size=4,
        eval_episodes=3,
        eval_repeats=1,
        source_seeds=1,
        smooth=2,
    ),
}
"""Named experiment sizes: `ADConfig.from_preset(name, **overrides)`."""


# ---------------------------------------------------------------------------------------------
# Collect
# ---------------------------------------------------------------------------------------------


def _data_dir(config: ADConfig) -> Path:
    return Path(config.output_dir) / "data"


def collect(config: ADConfig) -> dict[str, Any]:
    """Learning histories and expert episodes on the training goals, saved as datasets."""
    from gato.data.io import save_dataset

    train_goals, held_out = goal_split(config.size, config.num_held_out)
    start = time.perf_counter()
    runs = [
        q_learning_histories(
            train_goals, config.history_episodes, config.q_learning, seed=config.seed + 1000 * r,
            size=config.size, episode_length=config.episode_length,
        )
        for r in range(config.histories_per_goal)
    ]  # fmt: skip
    histories = Histories(*(np.concatenate(parts) for parts in zip(*runs, strict=True)))
    expert = expert_histories(
        train_goals, config.expert_episodes, seed=config.seed,
        size=config.size, episode_length=config.episode_length,
    )  # fmt: skip
    data = _data_dir(config)
    save_dataset(histories_to_dataset(histories), data / "histories")
    save_dataset(histories_to_dataset(expert), data / "expert")
    summary = {
        "train_goals": train_goals.tolist(),
        "held_out_goals": held_out.tolist(),
        "histories": int(histories.actions.shape[0]),
        "history_episodes": config.history_episodes,
        "first_return": float(histories.returns[:, :10].mean()),
        "final_return": float(histories.returns[:, -10:].mean()),
        "expert_return": float(expert.returns.mean()),
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(data / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------
# Train
# ---------------------------------------------------------------------------------------------


def _model_dir(config: ADConfig, kind: str, seed: int) -> Path:
    return Path(config.output_dir) / "models" / f"{kind}-seed{seed}"


def train(
    config: ADConfig, kinds: list[str] | None = None, command: str | None = None
) -> dict[str, float]:
    """Train AD (histories) and ED (expert episodes) with the toolkit's `Trainer`, per seed.

    `command` is recorded with each run (default: this process's command line). Returns the
    final training loss of each model, by folder name.
    """
    from gato.tokens.tokenizer import GatoTokenizer
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    torch.set_num_threads(config.threads)
    data = _data_dir(config)
    losses = {}
    for kind in kinds or config.models:
        histories = histories_from_dataset(data / ("histories" if kind == "ad" else "expert"))
        # Expert episodes do not improve: neighbouring episodes need no stride to show it.
        stride = config.stride if kind == "ad" else 1
        for seed in config.train_seeds:
            out = _model_dir(config, kind, seed)
            train_config = TrainConfig(
                preset=config.model_preset,
                mixture=f"darkroom-{kind}",
                steps=config.train_steps if kind == "ad" else config.ed_steps,
                global_batch=config.batch_size,
                context=config.context_tokens,
                learning_rate=config.learning_rate,
                seed=seed,
                output_dir=str(out),
                log_every=10,
                checkpoint_every=config.train_steps if kind == "ad" else config.ed_steps,
                keep_checkpoints=1,
                resume=config.resume,
                cpu=True,
            )
            windows = HistoryWindows(
                GatoTokenizer(),
                histories,
                batch_size=config.batch_size,
                context_episodes=config.context_episodes,
                stride=stride,
                seed=seed,
                name=f"darkroom-{kind}",
            )
            if windows.window_length != config.context_tokens:
                raise ValueError(
                    f"{kind} windows hold {windows.window_length} tokens, the config expects "
                    f"{config.context_tokens}: was the data collected with another episode length?"
                )
            logs = Trainer(train_config, data=windows, command=command).train()
            losses[out.name] = logs[-1].loss
    return losses


def load_model(folder: str | Path):
    """The `GatoModel` of a run folder's latest checkpoint (manifest verified), in eval mode."""
    from gato.checkpoints import latest_checkpoint, verify_checkpoint
    from gato.modeling.model import GatoModel

    checkpoint = latest_checkpoint(Path(folder))
    if checkpoint is None:
        raise ValueError(f"{folder}: no checkpoint; run `train` first")
    verify_checkpoint(checkpoint)
    return GatoModel.from_pretrained(checkpoint / "model").eval()


# ---------------------------------------------------------------------------------------------
# In-context evaluation
# ---------------------------------------------------------------------------------------------


def _observation_tokens(positions: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells (B, 2), reward codes (B,) -> ids (B, 4) [x, y, code, separator] and local
    positions (B, 4), the tokenizer's layout of one timestep's observation."""
    from gato.vocab import DISCRETE_OFFSET

    ids = np.concatenate([positions, codes[:, None]], axis=1) + DISCRETE_OFFSET  # (B, 3)
    ids = np.concatenate([ids, np.full((len(ids), 1), SEPARATOR_ID)], axis=1)
    local = np.broadcast_to(np.array([0, 1, 2, NO_LOCAL_POSITION]), ids.shape)
    return ids.astype(np.int64), np.ascontiguousarray(local, dtype=np.int64)


@torch.no_grad()
def in_context_returns(
    model: Any,
    goals: Any,
    num_episodes: int,
    context_episodes: int,
    seed: int = 0,
    size: int = 9,
    episode_length: int = 20,
    return_tokens: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Run a trained model in context on Dark Room goals, one row per goal, with frozen weights.

    Args:
        model: a `GatoModel` (eval mode).
        goals: (B, 2) goal cells; rows run side by side in one batch.
        num_episodes: episodes per row.
        context_episodes: the trained window: the context holds the current episode and at
            most `context_episodes - 1` before it.
        seed: seed of the action sampling.

    Returns:
        (B, num_episodes) float returns; with `return_tokens`, also the (B, num_episodes, E)
        token ids of every episode (E = 5 T + 4), as
        `gato.experiments.algorithm_distillation.histories.encode_episode` lays
        them out.
    """
    goals = np.asarray(goals)
    if goals.ndim != 2 or goals.shape[1] != 2 or len(goals) == 0:
        raise ValueError(f"goals: expected (B, 2) cells, got shape {goals.shape}")
    if num_episodes < 1 or context_episodes < 2:
        raise ValueError(
            f"num_episodes must be >= 1 and context_episodes >= 2, got {num_episodes}, "
            f"{context_episodes}"
        )
    context_limit = context_episodes * (5 * episode_length + 4)
    if context_limit > model.config.max_position_embeddings:
        raise ValueError(
            f"{context_episodes} episodes need {context_limit} tokens, more than the model's "
            f"context of {model.config.max_position_embeddings}"
        )
    envs = [DarkRoom(g, size, episode_length) for g in goals]
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    lo, hi = ACTION_SPEC.token_range()
    b = len(envs)
    returns = np.zeros((b, num_episodes))
    records: list[np.ndarray] = []  # each (B, E): one finished episode of every row
    locals_: list[np.ndarray] = []
    for episode in range(num_episodes):
        cache = None
        kept = records[len(records) - (context_episodes - 1) :] if records else []
        if kept:
            ids = torch.from_numpy(np.concatenate(kept, axis=1)).to(device)
            local = torch.from_numpy(np.concatenate(locals_[-len(kept) :], axis=1)).to(device)
            cache = model(input_ids=ids, local_positions=local, use_cache=True).past_key_values
        position = np.stack([env.reset(seed=seed)[0] for env in envs])
        code = np.full(b, START_CODE)
        pending_ids = np.zeros((b, 0), np.int64)
        pending_local = np.zeros((b, 0), np.int64)
        record_ids, record_local = [], []
        for _ in range(episode_length):
            obs_ids, obs_local = _observation_tokens(position, code)
            ids = np.concatenate([pending_ids, obs_ids], axis=1)
            local = np.concatenate([pending_local, obs_local], axis=1)
            out = model(
                input_ids=torch.from_numpy(ids).to(device),
                local_positions=torch.from_numpy(local).to(device),
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            probs = torch.softmax(out.logits[:, -1, lo:hi].float().cpu(), dim=-1)  # (B, 5)
            action = torch.multinomial(probs, 1, generator=generator)[:, 0].numpy()
            rewards = np.zeros(b)
            for row, env in enumerate(envs):
                obs, reward, _, _, _ = env.step(int(action[row]))
                position[row] = obs
                rewards[row] = reward
            returns[:, episode] += rewards
            pending_ids = (action + lo).astype(np.int64)[:, None]
            pending_local = np.full((b, 1), NO_LOCAL_POSITION, np.int64)
            record_ids += [obs_ids, pending_ids]
            record_local += [obs_local, pending_local]
            code = reward_code(rewards)
        obs_ids, obs_local = _observation_tokens(position, code)  # the final timestep
        records.append(np.concatenate([*record_ids, obs_ids], axis=1))
        locals_.append(np.concatenate([*record_local, obs_local], axis=1))
    if return_tokens:
        return returns, np.stack(records, axis=1)
    return returns


# ---------------------------------------------------------------------------------------------
# Evaluate
# ---------------------------------------------------------------------------------------------


def episodes_to_reach(curve: np.ndarray, threshold: float, window: int) -> int | None:
    """Episodes a learner needed: the first e (1-based, counting episode e) such that the mean
    of episodes [e - 1, e - 1 + window) reaches `threshold`; None if no full window does.

    Args:
        curve: (H,) return per episode (a mean over goals and runs).
    """
    curve = np.asarray(curve, dtype=float)
    if curve.ndim != 1 or window < 1:
        raise ValueError(f"curve must be (H,) and window >= 1, got {curve.shape}, {window}")
    if len(curve) < window:
        return None
    means = np.convolve(curve, np.ones(window) / window, mode="valid")  # (H - window + 1,)
    hits = np.flatnonzero(means >= threshold - 1e-9)
    return int(hits[0]) + 1 if hits.size else None


def _curve_stats(per_seed: np.ndarray) -> dict[str, list[float]]:
    """(S, H) per-seed curves -> mean and standard deviation over seeds, per episode."""
    return {"mean": per_seed.mean(0).tolist(), "std": per_seed.std(0).tolist()}


def evaluate(config: ADConfig) -> dict[str, Any]:
    """Held-out curves of AD, ED, the source algorithm and random; `results.json`, a figure."""
    torch.set_num_threads(config.threads)
    _, held_out = goal_split(config.size, config.num_held_out)
    start = time.perf_counter()
    h = config.history_episodes
    env = dict(size=config.size, episode_length=config.episode_length)
    source = np.stack(
        [
            q_learning_histories(
                held_out, h, config.q_learning, seed=config.seed + 7919 * (s + 1), **env
            ).returns.mean(0)
            for s in range(config.source_seeds)
        ]
    )  # (S, H)
    rand = np.stack(
        [
            random_histories(
                held_out, config.eval_episodes, seed=config.seed + s, **env
            ).returns.mean(0)
            for s in range(config.source_seeds)
        ]
    )
    curves = {"source": source, "random": rand}
    goals = np.repeat(held_out, config.eval_repeats, axis=0)  # (M * R, 2)
    per_goal = {}
    for kind in config.models:
        per_model = []
        for seed in config.train_seeds:
            model = load_model(_model_dir(config, kind, seed))
            returns = in_context_returns(
                model, goals, config.eval_episodes, config.context_episodes,
                seed=config.seed + seed, **env,
            )  # fmt: skip
            runs = returns.reshape(len(held_out), config.eval_repeats, -1)  # (M, R, E)
            per_model.append(runs.mean(0))  # (R, E): one curve per in-context run
            per_goal[f"{kind}-seed{seed}"] = runs.mean(1)[:, -10:].mean(1).tolist()
        curves[kind] = np.concatenate(per_model)  # (seeds * R, eval_episodes)

    tail = max(1, h // 10)
    target = float(source.mean(0)[-tail:].mean())
    source_needs = episodes_to_reach(source.mean(0), target, config.smooth)
    results: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "held_out_goals": held_out.tolist(),
        "optimal_return": float(
            optimal_return(held_out, config.size, config.episode_length).mean()
        ),
        "source_final_return": target,
        "source_final_window": tail,
        "episodes_to_source_final": {"source": source_needs},
        "final_return": {},
        "per_goal_final_return": per_goal,
        "curves": {name: _curve_stats(c) for name, c in curves.items()},
    }
    for name, c in curves.items():
        if name == "source":
            continue
        results["episodes_to_source_final"][name] = episodes_to_reach(
            c.mean(0), target, config.smooth
        )
        per_seed = [episodes_to_reach(row, target, config.smooth) for row in c]
        results["episodes_to_source_final"][f"{name}_per_seed"] = per_seed
    for name, c in curves.items():
        results["final_return"][name] = {
            "first10": float(c[:, :10].mean()),
            "last10": float(c[:, -10:].mean()),
            "last10_seed_std": float(c[:, -10:].mean(1).std()),
        }
    results["seconds"] = time.perf_counter() - start
    out = Path(config.output_dir)
    atomic_write_json(out / "results.json", results)
    plot_curves(results, out / "curves.png")
    return results


def plot_curves(results: dict[str, Any], path: str | Path) -> Path:
    """Return per episode on held-out goals, mean and spread (one std) over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {
        "source": "source: Q-learning",
        "ad": "Algorithm Distillation",
        "ed": "expert distillation",
        "random": "random",
    }
    colours = {"source": "tab:gray", "ad": "tab:blue", "ed": "tab:orange", "random": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, stats in results["curves"].items():
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, label=names.get(name, name), color=colours.get(name))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=colours.get(name))
    ax.axhline(results["source_final_return"], ls="--", lw=1, color="k", label="source final")
    ax.axhline(results["optimal_return"], ls=":", lw=1, color="k", label="optimal")
    ax.set_xscale("log")
    ax.set_xlabel("episode (log scale)")
    ax.set_ylabel("return (mean over held-out goals)")
    ax.set_title(f"Dark Room, {len(results['held_out_goals'])} held-out goals")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

COMMANDS = ("collect", "train", "evaluate", "all")


def parse_config(argv: list[str]) -> ADConfig:
    """`--preset NAME` sets the defaults; other flags override them."""
    from gato.training.trainer import parse_dataclasses

    (parsed,) = parse_dataclasses((ADConfig,), argv)
    given = {a[2:].split("=", 1)[0] for a in argv if a.startswith("--")}
    preset = {k: v for k, v in PRESETS[parsed.preset].items() if k not in given}
    return dataclasses.replace(parsed, **preset)


def main(argv: list[str] | None = None) -> Any:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(
            "usage: python -m gato.experiments.algorithm_distillation"
            f" {{{','.join(COMMANDS)}}} [--flags]"
        )
    command, config = argv[0], parse_config(argv[1:])
    outputs = {}
    if command in ("collect", "all"):
        outputs["collect"] = collect(config)
    if command in ("train", "all"):
        outputs["train"] = train(
            config,
            command=" ".join(["python -m gato.experiments.algorithm_distillation", *argv]),
        )
    if command in ("evaluate", "all"):
        outputs["evaluate"] = evaluate(config)
    for name, value in outputs.items():
        shown = {k: v for k, v in value.items() if k not in ("curves", "config")}
        print(name, json.dumps(shown, indent=1)[:3000])
    return outputs


if __name__ == "__main__":
    main()
