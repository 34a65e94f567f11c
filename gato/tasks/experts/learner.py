"""A trained network that plays while the expert labels: the data of DAgger (Ross et al. 2011).

A behaviour clone errs, and its errors lead it to states that no expert episode shows; noise in
the demonstrator (DART, `NoisyExpert`) shows states near the expert's path, but not the ones the
clone's own systematic errors reach. DAgger plays the clone itself and records, in every state
it reaches, the action the expert would take there: the correction the next clone learns.

A learner is a saved `torch.export` program (`save_learner`) from one observation column of a
task, batched (1, ...), to action logits (discrete actions: the most likely is played) or to the
action itself (continuous: clipped to [-1, 1]). The file names its task, column and action kind,
so a learner is never played on a task whose observations it was not trained on.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.files import atomic_write_bytes
from gato.tasks.envs import ControlEnv
from gato.tasks.experts.base import Expert, WrappedExpert
from gato.tasks.registry import TaskSpec

__all__ = ["LearnerLedExpert", "LearnerPolicy", "load_learner", "save_learner"]

_META = "gato_learner.json"


def save_learner(
    module: torch.nn.Module, example: torch.Tensor, path: str | Path, task: TaskSpec, column: str
) -> Path:
    """Export `module` (observations (1, ...) like `example` -> logits or actions) as a learner
    of `task` reading `column`, atomically (a crash leaves the previous file)."""
    if column not in task.observation_columns:
        raise ValueError(
            f"save_learner: task {task.id!r} has no observation column {column!r} "
            f"(it has {list(task.observation_columns)})"
        )
    if example.ndim < 2 or example.shape[0] != 1:
        raise ValueError(
            f"save_learner: example must be one batched observation, got {tuple(example.shape)}"
        )
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            program = torch.export.export(module, (example,))
    finally:
        module.train(was_training)
    meta = {
        "task": task.id,
        "column": column,
        "kind": task.action.kind,
        "dtype": str(example.dtype).removeprefix("torch."),
        "shape": list(example.shape[1:]),
    }
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={_META: json.dumps(meta)})
    return atomic_write_bytes(path, buffer.getvalue())


class LearnerPolicy:
    """A saved learner as a function of one observation dict -> the action it plays."""

    def __init__(self, path: str | Path, task: TaskSpec) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"learner {path}: no such file (save one with save_learner)")
        extra = {_META: ""}
        try:
            program = torch.export.load(str(path), extra_files=extra)
            meta = json.loads(extra[_META])
        except Exception as err:  # a foreign or truncated file: say which and why
            raise ValueError(f"learner {path}: not a saved learner ({err})") from None
        if meta.get("task") != task.id:
            raise ValueError(
                f"learner {path} was trained on task {meta.get('task')!r}, not {task.id!r}"
            )
        if meta["kind"] != task.action.kind or meta["column"] not in task.observation_columns:
            raise ValueError(
                f"learner {path} reads {meta['column']!r} and gives {meta['kind']} actions; "
                f"task {task.id!r} has {list(task.observation_columns)} and {task.action.kind} ones"
            )
        self.path, self.task = path, task
        self.column, self.kind = meta["column"], meta["kind"]
        self.dtype = getattr(torch, meta["dtype"])
        self.shape = tuple(meta["shape"])
        self.module = program.module()

    def __call__(self, observation: Mapping[str, Any]) -> Any:
        x = torch.as_tensor(np.asarray(observation[self.column])).to(self.dtype)
        if tuple(x.shape) != self.shape:
            raise ValueError(
                f"learner {self.path}: observation {self.column!r} of shape {tuple(x.shape)}, "
                f"trained on {self.shape}"
            )
        with torch.no_grad():
            out = self.module(x[None])[0]
        if self.kind == "discrete":
            return int(out.argmax())
        return np.clip(out.float().numpy(), -1.0, 1.0).astype(np.float32)


def load_learner(path: str | Path, task: TaskSpec) -> LearnerPolicy:
    """The learner saved at `path`, checked against `task` (its id, column and action kind)."""
    return LearnerPolicy(path, task)


class LearnerLedExpert(WrappedExpert):
    """DAgger's demonstrator: `learner` plays (or, with probability `expert_mix`, the expert's
    own action is played: DAgger's beta), and the expert's action in each state reached is what
    is recorded. The expert is told when the played action differs from its choice (`played`),
    so an expert that follows a plan replans from the state the learner led to."""

    STREAM = 0xDA66

    def __init__(
        self, expert: Expert, learner: LearnerPolicy, expert_mix: float = 0.0, seed: int | None = 0
    ) -> None:
        if not 0.0 <= expert_mix <= 1.0:
            raise ValueError(f"expert_mix must lie in [0, 1] (a probability), got {expert_mix}")
        if learner.task.id != expert.task.id:
            raise ValueError(
                f"learner of task {learner.task.id!r} with an expert of {expert.task.id!r}"
            )
        super().__init__(expert.task)
        self.expert, self.learner, self.expert_mix = expert, learner, float(expert_mix)
        self.name = f"{getattr(expert, 'name', type(expert).__name__)}+learner{expert_mix:g}"
        self.reset(seed)

    def act_and_label(self, observation: Mapping[str, Any], env: ControlEnv) -> tuple[Any, Any]:
        label = self.expert.act(observation, env)
        if self.expert_mix and self.rng.random() < self.expert_mix:
            return label, label
        played = self.learner(observation)
        if self.task.action.kind == "discrete":
            if played != label:
                self.expert.played(played, label)
        else:
            label = np.clip(np.asarray(label, dtype=np.float32), -1.0, 1.0)
        return played, label
