"""benchmarks/patch_composition.py: the object's patch, and a short run's table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gato.data.corpora import vision_language as vl

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import patch_composition as pc  # noqa: E402


def test_object_patches_hold_the_object_of_its_labels():
    pixels, shapes, colours = pc.object_patches("heldout", 40, seed=3)
    assert pixels.shape == (40, 4, 16, 16) and pixels.dtype == torch.uint8
    assert not pixels[:, 3].any()  # RGB zero-padded to the model's four channels
    for patch, shape, colour in zip(pixels.numpy(), shapes, colours, strict=True):
        name = list(vl.COLOURS)[int(colour)]
        assert (name, vl.SHAPES[int(shape)]) in vl.HELD_OUT_PAIRS
        # The object's pixels are its colour (within the jitter); the background is grey.
        rgb = patch[:3].reshape(3, -1).T.astype(int)
        target = np.array(vl.COLOURS[name])
        close = np.abs(rgb - target).max(axis=1) <= vl.SceneConfig().colour_jitter
        assert close.sum() >= 7 * 7 // 2  # a small object is at least 7 pixels a side
    _, shapes, colours = pc.object_patches("train", 60)
    pairs = {
        (list(vl.COLOURS)[int(c)], vl.SHAPES[int(s)]) for s, c in zip(shapes, colours, strict=True)
    }
    assert pairs and not pairs & set(vl.HELD_OUT_PAIRS)
    with pytest.raises(ValueError, match="needs count >= 1"):
        pc.object_patches("train", 0)


def test_a_short_run_prints_every_encoder_and_step(capsys):
    table = pc.main(
        ["--encoders", "linear", "mono_resnet+linear", "--steps", "2", "4", "--seeds", "0",
         "--train_rows", "64", "--test_rows", "30"]
    )  # fmt: skip
    assert [(r["encoder"], r["step"]) for r in table] == [
        ("linear", 2), ("linear", 4), ("mono_resnet+linear", 2), ("mono_resnet+linear", 4),
    ]  # fmt: skip
    assert all(0.0 <= r[c] <= 1.0 for r in table for c in pc.COLUMNS)
    out = capsys.readouterr().out
    assert "| mono_resnet+linear | 4 |" in out
    for bad in ("vit", "nature"):  # nature embeds whole frames, not these 16-pixel patches
        with pytest.raises(SystemExit):
            pc.main(["--encoders", bad])
        assert f"unknown encoders ['{bad}']" in capsys.readouterr().err
