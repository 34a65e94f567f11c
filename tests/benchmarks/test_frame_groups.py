"""benchmarks/frame_groups.py: both tables at a tiny size; each contender takes the tokens and
positions it claims, and bad sizes are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import frame_groups  # noqa: E402


def test_tiny_run_prints_both_tables_and_writes_json(tmp_path, capsys):
    out = tmp_path / "rows.json"
    argv = ["--steps", "1", "--warmup", "0", "--policy-steps", "2", "--rows", "1", "--window", "2"]
    rows = frame_groups.main([*argv, "--context", "128", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| patches | 27 | 27 |" in printed
    assert "| frame groups | 27 | 3 |" in printed
    assert "| one patch a frame | 3 | 3 |" in printed
    train = {r["contender"]: r for r in rows if r["part"] == "train"}
    act = {r["contender"]: r for r in rows if r["part"] == "act"}
    assert set(train) == set(act) == {"patches", "frame groups", "one patch a frame"}
    assert train["patches"]["speedup"] == 1.0 and act["patches"]["speedup"] == 1.0
    assert all(r["timesteps_per_s"] > 0 for r in train.values())
    # Half the context of 128 tokens: two steps of 27 tokens, 21 of 3.
    assert act["patches"]["prompt_tokens"] == act["frame groups"]["prompt_tokens"] == 54
    assert act["one patch a frame"]["prompt_tokens"] == 63
    assert json.loads(out.read_text()) == rows


def test_bad_sizes_are_refused(capsys):
    with pytest.raises(SystemExit):
        frame_groups.main(["--rows", "0"])
    assert "--rows must be >= 1" in capsys.readouterr().err
