"""benchmarks/control_learning.py: the tiny configuration runs end to end on real episodes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import datasets
import pytest

from gato.data.collect import CollectConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import control_learning  # noqa: E402


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    datasets.disable_progress_bars()
    out = tmp_path_factory.mktemp("control_learning") / "pendulum"
    collect(CollectConfig("gym-pendulum", 4, output=str(out), progress=False, filter=False))
    datasets.enable_progress_bars()
    return out


def test_tiny_benchmark_trains_scores_and_writes_curves(episodes, tmp_path, capsys):
    out_json, out_png = tmp_path / "curves.json", tmp_path / "curves.png"
    argv = ["--tiny", "--data", str(episodes), "--json", str(out_json), "--figure", str(out_png)]
    curves = control_learning.main(argv)
    assert [c.learner for c in curves] == ["mlp", "gato:table:4", "gato:table+fourier:1"]
    tiny = control_learning.TINY
    for curve in curves:
        assert curve.steps == list(tiny["steps"])
        assert curve.timesteps == [s * tiny["batch_timesteps"] for s in tiny["steps"]]
        assert all(math.isfinite(s) for s in curve.scores)
        assert curve.losses[-1] < curve.losses[0]  # every learner learns something
    report = json.loads(out_json.read_text())
    assert [c["learner"] for c in report["curves"]] == [c.learner for c in curves]
    assert out_png.stat().st_size > 0
    assert "gato:table+fourier:1" in capsys.readouterr().out  # the printed table
    merged = control_learning.main(["--merge", str(out_json), str(out_json)])
    assert [c.learner for c in merged] == [c.learner for c in curves] * 2
    assert merged[0].scores == curves[0].scores


def test_unknown_learner_is_named(episodes):
    with pytest.raises(ValueError, match="unknown learner 'gato:table'"):
        control_learning.main(["--data", str(episodes), "--learners", "gato:table", "--steps", "1"])
