"""Atomic file writes: a temporary file beside the destination, flushed to disk, then renamed.

A reader (or a run resumed after a crash) sees the previous complete file or the new complete
file, never half of one. Datasets and checkpoint folders are swapped whole elsewhere
(`gato.data.io.save_dataset`, the trainers' checkpoint code); these are for single files:
manifests, `latest` pointers, reports, registry edits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]

# The checkout that holds data/ and tokenizers/ (the package lives in its gato/ folder).
REPO_ROOT = Path(__file__).resolve().parents[1]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (its folder is created if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any) -> Path:
    """Write `value` as indented JSON (with a final newline) to `path` atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n")
