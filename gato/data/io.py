"""Reading and writing datasets: local folders, Parquet files and hub ids through one function.

Writes are atomic: a dataset is saved beside its destination and renamed into place, so a crash
mid-write leaves the previous good copy (or nothing) where a complete dataset is expected.
"""

from __future__ import annotations

import difflib
import glob
import json
import os
import re
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


def saved_description(folder: str | Path) -> dict | None:
    """The JSON object a saved dataset folder (a `Dataset`, or one split of a `DatasetDict`)
    keeps in its info's description, read without loading the data; None when the folder has
    no info or its description is not a JSON object (nothing recorded, or not by us)."""
    try:
        info = json.loads((Path(folder) / "dataset_info.json").read_text())
        record = json.loads(info.get("description") or "")
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def _is_saved_dataset(path: Path) -> bool:
    return (path / "state.json").exists() or (path / "dataset_dict.json").exists()


def _parquet_files(path: Path) -> list[str]:
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*.parquet"))
    return sorted(glob.glob(str(path)))


_SPLIT_FILE = re.compile(r"^(?P<split>[A-Za-z_]+)(?:-\d+-of-\d+(?:-[0-9a-f]+)?|-\d+)?\.parquet$")
"""`train.parquet`, `train-00000.parquet`, `train-00000-of-00002-<hash>.parquet`: the hub's
file names (the split is the prefix)."""


def file_split(file: Path, root: Path) -> str | None:
    """The split a Parquet file belongs to in the hub's layouts, None when it does not say.

    `root/<split>/0000.parquet` (the converted layout; `partial-<split>/` for a split converted
    in part) or `root/<split>-0000K-of-0000N-<hash>.parquet` (the uploaded one), possibly under
    a `data/` folder.
    """
    parts = file.relative_to(root).parts if file.is_relative_to(root) else ()
    parts = parts or (file.name,)
    for folder in reversed(parts[:-1]):
        # The converter names the folder of a split it converted only in part `partial-<split>`.
        folder = folder.removeprefix("partial-")
        if folder in KNOWN_SPLITS:
            return folder
    match = _SPLIT_FILE.match(parts[-1])
    return match.group("split") if match and match.group("split") in KNOWN_SPLITS else None


KNOWN_SPLITS = ("train", "test", "validation")


def config_folders(root: Path) -> list[str]:
    """Sub-folders of a local mirror of a multi-config hub dataset that hold Parquet files (a
    one-config folder's split folders, `train/`, `partial-test/`, `data/`, are not configs)."""
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and p.name.removeprefix("partial-") not in (*KNOWN_SPLITS, "data")
        and any(p.rglob("*.parquet"))
    )


def resolve_config(path: Path, name: str | None, source: str | Path) -> Path:
    """The folder of config `name` inside a local mirror of a hub dataset, or `path` itself.

    A mirror holds one folder per config (`<root>/atari-pong/train/0000.parquet`); a folder that
    is itself one dataset (saved, or Parquet files of its splits) is returned as is. An unknown
    config raises `ValueError` naming it and the configs the folder holds.
    """
    if not path.is_dir() or _is_saved_dataset(path):
        return path
    if name is not None and (path / name).is_dir():
        return path / name
    configs = config_folders(path)
    direct = any(path.glob("*.parquet")) or any(
        f.is_dir() and f.name not in configs and any(f.rglob("*.parquet")) for f in path.iterdir()
    )
    if direct or not configs:
        return path  # a one-config folder: its files are the config's
    if name is None:
        raise ValueError(
            f"{source}: the folder holds configs {configs}; name the one to read "
            "(`name`, or a task whose `dataset_config` names it)"
        )
    close = difflib.get_close_matches(name, configs, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{source}: unknown config {name!r}{hint} the folder holds configs {configs}")


def load_rows(
    source: str | Path,
    split: str = "train",
    *,
    name: str | None = None,
    required_columns: Iterable[str] = (),
    streaming: bool = False,
):
    """One split of a dataset from a `save_to_disk` folder, Parquet files, or a hub id.

    Args:
        source: a folder written by `save_dataset` (a Dataset or a DatasetDict), a Parquet file,
            a folder or glob of Parquet files (a `split` sub-folder or file prefix is honoured when
            present), a local mirror of a multi-config hub dataset (one folder per config, in
            either hub layout), or a hub dataset id such as "jat-project/jat-dataset".
        split: the split to return.
        name: the configuration (a task name for the JAT dataset): a hub config, or the config
            folder of a local mirror.
        required_columns: columns that must be present; a `ValueError` lists the missing ones.
        streaming: return a `datasets.IterableDataset` that reads the files (or the hub) as it
            is iterated, one shard after another, instead of a `datasets.Dataset`.
    """
    path = Path(source)
    if path.exists():
        path = resolve_config(path, name, source)
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
        if streaming:
            loaded = loaded.to_iterable_dataset(num_shards=max(1, len(loaded.cache_files)))
    elif path.exists() or any(ch in str(source) for ch in "*?["):
        files = _parquet_files(path)
        if not files:
            raise ValueError(f"{source}: neither a saved dataset nor Parquet files")
        if not path.is_file():
            splits = {f: file_split(Path(f), path) for f in files}
            named = {s for s in splits.values() if s is not None}
            if named:
                files = [f for f, s in splits.items() if s == split]
                if not files:
                    raise ValueError(f"{source}: no split {split!r}; splits: {sorted(named)}")
        loaded = datasets.load_dataset(
            "parquet", data_files=files, split="train", streaming=streaming
        )
    else:
        text = str(source)
        if text.startswith((".", "/", "~")) or text.count("/") != 1:
            raise FileNotFoundError(
                f"{source}: no such dataset folder or file (a hub id looks like 'owner/name')"
            )
        loaded = datasets.load_dataset(str(source), name=name, split=split, streaming=streaming)
    columns = loaded.column_names
    if columns is None:  # a stream whose features are not known until read
        columns = list(loaded.features or {})
    missing = sorted(set(required_columns) - set(columns))
    if missing:
        raise ValueError(
            f"{source}: dataset is missing required columns {missing}; it has {sorted(columns)}"
        )
    return loaded
