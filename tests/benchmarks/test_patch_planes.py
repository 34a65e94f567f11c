"""benchmarks/patch_planes.py: a tiny run prints its table, both layouts read the same patches,
and bad arguments are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import write_atari_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import patch_planes  # noqa: E402


def test_tiny_run_prints_the_table_and_writes_json(tmp_path, capsys):
    data = write_atari_dataset(tmp_path / "pong", episodes=3, steps=10)
    out = tmp_path / "planes.json"
    argv = ["--data", str(data), "--episodes", "2", "--windows", "4", "--steps", "3"]
    argv += ["--batches", "3", "--root", str(tmp_path), "--json", str(out)]
    result = patch_planes.main(argv)
    printed = capsys.readouterr().out
    assert "| whole patches (P, C, S, S) |" in printed and "| planes and indices |" in printed
    assert result["episodes"] == 2 and result["timesteps"] == 20 and result["patches"] == 500
    # Each new frame brings at most a dot's four patches and the background's two planes.
    assert result["planes"] <= 2 + 25 + 4 * 20
    assert result["whole_bytes"] == 500 * 4 * 16 * 16
    assert result["ratio"] > 4
    assert 0 < result["split_s"] < result["build_s"]
    assert json.loads(out.read_text())["planes"] == result["planes"]
    assert list(tmp_path.glob("tmp*")) == []  # the temporary build is removed


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        patch_planes.main(["--data", str(tmp_path), "--windows", "0"])
    assert "--windows must be at least 1, got 0" in capsys.readouterr().err
    data = write_atari_dataset(tmp_path / "pong", episodes=1, steps=4)
    with pytest.raises(SystemExit, match="--episodes 5: .* holds 1"):
        patch_planes.main(["--data", str(data), "--episodes", "5"])
