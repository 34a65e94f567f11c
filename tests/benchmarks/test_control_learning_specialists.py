"""benchmarks/control_learning.py's discrete-action specialists: the MLP on state (cartpole)
and the Nature CNN on frame stacks (Pong)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch

from gato.data.collect import CollectConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import control_learning  # noqa: E402


def _stacks(frames: np.ndarray, depth: int = 4) -> np.ndarray:
    """Frame stacks as the Atari adapter builds them: oldest first, the first frame repeated."""
    padded = np.concatenate([np.repeat(frames[:1], depth - 1, axis=0), frames])
    return np.stack([np.moveaxis(padded[t : t + depth], 0, -1) for t in range(len(frames))])


def test_frame_stacks_rebuild_every_observation_exactly():
    rng = np.random.default_rng(0)
    episodes = [
        {"image_observations": _stacks(rng.integers(0, 256, (n, 6, 5), dtype=np.uint8))}
        for n in (7, 2, 5)
    ]
    stacks = control_learning.FrameStacks(episodes)
    everything = np.concatenate([e["image_observations"] for e in episodes])
    assert len(stacks) == len(everything) == 14 and stacks.depth == 4
    got = stacks[torch.arange(len(everything))].numpy()
    np.testing.assert_array_equal(got, everything)
    shuffled = torch.from_numpy(rng.permutation(len(everything)))
    np.testing.assert_array_equal(stacks[shuffled].numpy(), everything[shuffled.numpy()])
    broken = [{"image_observations": rng.integers(0, 256, (8, 6, 5, 4), dtype=np.uint8)}]
    with pytest.raises(ValueError, match="do not shift by one frame"):
        control_learning.FrameStacks(broken)


def _collect(tmp_path, task: str, episodes: int, policy: str | None = None) -> Path:
    datasets.disable_progress_bars()
    out = tmp_path / task
    collect(CollectConfig(task, episodes, output=str(out), progress=False, filter=False,
                          policy=policy))  # fmt: skip
    datasets.enable_progress_bars()
    return out


def _config(data: Path, task: str, learner: str, **fields) -> control_learning.BenchConfig:
    base = dict(task=task, data=str(data), learners=learner, steps=(5, 40), batch_timesteps=32,
                eval_episodes=2, eval_max_steps=30, width=32)  # fmt: skip
    return control_learning.BenchConfig(**{**base, **fields})


def test_discrete_mlp_learns_cartpole_and_plays_it(tmp_path):
    data = _collect(tmp_path, "gym-cartpole", 2)
    (curve,) = control_learning.run(_config(data, "gym-cartpole", "mlp"))
    assert curve.learner == "mlp" and curve.steps == [5, 40]
    assert all(math.isfinite(s) for s in curve.scores)
    assert curve.losses[-1] < curve.losses[0] < math.log(2) + 0.1  # two actions: ln 2 at chance
    with pytest.raises(ValueError, match="no image observations"):
        control_learning.run(_config(data, "gym-cartpole", "cnn"))


def test_cnn_trains_on_pong_frames_and_plays_pong(tmp_path):
    data = _collect(tmp_path, "atari-pong", 1, policy="random")
    config = _config(data, "atari-pong", "cnn", steps=(2, 6), batch_timesteps=8, eval_episodes=1)
    (curve,) = control_learning.run(config)
    assert curve.learner == "cnn" and curve.parameters > 1_000_000  # the Nature CNN's size
    assert all(math.isfinite(s) for s in curve.scores + curve.losses)


def test_frame_stacks_read_lazily_each_episode_once(tmp_path):
    """From a dataset on disk through `LazyEpisodes`, the same frames as from the episodes held
    in a list; each episode is read once, and a column alone."""
    rng = np.random.default_rng(1)
    held = [
        {
            "image_observations": _stacks(rng.integers(0, 256, (n, 6, 5), dtype=np.uint8)),
            "discrete_actions": rng.integers(0, 6, n).astype(np.int64),
        }
        for n in (4, 9, 3)
    ]
    # Frames stored as the collected data stores them: a list of images per episode.
    features = datasets.Features(
        {
            "image_observations": datasets.List(datasets.Image()),
            "discrete_actions": datasets.List(datasets.Value("int64")),
        }
    )
    rows = [
        {**e, "image_observations": [PIL.Image.fromarray(f) for f in e["image_observations"]]}
        for e in held
    ]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(tmp_path / "d"))
    dataset = datasets.load_from_disk(str(tmp_path / "d")).with_format("numpy")
    reads: list[int] = []

    class Counting(control_learning.LazyEpisodes):
        def __getitem__(self, index: int) -> dict:
            reads.append(index)
            return super().__getitem__(index)

    lazy = Counting(dataset, 3)
    stacks = control_learning.FrameStacks(lazy)
    assert reads == [0, 1, 2]
    everything = np.concatenate([e["image_observations"] for e in held])
    np.testing.assert_array_equal(stacks[torch.arange(16)].numpy(), everything)
    actions = control_learning.episode_column(lazy, "discrete_actions")
    assert reads == [0, 1, 2]  # the column came without the episodes' images
    for got, episode in zip(actions, held, strict=True):
        np.testing.assert_array_equal(got, episode["discrete_actions"])
    assert len(Counting(dataset, 2)) == 2
    with pytest.raises(IndexError, match="episode 2 of 2"):
        Counting(dataset, 2)[2]
    with pytest.raises(ValueError, match=r"count 4 outside 0..3"):
        control_learning.LazyEpisodes(dataset, 4)
    with pytest.raises(ValueError, match="no episodes"):
        control_learning.FrameStacks([])
    floats = [{"image_observations": held[0]["image_observations"].astype(np.float32)}]
    with pytest.raises(ValueError, match="uint8 frame stacks, got float32"):
        control_learning.FrameStacks(floats)
