"""benchmarks/grouped_encoding.py: both tables at a tiny size; the grouped rows take the
positions they claim."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import grouped_encoding  # noqa: E402


def test_tiny_run_prints_both_tables_and_writes_json(tmp_path, capsys):
    out = tmp_path / "rows.json"
    argv = ["--steps", "1", "--warmup", "0", "--policy-steps", "2", "--rows", "1"]
    rows = grouped_encoding.main([*argv, "--window", "2", "--no-compiled", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| grouped | 2 |" in printed and "| one token per value | 24 |" in printed
    assert "| grouped, separator kept | 3 |" in printed
    train = {r["encoding"]: r for r in rows if r["part"] == "train"}
    act = {r["encoding"]: r for r in rows if r["part"] == "act"}
    assert set(act) == {
        "one token per value, eager",
        "grouped, separator kept, eager",
        "grouped, eager",
    }
    assert train["one token per value"]["speedup"] == 1.0
    assert all(r["timesteps_per_s"] > 0 for r in train.values())
    assert json.loads(out.read_text()) == rows
