"""Collect and train, the two stages of an Algorithm Distillation run before `evaluate`.

- collect: tabular Q-learning from scratch on every training goal (the learning histories) and
  shortest-path expert episodes on the same goals, written as datasets under `output_dir/data`.
- train: `GatoModel` with the toolkit's `Trainer` on across-episode windows, AD on the
  histories and ED on the expert episodes, one model per seed (`output_dir/models`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.experiments.algorithm_distillation.config import ADConfig
from gato.experiments.algorithm_distillation.dark_room import goal_split
from gato.experiments.algorithm_distillation.histories import (
    Histories,
    HistoryWindows,
    expert_histories,
    histories_from_dataset,
    histories_to_dataset,
    q_learning_histories,
)
from gato.files import atomic_write_json

__all__ = ["collect", "load_model", "train"]


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
                # In-context RL learns from the actions it took and what they earned: the
                # history's actions must stay visible (the control default hides them).
                action_dropout=0.0,
                control_window_steps=0,  # and all of its history (its windows are its own)
                encoding="grouped",  # docs/algorithm_distillation.md's settings
                block_lr_scale=1.0,
                lr_schedule="cosine",
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
