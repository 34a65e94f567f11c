"""`gato.tracking`: each tracker writes what it was given where it was told; `none` writes
nothing; a bad name or a missing extra is refused naming it."""

from __future__ import annotations

import json
import struct

import pytest
from helpers import tensorboard_scalars

from gato.tracking import REPORT_TO, check_installed, check_report_to, open_tracker


def test_tensorboard_writes_the_scalars_at_their_steps(tmp_path):
    with open_tracker("tensorboard", tmp_path / "logs") as tracker:
        tracker.log({"eval/a/normalized_score": 0.25, "eval/tokens": 600}, step=3)
        tracker.log({"eval/a/normalized_score": 0.75}, step=6)
        tracker.log_table("eval/control", ["task", "score"], [["a", 0.75]], step=6)
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    scalars = tensorboard_scalars(tmp_path / "logs")
    assert scalars["eval/a/normalized_score"] == {3: 0.25, 6: 0.75}
    assert scalars["eval/tokens"] == {3: 600.0}


def test_none_writes_nothing(tmp_path):
    with open_tracker("none", tmp_path / "logs") as tracker:
        tracker.log({"eval/a": 1.0}, step=1)
        tracker.log_table("t", ["a"], [[1]], step=1)
    assert not (tmp_path / "logs").exists()


def test_a_bad_name_is_refused_naming_it_and_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"must be one of \['tensorboard', 'wandb', 'none'\]"):
        open_tracker("mlflow", tmp_path)
    with pytest.raises(ValueError, match="got 'tensorbord'"):
        check_report_to("tensorbord")
    assert [check_report_to(n) for n in REPORT_TO] == list(REPORT_TO)


def test_wandb_without_its_extra_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r'pip install "gato\[wandb\]"'):
        check_installed("wandb")
    assert check_installed("tensorboard") == "tensorboard"


def wandb_records(path) -> list:
    """The records of a wandb transaction log (`run-*.wandb`): a 7-byte header, then LevelDB's
    log format (32 KiB blocks of checksum, length, type and data; a record may span blocks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, offset, block = [], b"", 7, 32 * 1024
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # a block's tail too short for a header is padding
            offset += block - offset % block
            continue
        length, kind = struct.unpack("<HB", data[offset + 4 : offset + 7])
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # a full record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
        elif kind == 0:  # LevelDB's zero type: preallocated space, the rest of the block is empty
            offset += block - offset % block if offset % block else 0
            pending = b""
    return records


def test_wandb_offline_writes_a_run_holding_the_scores(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # Anything wandb writes outside the tracker's folder stays in the test's folder too.
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    logs = tmp_path / "eval_logs" / "control"
    with open_tracker("wandb", logs, name="eval-control", config={"episodes": 3}) as tracker:
        tracker.log({"eval/a/normalized_score": 0.25}, step=3)
        tracker.log({"eval/a/normalized_score": 0.75}, step=6)
    (run_log,) = (logs / "wandb").glob("offline-run-*/run-*.wandb")
    history = [
        {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in r.history.item
        }
        for r in wandb_records(run_log)
        if r.WhichOneof("record_type") == "history"
    ]
    logged = [(h["_step"], h["eval/a/normalized_score"]) for h in history]
    assert logged == [(3, 0.25), (6, 0.75)]
