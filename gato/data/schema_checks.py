"""Checks of episode datasets in the JAT schema, shared by whole tables and streams.

The column features (`column_feature`), the error (`EpisodeSchemaError`) and the checks of
features, episode ends and widths that `gato.data.episodes` (whole Arrow tables) and
`gato.data.streaming` (one episode at a time) both make; errors name the source (path, config,
split), the episode, the column and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gato.schema import END_COLUMNS, EPISODE_COLUMNS, REWARD_COLUMN

_VECTOR_COLUMNS = ("discrete_observations", "continuous_observations", "continuous_actions")


class EpisodeSchemaError(ValueError):
    """A dataset that is not a valid set of episodes in the JAT schema."""


def column_feature(column: str):
    """The `datasets` feature of one JAT column (or of an episode-end flag: one bool)."""
    import datasets

    if column in END_COLUMNS:
        return datasets.Value("bool")
    value = {
        "text_observations": datasets.Value("string"),
        "image_observations": datasets.Image(),
        "discrete_observations": datasets.List(datasets.Value("int64")),
        "continuous_observations": datasets.List(datasets.Value("float32")),
        "discrete_actions": datasets.Value("int64"),
        "continuous_actions": datasets.List(datasets.Value("float32")),
        REWARD_COLUMN: datasets.Value("float32"),
    }
    if column not in value:
        raise ValueError(
            f"unknown episode column {column!r}; columns: {(*EPISODE_COLUMNS, *END_COLUMNS)}"
        )
    return datasets.List(value[column])


def _inner_value(feature: Any) -> Any:
    """List(X) -> X (also for the legacy Sequence feature)."""
    return getattr(feature, "feature", None)


def _check_types(features: Any, present: list[str], source: str = "dataset") -> None:
    import datasets

    for column in present:
        feature = features[column]
        inner = _inner_value(feature)
        if inner is None:
            raise EpisodeSchemaError(
                f"{source}: column {column!r} must be a sequence over steps, got {feature}; "
                f"the JAT schema has {column_feature(column)}"
            )
        if column == "image_observations":
            ok = isinstance(inner, datasets.Image)
        elif column == "text_observations":
            ok = isinstance(inner, datasets.Value) and inner.dtype in ("string", "large_string")
        else:
            leaf = _inner_value(inner) if column in _VECTOR_COLUMNS else inner
            kind = "int" if column.startswith("discrete") else "float"
            ok = isinstance(leaf, datasets.Value) and leaf.dtype.startswith(kind)
        if not ok:
            raise EpisodeSchemaError(
                f"{source}: column {column!r} has the wrong type {feature}; the JAT "
                f"schema has {column_feature(column)}"
            )


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_ends(features: Any, source: str) -> list[str]:
    """The episode-end columns present (`terminated`, `truncated`), each one bool per row."""
    import datasets

    present = [c for c in END_COLUMNS if c in features]
    for column in present:
        feature = features[column]
        if not (isinstance(feature, datasets.Value) and feature.dtype == "bool"):
            raise EpisodeSchemaError(
                f"{source}: column {column!r} has the wrong type {feature}; expected one "
                "Value('bool') per episode"
            )
    return present


def _expected_width(task: Any, column: str) -> int:
    spec = task.observation.get(column)
    expected = spec.shape if spec is not None else task.action.shape
    return int(np.prod(expected))


def width_mismatch_message(
    source: str, column: str, width: int, task: Any, config: str | None, episode: int | None = None
) -> str:
    """'<source>: [episode i: ]column c has W values per step but task t expects ...', with what
    recorded the config's data and which tasks read it when the registry knows."""
    spec = task.observation.get(column)
    expected = spec.shape if spec is not None else task.action.shape
    where = f"episode {episode}: " if episode is not None else ""
    message = (
        f"{source}: {where}column {column!r} has {width} values per step but task "
        f"{task.id!r} ({_env_name(task)}) expects shape {tuple(expected)}"
    )
    if config is not None:
        from gato.tasks.registry import list_tasks

        try:
            readers = [t for t in list_tasks() if t.dataset_config == config]
        except (OSError, ValueError):
            readers = []
        recorded = next((t.dataset_env for t in readers if t.dataset_env), None)
        if recorded:
            message += f"; config {config!r} was recorded with {recorded}"
        fitting = [t.id for t in readers if _expected_width(t, column) == width]
        if fitting:
            message += f"; read it as task {fitting[0]!r}"
    return message


def _env_name(task: Any) -> str:
    env = getattr(task, "env", {}) or {}
    return str(
        env.get("id") or env.get("level") or env.get("name") or env.get("game") or task.suite
    )
