"""Episodes in the JAT column schema: the features, writing one episode, loading and checking.

One row per episode; every column is a sequence over the episode's T steps:

| column | per step | feature |
| --- | --- | --- |
| `text_observations` | str | `List(Value("string"))` |
| `image_observations` | uint8 (H, W, C) image | `List(Image())`, PNG bytes |
| `discrete_observations` | int64 (D,) | `List(List(Value("int64")))` |
| `continuous_observations` | float32 (D,) | `List(List(Value("float32")))` |
| `discrete_actions` | int64 | `List(Value("int64"))` |
| `continuous_actions` | float32 (A,) in [-1, 1] | `List(List(Value("float32")))` |
| `rewards` | float32 | `List(Value("float32"))` |

Two optional columns hold one bool per episode, not per step: `terminated` (it reached a terminal
state) and `truncated` (it was cut: by the step limit, or short of it by whoever recorded it).
Collection writes them; JAT's data lacks them. Where they are present, the training filter drops
episodes cut short of the step limit and the expert score counts complete episodes only
(`training_mask`, `expert_score_of`).

A task uses only its columns. Step t holds the observation the agent saw, the action it took and
the reward that followed. Images are PNG: Atari's 4-frame stacks are 4-channel images, stored as
RGBA PNG with each frame in one channel (lossless and about 30 times smaller than raw pixels:
~0.9 kB per 84x84x4 stack); they decode back to uint8 (H, W, C).

`load_episodes` reads a `save_to_disk` folder, Parquet files, a local mirror of a hub dataset
(one folder per config, in either layout the hub serves) or a hub dataset id, either split, whole
or streamed (`gato.data.streaming`), and checks the schema on the Arrow table before anything is
decoded: missing columns, wrong types, missing values, episodes whose columns disagree on the
number of steps, per-step vectors of varying length, widths that differ from the task's. A bad
dataset raises `EpisodeSchemaError` naming the source (path, config, split), the episode, the
column and what was expected, and nothing is returned. Empty episodes (no steps; JAT's data has
them) are dropped and counted in one warning.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gato.data.schema_checks import (
    _VECTOR_COLUMNS,
    EpisodeSchemaError,
    _check_ends,
    _check_types,
    _expected_width,
    _first_row,
    column_feature,
    width_mismatch_message,
)
from gato.schema import (
    ACTION_COLUMNS,
    END_COLUMNS,
    EPISODE_COLUMNS,
    OBSERVATION_COLUMNS,
    REWARD_COLUMN,
    TERMINATED_COLUMN,
    TRUNCATED_COLUMN,
)


def episode_features(columns: Iterable[str]):
    """`datasets.Features` of the given columns, in schema order (episode-end flags last)."""
    import datasets

    columns = set(columns)
    order = (*EPISODE_COLUMNS, *END_COLUMNS)
    unknown = sorted(columns - set(order))
    if unknown:
        raise ValueError(f"unknown episode columns {unknown}; columns: {order}")
    return datasets.Features({c: column_feature(c) for c in order if c in columns})


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> PNG bytes that decode to the same array.

    OpenCV encodes 3 and 4 channels as BGR(A), so channels 0 and 2 are swapped on the way in.
    No row filter and zlib's run-length strategy: about 40 us per 84x84x4 Atari stack, four times
    faster than the defaults at a similar size, since screens are runs of flat colour.
    """
    import cv2

    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"encode_png: expected a uint8 (H, W[, C]) image, got {image.dtype} {image.shape}"
        )
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    elif channels != 1:
        raise ValueError(f"encode_png: images have 1, 3 or 4 channels, got {channels}")
    ok, encoded = cv2.imencode(".png", image, _png_params())
    if not ok:
        raise ValueError("encode_png: OpenCV could not encode the image")
    return encoded.tobytes()


@functools.cache
def _png_params() -> tuple[int, ...]:
    import cv2

    return (
        cv2.IMWRITE_PNG_COMPRESSION, 1,
        cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
        cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE,
    )  # fmt: skip


def _list_array(values, lengths: Sequence[int] | np.ndarray):
    """A pyarrow list array of len(lengths) rows over flat `values`."""
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _column_array(column: str, steps: Any, num_steps: int):
    """One episode's column (time-major) -> a one-row pyarrow list array."""
    import pyarrow as pa

    if column == "image_observations":
        images = pa.StructArray.from_arrays(
            [pa.array(list(steps), pa.binary()), pa.nulls(num_steps, pa.string())],
            names=["bytes", "path"],
        )
        return _list_array(images, [num_steps])
    if column == "text_observations":
        return _list_array(pa.array(list(steps), pa.string()), [num_steps])
    dtype = np.int64 if column.startswith("discrete") else np.float32
    array = np.asarray(steps, dtype=dtype)
    if column in _VECTOR_COLUMNS:
        array = array.reshape(num_steps, -1)
        inner = _list_array(pa.array(array.ravel()), np.full(num_steps, array.shape[1]))
        return _list_array(inner, [num_steps])
    return _list_array(pa.array(array.reshape(num_steps)), [num_steps])


def episode_record_batch(columns: Mapping[str, Any], features):
    """One episode {column: time-major steps} -> a one-row pyarrow RecordBatch of `features`.

    `image_observations` must already be PNG bytes per step (`encode_png`); vectors are
    (T, D) arrays or lists of (D,) arrays; scalars (T,) sequences; `terminated` and
    `truncated` one bool for the episode.
    """
    import pyarrow as pa

    lengths = {c: len(v) for c, v in columns.items() if c not in END_COLUMNS}
    if len(set(lengths.values())) != 1:
        raise EpisodeSchemaError(f"episode columns disagree on the number of steps: {lengths}")
    num_steps = next(iter(lengths.values()))
    schema = features.arrow_schema
    missing = [name for name in schema.names if name not in columns]
    if missing:
        raise EpisodeSchemaError(f"episode is missing columns {missing}")
    arrays = [
        pa.array([bool(columns[name])], pa.bool_())
        if name in END_COLUMNS
        else _column_array(name, columns[name], num_steps)
        for name in schema.names
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# ---------------------------------------------------------------------------------------------
# Checking and loading
# ---------------------------------------------------------------------------------------------


def check_episodes(
    dataset: Any, task: Any = None, source: str = "dataset", config: str | None = None
) -> tuple[list[str], np.ndarray]:
    """Check a `datasets.Dataset` of episodes on its Arrow table.

    Returns the episode columns present and the (E,) bool mask of empty episodes (no steps in
    any column: JAT's data has such rows, and its own training drops them). Raises
    `EpisodeSchemaError` naming the source, the episode, the column and what was expected. With
    a `task` (a `TaskSpec`) the task's columns are required and vector widths must match its
    specs; `config` (the JAT config read) lets a width error say what recorded the data.
    """
    import pyarrow.compute as pc

    present = [c for c in EPISODE_COLUMNS if c in dataset.column_names]
    observations = [c for c in OBSERVATION_COLUMNS if c in present]
    actions = [c for c in ACTION_COLUMNS if c in present]
    required = list(task.columns) if task is not None else [REWARD_COLUMN]
    missing = [c for c in required if c not in present]
    if missing or not observations or len(actions) != 1:
        problems = []
        if missing:
            problems.append(f"missing required columns {missing}")
        if not observations:
            problems.append(f"no observation column (one of {list(OBSERVATION_COLUMNS)})")
        if len(actions) != 1:
            problems.append(f"needs exactly one action column, found {actions or 'none'}")
        raise EpisodeSchemaError(
            f"{source}: {'; '.join(problems)}; it has columns {sorted(dataset.column_names)}"
        )
    _check_types(dataset.features, present, source)
    ends = _check_ends(dataset.features, source)
    if len(dataset) == 0:
        raise EpisodeSchemaError(f"{source}: no episodes")

    table = dataset.data  # the Arrow table; fresh loads carry no indices mapping
    step_counts = {}
    for column in [*present, *ends]:
        array = table.column(column)
        if array.null_count:
            row = _first_row(np.asarray(array.is_null()))
            raise EpisodeSchemaError(f"{source}: episode {row}: column {column!r} is missing")
        if column in present:
            step_counts[column] = np.asarray(pc.list_value_length(array), dtype=np.int64)
    reference = step_counts[REWARD_COLUMN]
    empty = np.logical_and.reduce([counts == 0 for counts in step_counts.values()])
    if empty.all():
        raise EpisodeSchemaError(
            f"{source}: no episodes with steps (episode 0 has no steps; all {len(empty)} are empty)"
        )
    for column, counts in step_counts.items():
        if (counts != reference).any():
            row = _first_row(counts != reference)
            raise EpisodeSchemaError(
                f"{source}: episode {row}: ragged steps: {column!r} has {counts[row]} steps "
                f"but 'rewards' has {reference[row]}"
            )
    if len(ends) == 2:
        both = np.asarray(table.column(ends[0])) & np.asarray(table.column(ends[1]))
        if both.any():
            raise EpisodeSchemaError(
                f"{source}: episode {_first_row(both)}: both 'terminated' and 'truncated' are "
                "true; an episode ends one way"
            )
    for column in present:
        flat = pc.list_flatten(table.column(column))
        if flat.null_count:
            step = _first_row(np.asarray(flat.is_null()))
            row = int(np.searchsorted(np.cumsum(step_counts[column]), step, side="right"))
            raise EpisodeSchemaError(
                f"{source}: episode {row}: column {column!r} has a missing step"
            )
        if column not in _VECTOR_COLUMNS:
            continue
        widths = np.asarray(pc.list_value_length(flat), dtype=np.int64)
        if widths.size and (widths != widths[0]).any():
            # Name the episode: map the first odd step back through the step counts.
            step = _first_row(widths != widths[0])
            row = int(np.searchsorted(np.cumsum(step_counts[column]), step, side="right"))
            raise EpisodeSchemaError(
                f"{source}: episode {row}: ragged {column!r}: steps have {widths[step]} values "
                f"where earlier ones have {widths[0]}"
            )
        if task is not None and widths.size and widths[0] != _expected_width(task, column):
            row = int(np.searchsorted(np.cumsum(step_counts[column]), 0, side="right"))
            raise EpisodeSchemaError(
                width_mismatch_message(source, column, int(widths[0]), task, config, row)
            )
    return present, empty


def validate_episodes(dataset: Any, task: Any = None, source: str = "dataset") -> list[str]:
    """`check_episodes` for datasets that must not hold empty episodes; returns the columns."""
    present, empty = check_episodes(dataset, task, source)
    if empty.any():
        raise EpisodeSchemaError(f"{source}: episode {_first_row(empty)} has no steps")
    return present


def _rewards(dataset: Any):
    """The rewards column as Arrow, through the dataset's row selection if it has one."""
    rewards = dataset.data.column(REWARD_COLUMN)
    indices = getattr(dataset, "_indices", None)
    if indices is not None:
        rewards = rewards.take(indices.column(0))
    return rewards


def episode_returns(dataset: Any) -> np.ndarray:
    """(N,) float64 return of each episode, summed on the Arrow table (nothing is decoded)."""
    import pyarrow.compute as pc

    rewards = _rewards(dataset)
    counts = np.asarray(pc.list_value_length(rewards), dtype=np.int64)
    flat = np.asarray(pc.list_flatten(rewards), dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.zeros(len(counts))
    nonempty = counts > 0
    out[nonempty] = np.add.reduceat(flat, starts[nonempty]) if flat.size else 0.0
    return out


def episode_lengths(dataset: Any) -> np.ndarray:
    """(N,) int64 steps of each episode, from the Arrow table."""
    import pyarrow.compute as pc

    return np.asarray(pc.list_value_length(_rewards(dataset)), dtype=np.int64)


def episode_ends(dataset: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(terminated, truncated), two (N,) bool arrays, when the dataset records episode ends.

    None when it does not (JAT's data). With only one of the two columns, the other is its
    negation (every recorded episode ended one way or the other).
    """
    names = dataset.column_names or []
    present = [c for c in END_COLUMNS if c in names]
    if not present:
        return None
    values = {c: np.asarray(dataset.with_format(None)[c], dtype=bool) for c in present}
    terminated = values.get(TERMINATED_COLUMN)
    truncated = values.get(TRUNCATED_COLUMN)
    if terminated is None:
        terminated = ~truncated
    if truncated is None:
        truncated = ~terminated
    return terminated, truncated


def complete_episodes(
    lengths: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, episode_limit: int
) -> np.ndarray:
    """(N,) bool: the episode reached an end of the task's: a terminal state, or its step limit.

    An episode truncated before `episode_limit` steps was cut short by whatever recorded it: its
    return is partial and its last step is no ending (an end-of-episode prompt taken from it
    would show an ending that never happened).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.asarray(terminated, bool) | (np.asarray(truncated, bool) & (lengths >= episode_limit))


def training_mask(
    returns: np.ndarray,
    task: Any,
    lengths: np.ndarray | None = None,
    ends: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, float | None]:
    """Gato's training filter, with episode ends where they are recorded.

    Keeps an episode whose return reaches `filter_threshold` of the task's scores (80% of the
    expert's; everything when the task has no scores) and, when `ends` (terminated, truncated)
    are known, that is complete (`complete_episodes`): a partial return says nothing about the
    policy that played it. Returns the (N,) mask and the threshold (None without scores).
    """
    from gato.tasks import scores as score_math

    returns = np.asarray(returns, dtype=np.float64)
    keep = np.ones(len(returns), dtype=bool)
    threshold = None
    if task.scores is not None:
        threshold = score_math.filter_threshold(task.scores.expert, task.scores.random)
        keep &= score_math.keep_mask(returns, task.scores.expert, task.scores.random)
    if ends is not None:
        if lengths is None:
            raise ValueError("training_mask: episode ends need the episode lengths")
        keep &= complete_episodes(lengths, *ends, task.episode_limit)
    return keep, threshold


def expert_score_of(
    returns: np.ndarray,
    lengths: np.ndarray | None = None,
    ends: tuple[np.ndarray, np.ndarray] | None = None,
    episode_limit: int | None = None,
) -> float:
    """Gato's expert score (best windowed mean return) over the complete episodes when ends are
    known (a partial return would understate the expert), else over all of them."""
    from gato.tasks import scores as score_math

    returns = np.asarray(returns, dtype=np.float64)
    if ends is not None and lengths is not None and episode_limit is not None:
        complete = complete_episodes(lengths, *ends, episode_limit)
        if complete.any():
            returns = returns[complete]
    return score_math.expert_score(returns)


def _drop_empty(dataset: Any, empty: np.ndarray, source: str):
    if not empty.any():
        return dataset
    warnings.warn(
        f"{source}: dropped {int(empty.sum())} empty episodes (no steps) of {len(empty)}",
        stacklevel=3,
    )
    return dataset.select(np.flatnonzero(~empty))


_SPLITS = ("train", "test", "validation")


def load_episodes(
    source: str | Path,
    task: Any = None,
    split: str = "train",
    streaming: bool = False,
    *,
    name: str | None = None,
):
    """Episodes from a local dataset folder, Parquet files or a hub id, checked, numpy-formatted.

    Args:
        source: a `save_to_disk` folder, a Parquet file / folder / glob, a local mirror of a
            multi-config hub dataset (`<root>/<config>/train/0000.parquet` or
            `<root>/<config>/train-00000-of-00002-<hash>.parquet`), or a hub dataset id
            ("jat-project/jat-dataset").
        task: a `TaskSpec` (or a task id): require its columns and vector widths; its
            `dataset_config` is the config read when `name` is not given.
        split: the split to read ("train" or JAT's held-out "test").
        streaming: return a `StreamingEpisodes` that reads shard by shard as it is iterated
            (nothing is downloaded whole), checking each episode as it comes.
        name: the configuration (a JAT task name such as "atari-pong").

    Returns:
        a `datasets.Dataset`, one row per episode, in numpy format: images as uint8
        (T, H, W, C), vectors (T, D), actions and rewards (T,), text a (T,) object array, and
        `terminated` / `truncated` where recorded. Empty episodes are dropped, counted in one
        warning. The tokenizer's `encode_jat_episode(row)` takes a row as it is.

    Raises:
        EpisodeSchemaError: the dataset is not a valid set of episodes (nothing is returned).
    """
    from gato.data.io import load_rows

    if isinstance(task, str) and task in _SPLITS and split == "train":
        task, split = None, task  # the older positional form load_episodes(source, split)
    if isinstance(task, str):
        from gato.tasks.registry import get_task

        task = get_task(task)
    if name is None and task is not None:
        name = task.dataset_config
    where = describe_source(source, name, split)
    try:
        dataset = load_rows(source, split, name=name, streaming=streaming)
    except ValueError as err:
        raise EpisodeSchemaError(str(err)) from None
    if streaming:
        from gato.data.streaming import StreamingEpisodes

        return StreamingEpisodes(dataset, task=task, source=where, config=name)
    if getattr(dataset, "_indices", None) is not None:
        dataset = dataset.flatten_indices()
    _, empty = check_episodes(dataset, task=task, source=where, config=name)
    return _drop_empty(dataset, empty, where).with_format("numpy")


def describe_source(source: str | Path, config: str | None, split: str) -> str:
    """How errors name a dataset: 'path [config atari-pong, split train]'."""
    parts = [f"config {config}"] if config else []
    parts.append(f"split {split}")
    return f"{source} [{', '.join(parts)}]"
