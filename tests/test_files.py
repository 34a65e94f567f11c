"""Atomic single-file writes: a failed write leaves the previous file and no temporary."""

from __future__ import annotations

import json
import os

import pytest

from gato.files import atomic_write_json, atomic_write_text


def test_writes_create_folders_and_replace_whole_files(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.txt", "first")
    assert path.read_text() == "first"
    atomic_write_json(path, {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    assert path.read_text().endswith("\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.txt"]


def test_a_crash_before_the_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "manifest.json", "good")

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "half")
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
