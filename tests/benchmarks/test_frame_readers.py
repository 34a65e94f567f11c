"""benchmarks/frame_readers.py: the frame readers, their held-out split, the table and a run on
collected Pong episodes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from gato.data.collect import CollectConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import control_learning  # noqa: E402
import frame_readers  # noqa: E402


def _stacks(frames: np.ndarray, depth: int = 4) -> np.ndarray:
    """Frame stacks as the Atari adapter builds them: oldest first, the first frame repeated."""
    padded = np.concatenate([np.repeat(frames[:1], depth - 1, axis=0), frames])
    return np.stack([np.moveaxis(padded[t : t + depth], 0, -1) for t in range(len(frames))])


def test_spatial_softmax_against_a_loop_over_pixels():
    torch.manual_seed(0)
    maps = torch.randn(2, 3, 4, 4)
    temperature = torch.tensor([0.0, 1.0, -0.5])
    got = frame_readers.spatial_softmax(maps, temperature)
    centres = [(i + 0.5) / 4 * 2 - 1 for i in range(4)]
    for b in range(2):
        for k in range(3):
            weights = torch.softmax((maps[b, k] * math.exp(temperature[k])).flatten(), 0)
            x = sum(weights[r * 4 + c] * centres[c] for r in range(4) for c in range(4))
            y = sum(weights[r * 4 + c] * centres[r] for r in range(4) for c in range(4))
            assert got[b, k].item() == pytest.approx(float(x), abs=1e-6)
            assert got[b, 3 + k].item() == pytest.approx(float(y), abs=1e-6)
    with pytest.raises(ValueError, match="square maps, got 4x3"):
        frame_readers.spatial_softmax(maps[..., :3], temperature)


def test_a_bright_spot_is_where_the_spatial_softmax_puts_it():
    maps = torch.zeros(1, 1, 20, 20)
    maps[0, 0, 15, 4] = 100.0  # row 15, column 4
    x, y = frame_readers.spatial_softmax(maps, torch.zeros(1))[0].tolist()
    assert x == pytest.approx((4 + 0.5) / 20 * 2 - 1, abs=1e-4)
    assert y == pytest.approx((15 + 0.5) / 20 * 2 - 1, abs=1e-4)


def test_held_out_split_keeps_whole_episodes_out():
    first = torch.tensor([0, 0, 0, 3, 3, 5, 5, 5, 5])
    assert frame_readers.held_out_split(first, 1) == 5
    assert frame_readers.held_out_split(first, 2) == 3
    for bad in (0, 3):
        with pytest.raises(ValueError, match="leave episodes on both sides: 1 to 2 of 3"):
            frame_readers.held_out_split(first, bad)


@pytest.mark.parametrize("name", frame_readers.READERS)
def test_every_reader_maps_stacks_to_action_logits(name):
    torch.manual_seed(0)
    net = frame_readers.make_reader(name, 4, 6, 84, mean=100.0, std=40.0)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 84, 84, 4), np.uint8))
    logits = net(frames)
    assert logits.shape == (3, 6) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="unknown frame reader 'cnn'"):
        frame_readers.make_reader("cnn", 4, 6, 84, 0.0, 1.0)


def test_the_pooled_reader_keeps_a_one_pixel_ball_at_full_brightness():
    net = frame_readers.PooledCNN(4, 6, 84, mean=0.0, std=1.0)
    seen = {}
    net.conv[0].register_forward_hook(lambda module, inputs, out: seen.update(x=inputs[0]))
    frames = torch.zeros(1, 84, 84, 4, dtype=torch.uint8)
    frames[0, 41, 17, :] = 236
    net(frames)
    assert seen["x"].shape == (1, 4, 42, 42)
    assert seen["x"][0, :, 20, 8].tolist() == [236.0] * 4


def _episodes(rng: np.random.Generator, lengths: list[int]) -> list[dict]:
    return [
        {"image_observations": _stacks(rng.integers(0, 256, (n, 84, 84), dtype=np.uint8))}
        for n in lengths
    ]


def test_readers_train_on_the_same_batches_and_measure_held_out_episodes():
    rng = np.random.default_rng(0)
    frames = control_learning.FrameStacks(_episodes(rng, [12, 10, 9]))
    actions = torch.from_numpy(rng.integers(0, 6, len(frames)))
    config = frame_readers.ReaderConfig(
        readers=("stack", "diff"), steps=4, every=2, batch=4, warmup=2, held_out=1, threads=1
    )
    curves = frame_readers.train_readers(config, frames, actions, 6)
    assert [c.reader for c in curves] == ["stack", "diff"]
    for c in curves:
        assert c.steps == [2, 4] and len(c.held_out_losses) == len(c.held_out_accuracy) == 2
        assert all(math.isfinite(v) for v in c.train_losses + c.held_out_losses)
        assert c.ms_per_step > 0 and c.parameters > 1_000_000
    # The differences add 3 input channels of 8x8 weights to the first convolution.
    assert curves[1].parameters - curves[0].parameters == 3 * 32 * 8 * 8
    text = frame_readers.table(curves)
    assert text.splitlines()[0].startswith("| reader | 2 | 4 | ms a step |")
    with pytest.raises(ValueError, match="unknown frame reader 'cnn'"):
        frame_readers.train_readers(
            frame_readers.ReaderConfig(readers=("cnn",)), frames, actions, 6
        )
    with pytest.raises(ValueError, match="--every 0 must be in 1..--steps"):
        frame_readers.train_readers(
            frame_readers.ReaderConfig(readers=("stack",), every=0, held_out=1), frames, actions, 6
        )
    with pytest.raises(ValueError, match="31 frame stacks but 5 actions"):
        frame_readers.train_readers(config, frames, actions[:5], 6)


def test_main_on_collected_pong_episodes(tmp_path):
    datasets.disable_progress_bars()
    data = tmp_path / "pong"
    collect(CollectConfig("atari-pong", 2, output=str(data), progress=False, filter=False,
                          policy="random"))  # fmt: skip
    datasets.enable_progress_bars()
    out = tmp_path / "readers.json"
    argv = ["--data", str(data), "--readers", "stack,spatial", "--steps", "2", "--every", "1",
            "--batch", "4", "--held-out", "1", "--measure-frames", "16", "--threads", "1",
            "--json", str(out)]  # fmt: skip
    curves = frame_readers.main(argv)
    assert [c.reader for c in curves] == ["stack", "spatial"]
    report = json.loads(out.read_text())
    assert report["config"]["readers"] == ["stack", "spatial"]
    assert [c["steps"] for c in report["curves"]] == [[1, 2], [1, 2]]
    with pytest.raises(ValueError, match="clone discrete actions, not continuous"):
        frame_readers.main(["--data", str(data), "--task", "gym-pendulum"])
