"""benchmarks/window_reads.py: a tiny run prints its table with both draws equal row for row,
and bad arguments are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import write_atari_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import window_reads  # noqa: E402


def test_tiny_run_prints_the_table_and_writes_json(tmp_path, capsys):
    data = write_atari_dataset(tmp_path / "pong", episodes=3, steps=10)
    out = tmp_path / "reads.json"
    argv = ["--data", str(data), "--episodes", "2", "--rows", "5", "--window-steps", "2"]
    argv += ["--context", "100", "--root", str(tmp_path), "--json", str(out)]
    result = window_reads.main(argv)
    printed = capsys.readouterr().out
    assert "| one gather (`read_windows`) |" in printed and "per window / one gather" in printed
    assert result["episodes"] == 2 and result["timesteps"] == 20
    # A timestep is 25 patches, a separator and an action (27 tokens): a window of two (54),
    # then one of one (27) in the 46 left; the 19 after it hold no timestep.
    assert result["windows_per_row"] == 2.0
    assert result["per_window_ms"] > 0 and result["one_gather_ms"] > 0
    assert json.loads(out.read_text())["ratio"] == result["ratio"]
    assert list(tmp_path.glob("tmp*")) == []


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        window_reads.main(["--data", str(tmp_path), "--rows", "0"])
    assert "--rows must be at least 1, got 0" in capsys.readouterr().err
    data = write_atari_dataset(tmp_path / "pong", episodes=1, steps=4)
    with pytest.raises(SystemExit, match="--episodes 5: .* holds 1"):
        window_reads.main(["--data", str(data), "--episodes", "5"])
    with pytest.raises(SystemExit, match="--context 20: a timestep of atari-pong has 27 tokens"):
        window_reads.main(["--data", str(data), "--episodes", "1", "--context", "20"])
