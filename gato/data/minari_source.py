"""`MinariSource`: a Minari dataset as a control source of a mixture recipe.

A recipe names one with `path = "minari:<dataset id>"` (a dataset of the local Minari root,
`MINARI_DATASETS_PATH`, default ~/.minari/datasets; nothing is downloaded), `path =
"minari:<folder>"`, or the path of a Minari dataset folder (one holding `data/metadata.json`).
Its `task` must be a registry task: the task says how Minari's spaces become our columns
(`gato.data.minari.read_minari`, which checks the spaces first).

The episodes are read whole into memory (Minari's HDF5 or Arrow files are not our Parquet), so
such a source suits datasets of the size Minari serves; `stream()` hands the table out as a
stream, so a recipe mixing Minari and Parquet sources also trains with `--streaming`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gato.data.sources import ControlSource

__all__ = ["MINARI_PREFIX", "MinariSource", "is_minari_path"]

MINARI_PREFIX = "minari:"
"""How a recipe's `path` names a Minari dataset: `minari:<dataset id or folder>`."""


def is_minari_path(path: str | None) -> bool:
    """Whether a recipe `path` names a Minari dataset (the prefix, or a Minari folder)."""
    if path is None:
        return False
    if path.startswith(MINARI_PREFIX):
        return True
    return (Path(path).expanduser() / "data" / "metadata.json").is_file()


@dataclass(frozen=True)
class MinariSource(ControlSource):
    """Episodes of a registry task read from a Minari dataset (`path`: `minari:<id or folder>`,
    or a Minari folder)."""

    @property
    def reference(self) -> str:
        """The dataset id or folder, as `gato.data.minari.open_minari` takes it."""
        return self.path[len(MINARI_PREFIX) :] if self.path.startswith(MINARI_PREFIX) else self.path

    @property
    def build_command(self) -> str:
        return ""  # Minari datasets are made elsewhere (or by `python -m gato.data.minari export`)

    def where(self) -> str:
        return f"{self.name} (Minari dataset {self.reference!r}, split {self.split})"

    def _task_or_error(self):
        task = self.task()
        if task is None:
            raise ValueError(
                f"source {self.name!r} (Minari dataset {self.reference!r}): a Minari source needs "
                "a registry task (data/tasks.toml) to convert its spaces; use the task id as the "
                "source's `task`"
            )
        return task

    def _open(self):
        try:
            from gato.data.minari import open_minari

            return open_minari(self.reference)
        except ImportError:
            raise ImportError(
                f"source {self.name!r}: reading the Minari dataset {self.reference!r} needs the "
                "minari package: pip install 'gato[minari]'"
            ) from None
        except FileNotFoundError as err:
            raise FileNotFoundError(f"source {self.name!r}: {err}") from None

    def located(self) -> MinariSource:
        """This source with its dataset's folder; `FileNotFoundError` naming the dataset id when
        it is not in the local Minari root (nothing is downloaded)."""
        self._task_or_error()
        folder = Path(self._open().storage.data_path).resolve()
        # The folder, not the id: the token cache and a stream's saved position then follow the
        # data, not whichever root MINARI_DATASETS_PATH names today.
        return replace(self, path=f"{MINARI_PREFIX}{folder}")

    def is_missing(self) -> bool:
        try:
            self.located()
        except (FileNotFoundError, ImportError):
            return True
        return False

    def _load(self):
        from gato.data.minari import read_minari

        task = self._task_or_error()
        if self.split != "train":
            raise ValueError(
                f"{self.where()}: a Minari dataset has one split; it is read for 'train' only"
            )
        key = _fingerprint(self._open())
        try:
            return read_minari(self.reference, task, fingerprint=key)
        except ValueError as err:  # spaces or episodes that do not fit the task
            # The same type (EpisodeSchemaError stays one), its message naming the source.
            message = f"source {self.name!r}: Minari dataset {self.reference!r}: {err}"
            raise type(err)(message) from None

    def stream(self):
        """The episodes as a `StreamingEpisodes` (read whole, then handed out in order)."""
        from gato.data.streaming import StreamingEpisodes

        dataset = self.load()
        return StreamingEpisodes(
            dataset.with_format(None).to_iterable_dataset(), task=self.task(), source=self.where()
        )


def _fingerprint(dataset: Any) -> str:
    """A stable key of a Minari dataset's files (names, sizes, times), so the token cache of an
    unchanged dataset is reused rather than rebuilt each run."""
    folder = Path(dataset.storage.data_path)
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]
