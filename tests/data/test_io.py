"""Atomic dataset writes and the one loader for folders, Parquet files and hub ids."""

from __future__ import annotations

import datasets
import pytest

from gato.data.io import load_rows, recover_dataset, save_dataset


def _rows(n: int, offset: int = 0) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "rewards": [[float(i + offset)] * 3 for i in range(n)],
            "discrete_actions": [[1, 2, 3]] * n,
        }
    )


def test_save_replaces_atomically_and_loads(tmp_path):
    path = tmp_path / "ds"
    save_dataset(_rows(3), path)
    save_dataset(_rows(5, offset=10), path)
    loaded = load_rows(path)
    assert len(loaded) == 5 and loaded[0]["rewards"] == [10.0] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporaries left


def test_failed_write_keeps_the_previous_copy(tmp_path, monkeypatch):
    path = tmp_path / "ds"
    save_dataset(_rows(3), path)

    def crash(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_dataset(_rows(7), path)
    monkeypatch.undo()
    assert len(load_rows(path)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_recover_after_crash_between_renames(tmp_path):
    path = tmp_path / "ds"
    save_dataset(_rows(3), path)
    path.rename(tmp_path / ".ds.old-deadbeef")  # the crash left only the moved-aside copy
    (tmp_path / ".ds.tmp-deadbeef").mkdir()
    assert recover_dataset(path)
    assert len(load_rows(path)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_dataset_dict_splits_and_parquet(tmp_path):
    save_dataset(datasets.DatasetDict({"train": _rows(4), "test": _rows(2)}), tmp_path / "dd")
    assert len(load_rows(tmp_path / "dd", split="test")) == 2
    with pytest.raises(ValueError, match="no split 'validation'"):
        load_rows(tmp_path / "dd", split="validation")

    folder = tmp_path / "pq"
    folder.mkdir()
    _rows(4).to_parquet(str(folder / "train-00000.parquet"))
    _rows(1).to_parquet(str(folder / "test-00000.parquet"))
    assert len(load_rows(folder)) == 4
    assert len(load_rows(folder, split="test")) == 1
    assert len(load_rows(folder / "train-00000.parquet")) == 4


def test_missing_columns_and_missing_paths(tmp_path):
    save_dataset(_rows(2), tmp_path / "ds")
    with pytest.raises(ValueError, match=r"missing required columns \['continuous_actions'\]"):
        load_rows(tmp_path / "ds", required_columns=["rewards", "continuous_actions"])
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        load_rows(tmp_path / "nothing" / "here")


def test_empty_saved_dataset_is_a_clear_error(tmp_path):
    save_dataset(_rows(0), tmp_path / "empty")
    with pytest.raises(ValueError, match="empty"):
        load_rows(tmp_path / "empty")
