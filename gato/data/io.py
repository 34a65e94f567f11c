"""Reading and writing datasets: local folders, Parquet files and hub ids through one function.

Writes are atomic: a dataset is saved beside its destination and renamed into place, so a crash
mid-write leaves the previous good copy (or nothing) where a complete dataset is expected.
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import datasets


def save_dataset(dataset: datasets.Dataset | datasets.DatasetDict, path: str | Path) -> Path:
    """Save with `save_to_disk` into a sibling temporary folder, then swap it into `path`.

    The old copy is moved aside before the new one moves in and deleted only after, so at every
    instant either the old or the new dataset is complete on disk; `recover_dataset` puts the old
    one back if a crash fell between the two renames.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = path.with_name(f".{path.name}.tmp-{token}")
    old = path.with_name(f".{path.name}.old-{token}")
    try:
        dataset.save_to_disk(str(tmp))
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


def recover_dataset(path: str | Path) -> bool:
    """After a crash between the renames of `save_dataset`: restore the old copy, drop temps.

    Returns True when an old copy was restored.
    """
    path = Path(path)
    restored = False
    for leftover in sorted(path.parent.glob(f".{path.name}.old-*")):
        if not path.exists():
            os.replace(leftover, path)
            restored = True
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return restored


def _is_saved_dataset(path: Path) -> bool:
    return (path / "state.json").exists() or (path / "dataset_dict.json").exists()


def _parquet_files(path: Path) -> list[str]:
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*.parquet"))
    return sorted(glob.glob(str(path)))


def _in_split(file: Path, root: Path, split: str) -> bool:
    """`root/split/...parquet` or `root/.../split-00000.parquet` (the hub's layouts)."""
    parts = file.relative_to(root).parts if root.is_dir() else (file.name,)
    return split in parts[:-1] or parts[-1].startswith((f"{split}-", f"{split}."))


def load_rows(
    source: str | Path,
    split: str = "train",
    *,
    name: str | None = None,
    required_columns: Iterable[str] = (),
) -> datasets.Dataset:
    """One split of a dataset from a `save_to_disk` folder, Parquet files, or a hub id.

    Args:
        source: a folder written by `save_dataset` (a Dataset or a DatasetDict), a Parquet file,
            a folder or glob of Parquet files (a `split` sub-folder or file prefix is honoured when
            present), or a hub dataset id such as "jat-project/jat-dataset".
        split: the split to return.
        name: the hub configuration (a task name for the JAT dataset).
        required_columns: columns that must be present; a `ValueError` lists the missing ones.
    """
    path = Path(source)
    if path.exists() and _is_saved_dataset(path):
        try:
            loaded = datasets.load_from_disk(str(path))
        except IndexError:
            # datasets cannot reload a saved table of zero rows.
            raise ValueError(f"{source}: the saved dataset is empty (0 rows)") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{source}: no split {split!r}; splits: {sorted(loaded)}")
            loaded = loaded[split]
    elif path.exists() or any(ch in str(source) for ch in "*?["):
        files = _parquet_files(path)
        in_split = [f for f in files if _in_split(Path(f), path, split)]
        files = in_split or files
        if not files:
            raise ValueError(f"{source}: neither a saved dataset nor Parquet files")
        loaded = datasets.load_dataset("parquet", data_files=files, split="train")
    else:
        text = str(source)
        if text.startswith((".", "/", "~")) or text.count("/") != 1:
            raise FileNotFoundError(
                f"{source}: no such dataset folder or file (a hub id looks like 'owner/name')"
            )
        loaded = datasets.load_dataset(str(source), name=name, split=split)
    missing = sorted(set(required_columns) - set(loaded.column_names))
    if missing:
        raise ValueError(
            f"{source}: dataset is missing required columns {missing}; "
            f"it has {sorted(loaded.column_names)}"
        )
    return loaded
