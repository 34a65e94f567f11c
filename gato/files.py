"""Where things live (assets, the home of generated data and runs) and atomic file writes.

Two places, found the same way by every module:

- **Assets** (`ASSETS_DIR`): the declarative data that ships with the package: the task
  registry (`data/tasks.toml`, `data/tasks/`), the mixture recipes (`data/mixtures/`), the
  trained expert policies (`data/experts/`) and the SentencePiece model (`tokenizers/`). In a
  checkout they are the repository's own folders; in an installed package (`pip install .`) they
  are package data under `gato/_assets/` (pyproject.toml and setup.py map them there).
- **Home** (`gato_home()`): where generated data (`data/cache/`: episodes, scenes, text, token
  caches) and runs (`runs/`) go. `$GATO_HOME` when set (or `--home DIR` on `train.py`,
  `eval.py` and the `gato` command, which set it); else the checkout itself when the package
  runs from one (today's repository-relative paths); else `~/.local/share/gato`
  (`$XDG_DATA_HOME/gato` when that is set). Modules read it when they are imported, so the flag
  is applied before anything else (`apply_home_flag`).

Atomic writes: a temporary file beside the destination, flushed to disk, then renamed. A reader
(or a run resumed after a crash) sees the previous complete file or the new complete file, never
half of one. Datasets and checkpoint folders are swapped whole elsewhere
(`gato.data.io.save_dataset`, the trainers' checkpoint code); these are for single files:
manifests, `latest` pointers, reports, registry edits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "ASSETS_DIR",
    "HOME_ENV",
    "IN_CHECKOUT",
    "REPO_ROOT",
    "apply_home_flag",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cache_dir",
    "gato_home",
    "home_path",
]

# The folder above the package: the checkout that holds data/ and tokenizers/ when the package
# runs from one (an editable install, PYTHONPATH), site-packages when it is installed.
REPO_ROOT = Path(__file__).resolve().parents[1]
IN_CHECKOUT = (REPO_ROOT / "data" / "tasks.toml").is_file() and (REPO_ROOT / "tokenizers").is_dir()
"""Whether the package runs from a repository checkout (else from an installed copy)."""
ASSETS_DIR = REPO_ROOT if IN_CHECKOUT else Path(__file__).resolve().parent / "_assets"
"""The folder holding `data/` (registry, recipes, experts) and `tokenizers/`."""
HOME_ENV = "GATO_HOME"


def gato_home() -> Path:
    """The folder generated data and runs go under (see the module docstring); read each call."""
    override = os.environ.get(HOME_ENV, "")
    if override:
        return Path(override).expanduser().resolve()
    if IN_CHECKOUT:
        return REPO_ROOT
    xdg = os.environ.get("XDG_DATA_HOME", "")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "gato"


def home_path(path: str | Path) -> Path:
    """`path` itself when absolute, else `<home>/path` (where relative run folders live)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else gato_home() / path


def cache_dir() -> Path:
    """`<home>/data/cache`: episodes, scenes, the text corpus and token caches."""
    return gato_home() / "data" / "cache"


def apply_home_flag(argv: list[str]) -> list[str]:
    """Take `--home DIR` (or `--home=DIR`) out of a command line and set `$GATO_HOME` from it.

    Called by the entry points before they import the library, because modules read the home
    when they are imported. Returns the command line without the flag.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--home" or arg.startswith("--home="):
            value = arg.partition("=")[2] if "=" in arg else None
            if value is None:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise SystemExit("--home needs a folder: --home DIR")
                value = argv[i + 1]
                i += 1
            if not value:
                raise SystemExit("--home needs a folder: --home DIR")
            os.environ[HOME_ENV] = str(Path(value).expanduser().resolve())
        else:
            out.append(arg)
        i += 1
    return out


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
