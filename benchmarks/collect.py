"""Collection speed against the raw environment step rate: one Atari and one dm-control task.

    python benchmarks/collect.py [--steps 6000] [--repeats 3] [--tasks atari-breakout ...]

For each task, in one process on one core, alternating so both see the same machine load:

- raw: the bare simulator made and stepped with random actions, nothing kept: for Atari the JAT
  pipeline straight from gymnasium (ALE v5, `AtariPreprocessing` frame skip 4,
  `FrameStackObservation` 4); for dm-control `suite.load(...).step`.
- collect: `gato.data.collect.collect` end to end: the expert (the registry's scripted one),
  observation checks, PNG encoding, Arrow rows, the dataset written to disk and renamed.

Prints the steps/s of each (median of the repeats) and collect / raw. Goal: collection >= 80%
of the raw rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402


def raw_atari(game: str, steps: int) -> float:
    """Steps/s of gymnasium's ALE v5 + AtariPreprocessing + FrameStackObservation."""
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    start = time.perf_counter()  # making the environment counts, as it does for collection
    base = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
    env = FrameStackObservation(AtariPreprocessing(base, frame_skip=4, noop_max=30), 4)
    rng = np.random.default_rng(0)
    n = env.action_space.n
    env.reset(seed=0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(n)))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def raw_dmc(domain: str, task: str, steps: int) -> float:
    """Steps/s of `dm_control.suite` stepping with random actions."""
    from dm_control import suite

    start = time.perf_counter()  # making the environment counts, as it does for collection
    env = suite.load(domain, task, task_kwargs={"random": 0})
    spec = env.action_spec()
    rng = np.random.default_rng(0)
    env.reset()
    for _ in range(steps):
        timestep = env.step(rng.uniform(spec.minimum, spec.maximum))
        if timestep.last():
            env.reset()
    return steps / (time.perf_counter() - start)


def collect_rate(task_id: str, steps: int) -> tuple[float, int]:
    """Steps/s of a full collection of about `steps` steps (whole episodes), and the steps."""
    from gato.data.collect import CollectConfig, collect
    from gato.tasks.registry import get_task

    task = get_task(task_id)
    per_episode = {"atari-breakout": 2000, "atari-pong": 2500}.get(task_id, task.episode_limit)
    episodes = max(1, round(steps / per_episode))
    with tempfile.TemporaryDirectory() as folder:
        config = CollectConfig(
            task=task_id,
            episodes=episodes,
            output=os.path.join(folder, "episodes"),
            progress=False,
            filter=False,
        )
        result = collect(config)
    return result.steps_per_second, result.steps


def raw_rate(task_id: str, steps: int) -> float:
    from gato.tasks.registry import get_task

    task = get_task(task_id)
    if task.suite == "atari":
        return raw_atari(task.env["game"], steps)
    if task.suite == "dmc":
        return raw_dmc(task.env["domain"], task.env["task"], steps)
    raise ValueError(f"benchmark covers atari and dmc tasks, not {task.suite}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["atari-breakout", "dmc-cartpole-swingup"])
    parser.add_argument("--steps", type=int, default=6000, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements (median reported)")
    args = parser.parse_args()

    import cv2
    import datasets

    cv2.setNumThreads(1)
    datasets.disable_progress_bars()
    rows = []
    for task_id in args.tasks:
        collect_rate(task_id, 500)  # warm up: imports, ROM load, LQR gains
        raws, collects, total = [], [], 0
        for _ in range(args.repeats):
            raws.append(raw_rate(task_id, args.steps))
            rate, steps = collect_rate(task_id, args.steps)
            collects.append(rate)
            total += steps
        raw, col = statistics.median(raws), statistics.median(collects)
        rows.append((task_id, raw, col, col / raw, total))

    print(f"{'task':<24} {'raw steps/s':>12} {'collect steps/s':>16} {'collect/raw':>12}")
    for task_id, raw, col, ratio, total in rows:
        print(f"{task_id:<24} {raw:>12.0f} {col:>16.0f} {ratio:>11.0%}  ({total} steps collected)")


if __name__ == "__main__":
    main()
