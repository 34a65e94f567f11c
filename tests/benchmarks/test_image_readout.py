"""benchmarks/image_readout.py: the four ways of reading Pong's frames train, and say so."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from gato.codecs import frames_to_patches
from gato.data.collect import CollectConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import image_readout  # noqa: E402


@pytest.fixture(scope="module")
def pong(tmp_path_factory) -> Path:
    datasets.disable_progress_bars()
    out = tmp_path_factory.mktemp("readout") / "atari-pong"
    collect(CollectConfig("atari-pong", 1, output=str(out), progress=False, filter=False,
                          policy="random"))  # fmt: skip
    datasets.enable_progress_bars()
    return out


def test_every_learner_trains_and_the_table_has_a_column_per_interval(pong, capsys):
    results = image_readout.main(
        ["--data", str(pong), "--games", "1", "--steps", "5", "--every", "2", "--batch", "4",
         "--width", "32", "--layers", "1", "--heads", "2", "--warmup", "1"]
    )  # fmt: skip
    assert list(results) == list(image_readout.LEARNERS)
    for losses, ms in results.values():
        assert len(losses) == 3 and all(math.isfinite(x) for x in losses) and ms > 0
    out = capsys.readouterr().out
    assert "| learner | 2 | 4 | 5 | ms a step |" in out
    assert out.count("\n| ") == 1 + len(image_readout.LEARNERS) + 1  # header, rule, rows


def test_the_patch_learner_reads_the_tokenizers_cut_and_the_frame_learner_one_token():
    """The patches are the tokenizer's (25 of 16 pixels from the 84 -> 80 resize), each the
    model's block's vector plus its position's; the frame learner embeds the stack once."""
    config = image_readout.ReadoutConfig(data="x", width=32, layers=1, heads=2)
    torch.manual_seed(0)
    learner = image_readout.PatchLearner(config, 6, "attention").eval()
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 84, 84, 4), np.uint8))
    seen = []
    learner.mix.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    learner(frames)
    pixels = torch.from_numpy(frames_to_patches(frames.numpy(), 16, resize=True).pixels)
    expected = learner.encoder(pixels.flatten(0, 1)).reshape(2, 25, 32) + learner.position
    torch.testing.assert_close(seen[0], expected)
    frame = image_readout.FrameLearner(config, 6).eval()
    seen.clear()
    frame.mix.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    assert frame(frames).shape == (2, 6)
    assert seen[0].shape == (2, 1, 32)


def test_bad_settings_are_refused_with_what_is_wrong(pong):
    with pytest.raises(ValueError, match=r"unknown learners \['vit'\]"):
        image_readout.ReadoutConfig(data="x", learners=("cnn", "vit"))
    with pytest.raises(ValueError, match="width 30 is not divisible by heads 4"):
        image_readout.ReadoutConfig(data="x", width=30)
    with pytest.raises(ValueError, match="--games 3: .* holds 1 episodes"):
        image_readout.run(image_readout.ReadoutConfig(data=str(pong), games=3))
    with pytest.raises(SystemExit):
        image_readout.main(["--data", str(pong), "--steps", "0"])
