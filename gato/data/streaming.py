"""Episodes as a stream: read shard by shard, checked one episode at a time, resumable.

`load_episodes(..., streaming=True)` returns a `StreamingEpisodes`: a `datasets.IterableDataset`
(Parquet files read one after another, or a hub config streamed over HTTP: nothing is
downloaded whole) behind the same checks `load_episodes` makes on a whole table, made per
episode as it arrives:

- before the first row: the columns the task needs, their types (from the files' schema);
- per episode: equal step counts in every column, vectors of one width, the task's widths;
- empty episodes (no steps, as JAT's data has) are skipped and counted in one warning at the
  end of a pass.

`shard(index, count)` splits the stream without overlap (whole files when there are enough of
them, else every count-th episode; `datasets.distributed.split_dataset_by_node`): one part per
training process, then one per DataLoader worker. `state_dict()` / `load_state_dict()` record
and restore the position, so a resumed run reads on where it stopped.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from gato.data.schema_checks import (
    _VECTOR_COLUMNS,
    EpisodeSchemaError,
    _check_ends,
    _check_types,
    _expected_width,
    width_mismatch_message,
)
from gato.schema import ACTION_COLUMNS, EPISODE_COLUMNS, OBSERVATION_COLUMNS, REWARD_COLUMN


class StreamingEpisodes:
    """An endless-capable, checked stream of episode rows (numpy-formatted, as `load_episodes`).

    Args:
        dataset: a `datasets.IterableDataset` of episode rows.
        task: a `TaskSpec` whose columns and widths every episode must have (None: any).
        source: how errors name the dataset ('path [config c, split s]').
        config: the JAT config read (lets a width error say what recorded it).
    """

    def __init__(self, dataset: Any, task: Any = None, source: str = "dataset",
                 config: str | None = None) -> None:  # fmt: skip
        self.dataset = dataset
        self.task = task
        self.source = source
        self.config = config
        self.columns = self._check_schema()
        self._formatted = dataset.with_format("numpy")
        self.dropped = 0
        self.position = 0
        """Episodes (empty ones included) read in this pass of this part of the stream."""

    def _check_schema(self) -> list[str]:
        features = self.dataset.features
        if features is None:
            return []  # unknown until read: checked per row
        present = [c for c in EPISODE_COLUMNS if c in features]
        required = list(self.task.columns) if self.task is not None else [REWARD_COLUMN]
        missing = [c for c in required if c not in present]
        actions = [c for c in ACTION_COLUMNS if c in present]
        if missing or not any(c in present for c in OBSERVATION_COLUMNS) or len(actions) != 1:
            raise EpisodeSchemaError(
                f"{self.source}: missing required columns {missing}, or no observation column, "
                f"or not exactly one action column (found {actions}); it has columns "
                f"{sorted(features)}"
            )
        _check_types(features, present, self.source)
        _check_ends(features, self.source)
        return present

    # -- splitting and resuming ----------------------------------------------------------------

    @property
    def num_shards(self) -> int:
        """Files (or saved-dataset shards) the stream reads: the unit `shard` splits first."""
        return int(self.dataset.n_shards)

    def shard(self, index: int, count: int) -> StreamingEpisodes:
        """Part `index` of `count` disjoint parts (processes, workers); together all episodes."""
        from datasets.distributed import split_dataset_by_node

        if not 0 <= index < count:
            raise ValueError(f"shard: index must be in [0, {count}), got {index}")
        part = split_dataset_by_node(self.dataset, rank=index, world_size=count)
        return StreamingEpisodes(part, self.task, f"{self.source} part {index}/{count}",
                                 self.config)  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands: the next episode to read (datasets' own state) and the
        count read so far."""
        return {"dataset": self._formatted.state_dict(), "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`: the next iteration starts at that episode."""
        self._formatted.load_state_dict(state["dataset"])
        self.position = int(state["position"])

    def restart(self) -> None:
        """Read from the first episode again (a new pass, in the same order).

        Not `datasets`' `set_epoch`: on a stream split over nodes it moves files between the
        parts (measured with datasets 5.2), and the parts must stay disjoint in every pass.
        """
        self._formatted = self.dataset.with_format("numpy")
        self.position = 0

    # -- reading -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.dropped = 0
        # `iter(batch_size=1)`, not `for row in dataset`: inside a DataLoader worker the latter
        # splits the files among the workers on its own, over the split `shard` already made.
        for batch in self._formatted.iter(batch_size=1):
            row = {column: values[0] for column, values in batch.items()}
            index = self.position
            self.position += 1
            if self._check_row(row, index):
                yield row
        if self.dropped:
            warnings.warn(
                f"{self.source}: dropped {self.dropped} empty episodes (no steps) of "
                f"{self.position}",
                stacklevel=2,
            )

    def _check_row(self, row: dict[str, Any], index: int) -> bool:
        """Check one episode; False for an empty one (skipped)."""
        where = f"{self.source}: episode {index}"
        columns = self.columns or [c for c in EPISODE_COLUMNS if c in row]
        counts = {}
        for column in columns:
            value = row.get(column)
            if value is None:
                raise EpisodeSchemaError(f"{where}: column {column!r} is missing")
            counts[column] = len(value)
        if not any(counts.values()):
            self.dropped += 1
            return False
        steps = counts[REWARD_COLUMN]
        for column, count in counts.items():
            if count != steps:
                raise EpisodeSchemaError(
                    f"{where}: ragged steps: {column!r} has {count} steps but 'rewards' has {steps}"
                )
        for column in columns:
            if column not in _VECTOR_COLUMNS:
                continue
            value = row[column]
            if value.dtype == object or value.ndim != 2:
                widths = sorted({len(np.atleast_1d(v)) for v in value})
                raise EpisodeSchemaError(
                    f"{where}: ragged {column!r}: steps have {widths} values; one width expected"
                )
            width = value.shape[1]
            if self.task is not None and width != _expected_width(self.task, column):
                raise EpisodeSchemaError(
                    width_mismatch_message(
                        self.source, column, width, self.task, self.config, index
                    )  # fmt: skip
                )
        return True
