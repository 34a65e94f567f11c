"""Minari datasets, both ways: read one as a registry task's episodes; export ours to Minari.

Minari (https://minari.farama.org) is the offline-RL dataset format of the gymnasium ecosystem;
the `minari` package itself reads and writes it (an optional extra: `pip install 'gato[minari]'`).

Reading (`read_minari`, `import_minari`): a dataset id of the local Minari root
(`MINARI_DATASETS_PATH`, default ~/.minari/datasets; nothing is downloaded) or a dataset folder.
Its spaces are checked against the task first (`check_action_space`, `check_observation_space`:
an error names both). Each episode becomes one row of the JAT schema: Minari's T + 1
observations lose the last one (our rows pair each observation with the action taken on it),
observations go through the task's conversion (`gato.tasks.envs.convert`: the same as the
environment adapters', so a Minari BabyAI dict or a gymnasium array gives the tokens our own
collection gives), actions are kept as the environment's own values (the dataset records
`action_scale = "raw"`; the tokenizer maps them into [-1, 1] by the task's bounds), and
Minari's per-step terminations and truncations become the per-episode `terminated` and
`truncated` columns. Empty episodes are dropped, counted in one warning.

Exporting (`export_minari`): any of our datasets of a task becomes a Minari dataset with the
task's spaces: continuous actions on the environment's scale (unit-scale data is mapped to the
bounds), the observation of each step, and as the final (T + 1-th) observation the last one
repeated, since our episodes do not keep the observation after the last action (offline-RL
methods mask it out on a terminal step; on a truncated one it is an approximation, stated in
the dataset's description). Episode ends come from the `terminated` / `truncated` columns where
the dataset has them, else from the length: an episode that reached the task's `episode_limit`
was truncated, a shorter one terminated. The export is written beside the root and moved into
place, so an interrupted export leaves the previous complete dataset.

Commands: `python -m gato.data.minari import SOURCE --task ID --output DIR` and
`python -m gato.data.minari export SOURCE --task ID --dataset_id NAME`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gato.cli import Command, parse_command
from gato.data.action_scale import dataset_action_scale, with_action_scale
from gato.data.episodes import EpisodeSchemaError
from gato.tasks.envs.convert import (
    ObservationConverter,
    check_action_space,
    check_observation_space,
)

__all__ = ["END_COLUMNS", "export_minari", "import_minari", "open_minari", "read_minari"]

END_COLUMNS = ("terminated", "truncated")
"""The per-episode flags of how an episode ended (one bool each; the episode-end columns of the
schema)."""
_IMPORTED_BY = "python -m gato.data.minari import"
_FINAL_OBSERVATION_NOTE = (
    "Exported by gato: the final observation of each episode repeats the last recorded one "
    "(gato's episodes keep no observation after the last action)."
)


def _task(task: Any):
    if isinstance(task, str):
        from gato.tasks.registry import get_task

        return get_task(task)
    return task


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def open_minari(source: Any):
    """A `minari.MinariDataset` from an id of the local Minari root, a dataset folder (or its
    `data/` folder), or a `MinariDataset` as it is. Never downloads."""
    import minari

    if isinstance(source, minari.MinariDataset):
        return source
    path = Path(str(source)).expanduser()
    if path.exists():
        data = path / "data" if (path / "data").is_dir() else path
        if not (data / "metadata.json").exists():
            raise FileNotFoundError(f"{path} is not a Minari dataset: no data/metadata.json")
        return minari.MinariDataset(str(data))
    try:
        return minari.load_dataset(str(source), download=False)
    except FileNotFoundError:
        from minari.storage.datasets_root_dir import get_dataset_path

        known = sorted(minari.list_local_datasets())
        raise FileNotFoundError(
            f"no Minari dataset {str(source)!r}: not a folder, and not in the local Minari root "
            f"{get_dataset_path()} (MINARI_DATASETS_PATH); local datasets: {known or 'none'}"
        ) from None


def _features(task):
    import datasets

    from gato.data.episodes import episode_features

    features = dict(episode_features(task.columns))
    features.update({c: datasets.Value("bool") for c in END_COLUMNS})
    return datasets.Features(features)


def _step(observations: Any, t: int) -> Any:
    """Step `t` of time-major observations (arrays, dicts of them, lists of strings)."""
    if isinstance(observations, Mapping):
        return {k: _step(v, t) for k, v in observations.items()}
    if isinstance(observations, tuple):
        return tuple(_step(v, t) for v in observations)
    return observations[t]


def _episode_columns(episode: Any, task, converter: ObservationConverter, start: int) -> dict:
    """One Minari episode -> {JAT column: T steps} plus the two end flags."""
    from gato.data.episodes import encode_png

    steps = len(episode.rewards)
    where = f"Minari episode {episode.id}"
    columns: dict[str, Any] = {}
    observations = episode.observations
    (only,) = task.observation_columns if len(task.observation_columns) == 1 else (None,)
    if isinstance(observations, np.ndarray) and only in (
        "continuous_observations",
        "discrete_observations",
    ):
        # A vector space: the whole episode at once (what the converter does step by step).
        values = observations[:steps]
        if only == "discrete_observations" and values.ndim == 1:
            values = values - start
        dtype = np.int64 if only == "discrete_observations" else np.float32
        values = values.reshape(steps, -1).astype(dtype)
        width = int(np.prod(task.observation[only].shape))
        if values.shape[1] != width:
            raise EpisodeSchemaError(
                f"{where}: observations have {values.shape[1]} values per step; task "
                f"{task.id!r} expects {only} of shape {task.observation[only].shape}"
            )
        if dtype == np.float32 and not np.isfinite(values).all():
            raise EpisodeSchemaError(f"{where}: observations hold non-finite values")
        columns[only] = values
    else:
        converter.reset()
        converted = [converter(_step(observations, t)) for t in range(steps)]
        for column in task.observation_columns:
            values = [step[column] for step in converted]
            if column == "image_observations":
                values = [encode_png(v) for v in values]
            columns[column] = values
    spec = task.action
    actions = np.asarray(episode.actions)[:steps]
    if spec.kind == "discrete":
        actions = actions.astype(np.int64).reshape(steps)
        bad = actions[(actions < 0) | (actions >= spec.num_values)]
        if bad.size:
            raise EpisodeSchemaError(
                f"{where}: action {bad[0]} outside the task's [0, {spec.num_values})"
            )
    else:
        actions = actions.astype(np.float32).reshape(steps, spec.num_tokens)
        if not np.isfinite(actions).all():
            raise EpisodeSchemaError(f"{where}: actions hold non-finite values")
    columns[spec.column] = actions
    columns["rewards"] = np.asarray(episode.rewards, dtype=np.float32)
    terminated = bool(np.any(episode.terminations))
    columns["terminated"] = terminated
    columns["truncated"] = bool(np.any(episode.truncations)) and not terminated
    return columns


def _record_batches(source: Any, task) -> Iterator[Any]:
    """The Minari dataset's episodes as one-row pyarrow batches of `_features(task)`."""
    import pyarrow as pa

    from gato.data.episodes import episode_record_batch

    dataset = open_minari(source)
    check_action_space(dataset.action_space, task)
    start = check_observation_space(dataset.observation_space, task)
    converter = ObservationConverter(task, start)
    features = _features(task)
    step_features = _features_without_ends(features)
    empty = 0
    for episode in dataset.iterate_episodes():
        if len(episode.rewards) == 0:
            empty += 1
            continue
        columns = _episode_columns(episode, task, converter, start)
        ends = [pa.array([columns.pop(c)], pa.bool_()) for c in END_COLUMNS]
        batch = episode_record_batch(columns, step_features)
        yield pa.RecordBatch.from_arrays([*batch.columns, *ends], schema=features.arrow_schema)
    if empty:
        warnings.warn(
            f"Minari dataset {dataset.id!r}: {empty} empty episodes dropped", stacklevel=3
        )


def _features_without_ends(features):
    import datasets

    return datasets.Features({k: v for k, v in features.items() if k not in END_COLUMNS})


def _metadata(source: Any, task) -> dict[str, Any]:
    return {
        "task": task.id,
        "minari_id": open_minari(source).id,
        "created_by": _IMPORTED_BY,
    }


def read_minari(source: Any, task: Any, fingerprint: str | None = None):
    """A Minari dataset (id, folder or `MinariDataset`) as a `datasets.Dataset` of `task`'s
    episodes in the JAT schema plus `terminated` / `truncated` (see the module docstring),
    checked, actions recorded as raw-scale, in numpy format. `fingerprint` keys the table for
    caches (default: a random one, as `datasets` gives a table made in memory)."""
    import datasets
    import pyarrow as pa

    from gato.data.episodes import validate_episodes

    task = _task(task)
    batches = list(_record_batches(source, task))
    features = _features(task)
    if not batches:
        raise EpisodeSchemaError(f"Minari dataset {source!r} has no non-empty episodes")
    table = pa.Table.from_batches(batches, schema=features.arrow_schema)
    info = datasets.DatasetInfo(description=json.dumps(_metadata(source, task)), features=features)
    table_dataset = datasets.Dataset(table, info=info, fingerprint=fingerprint)
    dataset = with_action_scale(table_dataset, "raw")
    validate_episodes(dataset, task=task, source=f"Minari dataset {source}")
    return dataset.with_format("numpy")


def import_minari(source: Any, task: Any, output: str | Path) -> Path:
    """`read_minari` written to `output` as a dataset folder (`load_episodes` reads it). The
    episodes stream through a file beside `output`; an interrupted import leaves the previous
    dataset there."""
    import datasets
    import pyarrow as pa

    from gato.data.episodes import validate_episodes
    from gato.data.io import save_dataset

    task = _task(task)
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.tmp-minari-{uuid.uuid4().hex[:8]}")
    features = _features(task)
    try:
        staging.mkdir()
        stream = staging / "episodes.arrow"
        count = 0
        with pa.OSFile(str(stream), "wb") as sink:
            with pa.ipc.new_stream(sink, features.arrow_schema) as writer:
                for batch in _record_batches(source, task):
                    writer.write_batch(batch)
                    count += 1
        if not count:
            raise EpisodeSchemaError(f"Minari dataset {source!r} has no non-empty episodes")
        dataset = datasets.Dataset.from_file(str(stream))
        dataset.info.description = json.dumps(_metadata(source, task))
        with_action_scale(dataset, "raw")
        validate_episodes(dataset, task=task, source=f"Minari dataset {source}")
        save_dataset(dataset, output)
        del dataset  # it maps the staging file, removed below
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


# ---------------------------------------------------------------------------------------------
# Exporting
# ---------------------------------------------------------------------------------------------


def _spaces(task):
    """(observation space, action space) of a task's episodes, on the environment's scale."""
    import gymnasium as gym

    if "text_observations" in task.observation:
        raise ValueError(
            f"task {task.id!r}: exporting text observations to Minari is not supported"
        )
    spaces = {}
    for column in task.observation_columns:
        spec = task.observation[column]
        if column == "continuous_observations":
            spaces[column] = gym.spaces.Box(-np.inf, np.inf, spec.shape, np.float32)
        elif column == "discrete_observations":
            spaces[column] = gym.spaces.Box(0, 1023, spec.shape, np.int64)
        else:
            spaces[column] = gym.spaces.Box(0, 255, spec.shape, np.uint8)
    observation = next(iter(spaces.values())) if len(spaces) == 1 else gym.spaces.Dict(spaces)
    action = task.action
    if action.kind == "discrete":
        return observation, gym.spaces.Discrete(action.num_values)
    low, high = action.bounds()
    return observation, gym.spaces.Box(low.astype(np.float32), high.astype(np.float32))


def _episode_ends(row: Mapping[str, Any], steps: int, task) -> tuple[bool, bool]:
    if all(c in row and row[c] is not None for c in END_COLUMNS):
        return bool(row["terminated"]), bool(row["truncated"])
    truncated = steps >= task.episode_limit
    return not truncated, truncated


def _buffers(dataset: Any, task) -> Iterator[Any]:
    from minari.data_collector import EpisodeBuffer

    scale = dataset_action_scale(dataset)
    spec = task.action
    columns = task.observation_columns
    for index in range(len(dataset)):
        row = dataset[index]
        steps = len(row["rewards"])
        observations = {}
        for column in columns:
            values = np.asarray(row[column])
            observations[column] = np.concatenate([values, values[-1:]])  # final: repeated
        observation = observations[columns[0]] if len(columns) == 1 else observations
        actions = np.asarray(row[spec.column])
        if spec.kind == "continuous":
            actions = actions.reshape(steps, *spec.shape)
            if scale == "unit":
                actions = spec.from_unit(actions)
            actions = actions.astype(np.float32)
        else:
            actions = actions.astype(np.int64).reshape(steps)
        terminated, truncated = _episode_ends(row, steps, task)
        terminations = np.zeros(steps, bool)
        truncations = np.zeros(steps, bool)
        terminations[-1], truncations[-1] = terminated, truncated
        yield EpisodeBuffer(
            id=index,
            observations=observation,
            actions=actions,
            rewards=np.asarray(row["rewards"], dtype=np.float64),
            terminations=terminations,
            truncations=truncations,
        )


def export_minari(
    source: Any,
    task: Any,
    dataset_id: str,
    *,
    root: str | Path | None = None,
    overwrite: bool = False,
    data_format: str = "arrow",
    env_id: str | None = None,
    author: str | None = None,
):
    """Write a dataset of `task` (a path `load_episodes` reads, or a `datasets.Dataset`) as the
    Minari dataset `dataset_id` in `root` (default the Minari root); returns it, opened.

    `env_id`: the gymnasium id recorded as the dataset's environment (default the task's, for
    gymnasium tasks), so `MinariDataset.recover_environment()` works. An existing dataset of that
    id is replaced only with `overwrite`.
    """
    import minari
    from minari.storage.datasets_root_dir import get_dataset_path

    from gato.data.episodes import load_episodes

    task = _task(task)
    dataset = source if hasattr(source, "column_names") else load_episodes(source, task=task)
    dataset = dataset.with_format("numpy")
    if len(dataset) == 0:
        raise ValueError(f"{source}: no episodes to export")
    root = Path(root).expanduser() if root is not None else get_dataset_path()
    target = root / dataset_id
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"Minari dataset {dataset_id!r} exists at {target}; pass overwrite=True to replace it"
        )
    observation_space, action_space = _spaces(task)
    if env_id is None and task.suite == "gym":
        env_id = task.env.get("id")
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".gato-export-{uuid.uuid4().hex[:8]}"
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(staging)  # minari writes under its root
    try:
        with warnings.catch_warnings():
            # minari's advice on metadata we do not have (code link, author e-mail, eval env)
            warnings.filterwarnings("ignore", message=r".*is set to None", category=UserWarning)
            minari.create_dataset_from_buffers(
                dataset_id,
                list(_buffers(dataset, task)),
                env=env_id,
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=f"gato expert data of {task.id}",
                author=author,
                description=_FINAL_OBSERVATION_NOTE,
                data_format=data_format,
            )
        _swap_into(staging, root, dataset_id)
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
        shutil.rmtree(staging, ignore_errors=True)
    return minari.MinariDataset(str(target / "data"))


def _swap_into(staging: Path, root: Path, dataset_id: str) -> None:
    """Move the finished dataset from `staging` into `root` (the old copy moved aside first
    and deleted after), with the namespace metadata files minari wrote that `root` lacks."""
    parts = Path(dataset_id).parts
    for depth in range(1, len(parts)):
        note = staging.joinpath(*parts[:depth], "namespace_metadata.json")
        if note.exists() and not root.joinpath(*parts[:depth], note.name).exists():
            root.joinpath(*parts[:depth]).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(note, root.joinpath(*parts[:depth], note.name))
    target = root / dataset_id
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(staging / dataset_id, target)
    except BaseException:
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


@dataclass
class Import:
    """Read a Minari dataset as a registry task's episodes and write them as a dataset folder."""

    source: str = field(metadata={"positional": True})
    """A Minari dataset id of the local root (MINARI_DATASETS_PATH), or a dataset folder."""
    task: str
    """Registry task id the episodes belong to."""
    output: str
    """Dataset folder to write (replaced atomically)."""


@dataclass
class Export:
    """Write a dataset of a registry task as a Minari dataset."""

    source: str = field(metadata={"positional": True})
    """A dataset folder of the task's episodes (or Parquet files, or a hub id)."""
    task: str
    """Registry task id of the episodes."""
    dataset_id: str
    """Minari id to write, e.g. gato/pendulum/expert-v0."""
    root: str | None = None
    """Minari root to write into (default MINARI_DATASETS_PATH or ~/.minari/datasets)."""
    overwrite: bool = False
    """Replace an existing dataset of that id."""


COMMANDS: dict[str, Command] = {
    "import": Command("read a Minari dataset as a task's episodes", (Import,)),
    "export": Command("write a task's episodes as a Minari dataset", (Export,)),
}


def main(argv: list[str] | None = None) -> int:
    command, (args,) = parse_command(
        COMMANDS, argv, prog="python -m gato.data.minari", description=__doc__.split("\n")[0]
    )
    try:
        if command == "import":
            path = import_minari(args.source, args.task, args.output)
            print(f"wrote {path}")
        else:
            dataset = export_minari(
                args.source, args.task, args.dataset_id, root=args.root, overwrite=args.overwrite
            )
            print(f"wrote Minari dataset {dataset.id}: {dataset.total_episodes} episodes")
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
