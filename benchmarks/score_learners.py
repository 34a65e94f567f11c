"""Score saved learners on held-out episodes, under a stated Atari protocol.

A learner saved by `benchmarks/control_learning.py --save-learners` is played on the
evaluation seeds (`EVALUATION_SEED + k`), exactly as the benchmark scored it, or under another
Atari protocol (`--atari-protocol sticky`: Machado et al.'s sticky actions), which is what
tells a clone that plays a few deterministic games by heart from one that plays Pong: with no
sticky actions Pong's no-op starts lead to a handful of distinct games.

    python benchmarks/score_learners.py --task atari-pong --episodes 32 \\
        --atari-protocol sticky LEARNER.pt2 [LEARNER.pt2 ...]

Prints one row per learner (mean return, % of expert, distinct games: (return, length) pairs)
and each game's return and length; `--json FILE` writes them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from control_learning import StatelessActor  # noqa: E402

from gato.evaluation.control import run_episodes  # noqa: E402
from gato.files import atomic_write_json  # noqa: E402
from gato.tasks.envs import make_env  # noqa: E402
from gato.tasks.envs.atari import atari_protocol, protocol_dict, protocol_env  # noqa: E402
from gato.tasks.experts.learner import LearnerPolicy, load_learner  # noqa: E402
from gato.tasks.registry import get_task  # noqa: E402
from gato.tasks.scores import EVALUATION_SEED, normalized_score  # noqa: E402


class LearnerActor(StatelessActor):
    """A saved learner behind the interface `run_episodes` drives: one observation at a time
    (the saved program takes a batch of one)."""

    def __init__(self, learner: LearnerPolicy, num_envs: int) -> None:
        self.learner, self.num_envs = learner, num_envs

    def act_batch(self, observations: list[dict]) -> list[Any]:
        return [self.learner(o) for o in observations]


@dataclass
class LearnerScore:
    learner: str
    returns: list[float]
    lengths: list[int]
    normalized: float | None
    """Mean return as a share of the task's expert score over random (None: no scores)."""
    protocol: dict[str, Any] | None = None
    seeds: list[int] = field(default_factory=list)


def score_learner(
    path: str | Path,
    task: Any,
    episodes: int,
    overrides: dict[str, Any] | None = None,
    seed: int = EVALUATION_SEED,
) -> LearnerScore:
    """Play the learner at `path` for `episodes` episodes (seeds `seed`, `seed + 1`, ...), one
    environment each, in lockstep."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    learner = load_learner(path, task)
    envs = [make_env(task, **(overrides or {})) for _ in range(episodes)]
    try:
        stats = run_episodes(LearnerActor(learner, episodes), envs, episodes, seed)
    finally:
        for env in envs:
            env.close()
    scores = task.scores
    mean = float(stats.returns.mean())
    return LearnerScore(
        learner=str(path),
        returns=[float(r) for r in stats.returns],
        lengths=[int(n) for n in stats.lengths],
        normalized=None
        if scores is None
        else float(normalized_score(mean, scores.expert, scores.random)),
        seeds=[seed + k for k in range(episodes)],
    )


def table(results: Sequence[LearnerScore]) -> str:
    rows = [
        f"{'learner':40s} {'games':>5s} {'mean':>7s} {'% expert':>9s} {'distinct':>8s}",
        "-" * 73,
    ]
    for r in results:
        distinct = len(set(zip(r.returns, r.lengths, strict=True)))
        share = "" if r.normalized is None else f"{100 * r.normalized:8.1f}%"
        rows.append(
            f"{Path(r.learner).name[-40:]:40s} {len(r.returns):5d} {np.mean(r.returns):7.2f} "
            f"{share:>9s} {distinct:8d}"
        )
    for r in results:
        rows.append(f"\n{Path(r.learner).name}: (return, length) per game")
        rows.append(
            "  " + ", ".join(f"({g:g}, {n})" for g, n in zip(r.returns, r.lengths, strict=True))
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> list[LearnerScore]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("learners", nargs="+", help="files saved by control_learning.py")
    parser.add_argument("--task", required=True)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=EVALUATION_SEED, help="first episode's seed")
    parser.add_argument(
        "--atari-protocol", default=None, help="a named Atari protocol (data, jat, sticky)"
    )
    parser.add_argument(
        "--atari-option", action="append", default=[], help="KEY=VALUE, e.g. sticky_actions=0.25"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the scores here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    chosen = None
    if args.atari_protocol is not None or args.atari_option:
        chosen = atari_protocol(args.atari_protocol or "data", args.atari_option)
    overrides = protocol_env(task, chosen)
    protocol = None if chosen is None else protocol_dict(chosen)
    results = []
    for path in args.learners:
        result = score_learner(path, task, args.episodes, overrides, args.seed)
        result.protocol = protocol
        results.append(result)
    if protocol is not None:
        print(f"Atari protocol: {protocol['description']}")
    print(table(results))
    if args.json:
        atomic_write_json(args.json, {"task": task.id, "scores": [asdict(r) for r in results]})
    return results


if __name__ == "__main__":
    main()
