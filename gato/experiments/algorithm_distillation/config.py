"""The configuration of an Algorithm Distillation experiment on Dark Room, and its named sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gato.experiments.algorithm_distillation.histories import QLearningConfig

__all__ = ["PRESETS", "ADConfig"]


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
