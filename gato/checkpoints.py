"""The run folder's checkpoint format, in one place: step folders, their manifests, `latest`.

A run folder (the main job's, an IMPALA run's, an algorithm-distillation model's) keeps its
checkpoints as

    <run>/checkpoints/step-<N>/            one checkpoint (N zero-padded: 8 digits for the main
                                           job, 12 for IMPALA, whose steps are frames)
    <run>/checkpoints/step-<N>/MANIFEST.json
                                           {"format": 1, "files": {relative path: sha256}, ...}
                                           plus what the writer adds (step, config, ...)
    <run>/checkpoints/latest               the name of the newest complete step folder

What is inside a step folder (a `save_pretrained` model and training state, or an IMPALA policy)
is the writer's business. A checkpoint is written to a temporary folder, its manifest last, then
renamed into place; `latest` is replaced atomically after: a crash at any moment leaves the
previous good checkpoint, and a step folder with a manifest is complete.

Every reader and writer of manifests and `latest` goes through this module. It imports only the
standard library and `gato.files`, so actor processes and deployment pay nothing for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from gato.files import atomic_write_text

__all__ = [
    "CHECKPOINTS",
    "FORMAT",
    "LATEST",
    "MANIFEST",
    "CheckpointError",
    "checkpoint_steps",
    "file_digests",
    "has_manifest",
    "latest_checkpoint",
    "publish",
    "prune",
    "read_latest",
    "read_manifest",
    "step_name",
    "step_of",
    "verify_checkpoint",
    "write_latest",
    "write_manifest",
]

FORMAT = 1
"""`format` of the manifests this code writes (and the only one it reads)."""
MANIFEST = "MANIFEST.json"
LATEST = "latest"
CHECKPOINTS = "checkpoints"
"""The folder of a run that holds its step folders and `latest`."""

_STEP = re.compile(r"^step-(\d+)$")
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or corrupt; the message names the problem."""


# ---------------------------------------------------------------------------------------------
# Step folders
# ---------------------------------------------------------------------------------------------


def step_name(step: int, digits: int = 8) -> str:
    """`step-00000042`: the folder name of the checkpoint at `step` (zero-padded so names sort)."""
    if step < 0:
        raise ValueError(f"a checkpoint step must be non-negative, got {step}")
    return f"step-{step:0{digits}d}"


def step_of(name: str) -> int | None:
    """The step a folder name stands for (`step-00000042` -> 42), or None for other names."""
    match = _STEP.match(name)
    return int(match.group(1)) if match else None


def checkpoint_steps(root: str | Path, complete: bool = False) -> list[tuple[int, Path]]:
    """(step, folder) of every step folder in a `checkpoints/` folder, oldest first.

    `complete`: only those whose manifest exists (it is written last). A missing `root` has none.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        step = step_of(path.name)
        if step is not None and path.is_dir() and (not complete or has_manifest(path)):
            found.append((step, path))
    return sorted(found)


def prune(root: str | Path, keep: int, current: str) -> list[Path]:
    """Remove the oldest step folders of `root` beyond the newest `keep`; never `current`.

    Returns the removed folders.
    """
    folders = [path for _, path in checkpoint_steps(root)]
    removed = []
    for old in folders[: max(0, len(folders) - keep)]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def publish(tmp: Path, final: Path) -> Path:
    """Rename a finished temporary step folder (manifest written) into place, replacing `final`.

    The rename is atomic; a folder already at `final` (a crashed run's leftover, or the same
    step written again) is removed first.
    """
    if not has_manifest(tmp):
        raise CheckpointError(f"{tmp} has no {MANIFEST}: write the manifest before publishing")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


# ---------------------------------------------------------------------------------------------
# The latest pointer
# ---------------------------------------------------------------------------------------------


def write_latest(root: str | Path, name: str) -> Path:
    """Point `<root>/latest` at the step folder `name` (atomically: readers see old or new)."""
    root = Path(root)
    if not (root / name).is_dir():
        raise CheckpointError(f"cannot point {root / LATEST} at {name!r}: no such folder in {root}")
    return atomic_write_text(root / LATEST, name)


def read_latest(root: str | Path) -> Path | None:
    """The step folder `<root>/latest` names, or None when `root` has no `latest`.

    Raises `CheckpointError` when the pointer is unreadable or names a folder that is not there.
    """
    root = Path(root)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not name or Path(name).name != name:
        raise CheckpointError(f"{pointer} is corrupt: {name!r} is not a checkpoint folder name")
    target = root / name
    if not target.is_dir():
        raise CheckpointError(
            f"{pointer} names checkpoint {name!r}, which does not exist in {root}"
        )
    return target


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The step folder `<run_dir>/checkpoints/latest` names, or None before the first one."""
    return read_latest(Path(run_dir) / CHECKPOINTS)


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(folder: str | Path) -> dict[str, str]:
    """{path relative to `folder`: sha256} of every file below it but the manifest."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST
    }


def write_manifest(folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Checksum every file of `folder` into its MANIFEST.json (with `extra`'s keys), atomically.

    Write it last: a folder with a manifest is a complete checkpoint.
    """
    folder = Path(folder)
    extra = dict(extra or {})
    clash = {"format", "files"} & set(extra)
    if clash:
        raise ValueError(f"write_manifest: extra may not set {sorted(clash)}")
    manifest = {"format": FORMAT, "files": file_digests(folder), **extra}
    return atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2))


def has_manifest(folder: str | Path) -> bool:
    """Whether `folder` holds a MANIFEST.json (a complete checkpoint, if it verifies)."""
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The MANIFEST.json of a checkpoint folder, checked for shape (not against the files)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {MANIFEST}: it is incomplete or corrupt")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {folder}: {MANIFEST} is corrupt ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"checkpoint {folder}: {MANIFEST} is corrupt (no files table)")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {folder}: {MANIFEST} has format {manifest.get('format')!r}, this code "
            f"reads format {FORMAT}"
        )
    return manifest


def verify_checkpoint(folder: str | Path, under: str | None = None) -> dict[str, Any]:
    """Check the files of a checkpoint folder against its manifest; return the manifest.

    `under` (e.g. "model/") checks only the files below that subfolder, for a reader that loads
    nothing else. Raises `CheckpointError` naming the first missing or changed file.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name, digest in manifest["files"].items():
        if under is not None and not name.startswith(under):
            continue
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {folder} is incomplete: {name} is missing")
        if _sha256(path) != digest:
            raise CheckpointError(
                f"checkpoint {folder} is corrupt: {name} does not match its checksum"
            )
    return manifest
