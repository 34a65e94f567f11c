"""The task registry: every control task the toolkit knows, declared in `data/tasks.toml`.

A task entry says how to make its environment, what its observations and actions look like in the
JAT column schema, which expert plays it, its expert and random scores, its episode limit and where
its episodes live. Entries inherit from their suite's defaults (`[suites.<name>]`), so an Atari
game or a DeepMind Control task is a few lines; adding a suite is a `[suites.*]` table plus an
adapter in `gato.tasks.envs`. Nothing here imports an environment library: the registry is read by
the tokenizer and the policy too, which need the specs without the simulators.

The root file may list more files, `include = ["tasks/atari.toml", ...]` (relative to itself),
each holding `[suites.*]` and `[tasks.*]` tables of its own; one file per suite keeps a registry
of hundreds of tasks readable. Ids and suite names are unique across all the files.

Example entry (the suite supplies the observation spec, limits and action kind)::

    [tasks.atari-pong]
    suite = "atari"
    env = { game = "Pong" }
    action = { num_values = 6 }
    expert = "pong-ram"
    scores = { expert = 21.0, random = -20.3, expert_episodes = 20, random_episodes = 100 }
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gato.files import ASSETS_DIR, atomic_write_text, gato_home
from gato.schema import ACTION_KINDS, OBSERVATION_COLUMNS, REWARD_COLUMN, ActionSpec

DEFAULT_REGISTRY_PATH = ASSETS_DIR / "data" / "tasks.toml"
"""The registry file shipped with the toolkit."""

_DTYPES = {
    "text_observations": ("str",),
    "image_observations": ("uint8",),
    "discrete_observations": ("int64",),
    "continuous_observations": ("float32",),
}
_RANKS = {
    "text_observations": (0,),
    "image_observations": (2, 3),
    "discrete_observations": (1,),
    "continuous_observations": (1,),
}
_RANK_HINT = {
    "text_observations": "one string per step: no shape",
    "image_observations": "[height, width] or [height, width, channels]",
    "discrete_observations": "[size]",
    "continuous_observations": "[size]",
}
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class UnknownTaskError(KeyError):
    """A task id the registry does not hold; the message lists the known ids."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


# ---------------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One observation column of a task.

    Attributes:
        shape: shape of one step's value: (D,) for a vector, (H, W, C) for an image, () for text.
        dtype: numpy dtype name the column holds per step (uint8 images, float32 vectors, ...).
    """

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Scores:
    """Reference returns of a task, as Gato defines them (see `gato.tasks.scores`).

    Attributes:
        expert: best windowed mean return of the expert's episodes (window min(1000, N / 10)).
        random: mean return of `random_episodes` uniformly random-policy episodes.
        expert_episodes: how many expert episodes `expert` was measured on.
        random_episodes: how many random episodes `random` was measured on.
    """

    expert: float
    random: float
    expert_episodes: int = 0
    random_episodes: int = 0


@dataclass(frozen=True)
class Reference:
    """Reference returns from the literature, for tasks we have no measured expert score for.

    Attributes:
        random: a uniformly random policy's mean return, as published.
        human: a human player's mean return, as published (Atari: the professional tester).
        source: where the numbers come from (paper, table).
    """

    random: float
    human: float
    source: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """One control task: environment, specs, expert, scores and data location.

    Pure data: `gato.tasks.envs.make_env(task)` builds its environment and
    `gato.tasks.experts.make_expert(task)` its expert.

    Attributes:
        id: unique id, `<suite>-<name>` by convention (`atari-pong`, `dmc-cartpole-swingup`).
        suite: which environment adapter runs it ("atari", "dmc", "gym"; see `gato.tasks.envs`).
        env: keyword arguments for the suite's adapter (game, domain and task, gymnasium id, ...).
        observation: JAT observation column -> its per-step spec; a task uses only some columns.
        action: the action spec: what the tokenizer encodes and the policy decodes.
        episode_limit: steps after which an episode is truncated (agent steps, after frame skip).
        expert: name of the expert policy in `gato.tasks.experts` (None: no expert yet).
        expert_params: keyword arguments for the expert.
        action_noise: noise on the expert's played actions when its data is collected (see
            `gato.tasks.experts.NoisyExpert`); 0: none. Scores are always measured noiseless.
        dart: like `action_noise`, but the expert's own clean action is recorded (DART: the
            correction in the states noise leads to); 0: none. Exclusive with `action_noise`.
        start_noise: when its data is collected, noise on every joint position after the
            task's own reset (wider start states; see `ControlEnv.reset`); 0: none.
        filter: whether collection keeps only the expert's episodes that reach 80% of its score
            (Gato's filter); False keeps every game (Pong's DART-noised games score 11.8 on
            average against the filter's 16.8, and a clone learns from all of them).
        scores: expert and random returns, None until measured (`python -m gato.data score`).
        dataset: where the task's episodes live: a local folder (relative paths are relative to
            the registry file's folder) or a hub id such as "jat-project/jat-dataset".
        dataset_config: the hub configuration of `dataset` (a task name for the JAT dataset),
            named exactly as the hub names it.
        dataset_env: the environment, with its version, that recorded the episodes of
            `dataset_config` (JAT recorded gymnasium v4 MuJoCo, Meta-World v2, ALE v5); a task
            whose own environment differs in observation or action widths cannot read them.
        description: one line for humans.
        reference: published random and human returns (Atari), None where there are none.
        source: the registry file that declares the task (where `write_scores` edits it).
    """

    id: str
    suite: str
    env: Mapping[str, Any]
    observation: Mapping[str, FieldSpec]
    action: ActionSpec
    episode_limit: int
    expert: str | None = None
    expert_params: Mapping[str, Any] = field(default_factory=dict)
    action_noise: float = 0.0
    dart: float = 0.0
    start_noise: float = 0.0
    filter: bool = True
    scores: Scores | None = None
    dataset: str = ""
    dataset_config: str | None = None
    dataset_env: str | None = None
    description: str = ""
    reference: Reference | None = None
    source: Path | None = None
    root: Path = ASSETS_DIR / "data"
    """Folder that relative dataset and checkpoint paths are resolved against (the root registry
    file's folder). For the built-in registry, paths under `cache/` (generated data) are
    resolved against `<home>/data` instead (`gato.files.gato_home`), so an installed package
    never writes into its own folder."""

    @property
    def observation_columns(self) -> tuple[str, ...]:
        """The JAT observation columns this task fills, in token order."""
        return tuple(c for c in OBSERVATION_COLUMNS if c in self.observation)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column of this task's episodes: observations, the action, rewards."""
        return (*self.observation_columns, self.action.column, REWARD_COLUMN)

    @property
    def dataset_path(self) -> Path | str:
        """The dataset as a local path when it is one, else the hub id."""
        path = Path(self.dataset)
        if path.is_absolute():
            return path
        local = self._local(path)
        if local.exists() or not _looks_like_hub_id(self.dataset):
            return local
        return self.dataset

    def resolve_path(self, value: str) -> Path:
        """A path of the registry (dataset, expert checkpoint): relative ones start at `root`."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self._local(path)

    def _local(self, path: Path) -> Path:
        """A relative path of the registry as a local path (generated data under the home)."""
        if path.parts[:1] == ("cache",) and self.root == ASSETS_DIR / "data":
            return gato_home() / "data" / path
        return self.root / path

    @property
    def has_offline_expert(self) -> bool:
        """Whether an expert runs here with nothing to download.

        A scripted expert always does; an expert that loads trained weights
        (`expert_params = { checkpoint = "..." }`, e.g. `expert = "impala"`) does when its
        checkpoint is on disk.
        """
        if self.expert is None:
            return False
        checkpoint = self.expert_params.get("checkpoint")
        return checkpoint is None or self.resolve_path(str(checkpoint)).exists()

    def has_data(self) -> bool:
        """Whether a complete dataset is on disk where this task's episodes are expected."""
        path = self.dataset_path
        return isinstance(path, Path) and (
            (path / "state.json").exists() or (path / "dataset_dict.json").exists()
        )


def _looks_like_hub_id(text: str) -> bool:
    return text.count("/") == 1 and not text.startswith((".", "/", "~"))


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of TOML tables: the task's keys win over its suite's defaults."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(f"{where}: shape must be a list of positive integers, got {value!r}")
    return tuple(value)


def is_noise_level(value: Any) -> bool:
    """Whether `value` is a collection noise level (action noise, DART, start-state noise): a
    finite number >= 0, not a boolean."""
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value < math.inf


def _noise_level(entry: Mapping[str, Any], key: str, where: str) -> float:
    """A collection noise setting of a task entry (0 when absent), checked by `is_noise_level`."""
    value = entry.get(key, 0.0)
    if not is_noise_level(value):
        raise ValueError(f"{where}: {key} must be a non-negative number, got {value!r}")
    return float(value)


def _parse_task(
    task_id: str, entry: Mapping[str, Any], root: Path, source: Path | None = None
) -> TaskSpec:
    where = f"task {task_id!r}"
    if not _ID_PATTERN.match(task_id):
        raise ValueError(f"{where}: ids are lowercase letters, digits, '-', '_' and '.'")
    known = {
        "suite", "env", "observation", "action", "episode_limit", "expert", "expert_params",
        "action_noise", "dart", "start_noise", "filter", "scores", "dataset", "dataset_config",
        "dataset_env", "description", "reference",
    }  # fmt: skip
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known keys: {sorted(known)}")
    for key in ("suite", "observation", "action", "episode_limit"):
        if key not in entry:
            raise ValueError(f"{where}: missing {key!r} (in the task or its suite's defaults)")

    observation = {}
    for column, spec in entry["observation"].items():
        if column not in OBSERVATION_COLUMNS:
            raise ValueError(f"{where}: unknown observation column {column!r}")
        dtype = spec.get("dtype", _DTYPES[column][0])
        if dtype not in _DTYPES[column]:
            raise ValueError(f"{where}: {column} must have dtype {_DTYPES[column]}, got {dtype}")
        shape = _shape(spec.get("shape", []), f"{where}/{column}")
        if len(shape) not in _RANKS[column]:
            raise ValueError(
                f"{where}: {column} needs a shape of rank {_RANKS[column]} "
                f"({_RANK_HINT[column]}), got {list(shape)}"
            )
        observation[column] = FieldSpec(shape, dtype)
    if not observation:
        raise ValueError(f"{where}: needs at least one observation column")

    action = dict(entry["action"])
    kind = action.get("kind")
    if kind not in ACTION_KINDS:
        raise ValueError(f"{where}: action.kind must be 'discrete' or 'continuous', got {kind!r}")
    shape = _shape(action.get("shape", []), f"{where}/action")
    if kind == "discrete":
        num_values = action.get("num_values")
        if not isinstance(num_values, int) or not 1 <= num_values <= 1024:
            raise ValueError(f"{where}: a discrete action needs num_values in [1, 1024]")
        action_entry = ActionSpec("discrete", shape, num_values)
    else:
        if not shape:
            raise ValueError(f"{where}: a continuous action needs a shape, e.g. [1]")
        # The environment's bounds, scalar or per element; absent: [-1, 1] already.
        try:
            action_entry = ActionSpec(
                "continuous", shape, low=action.get("low"), high=action.get("high")
            )
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    scores = None
    if entry.get("scores"):
        s = entry["scores"]
        scores = Scores(
            expert=float(s["expert"]),
            random=float(s["random"]),
            expert_episodes=int(s.get("expert_episodes", 0)),
            random_episodes=int(s.get("random_episodes", 0)),
        )
    reference = None
    r = entry.get("reference") or {}
    # A suite may give only the source; a task without numbers then has no reference.
    if "random" in r or "human" in r:
        missing = sorted({"random", "human"} - set(r))
        if missing:
            raise ValueError(f"{where}: reference needs {missing} (and a source)")
        reference = Reference(float(r["random"]), float(r["human"]), str(r.get("source", "")))
    limit = entry["episode_limit"]
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{where}: episode_limit must be a positive integer, got {limit!r}")
    noise = _noise_level(entry, "action_noise", where)
    config, recorded = entry.get("dataset_config"), entry.get("dataset_env")
    for key, value in (("dataset_config", config), ("dataset_env", recorded)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{where}: {key} must be a non-empty string, got {value!r}")
    if recorded is not None and config is None:
        raise ValueError(f"{where}: dataset_env says what recorded dataset_config; set both")
    keep_filter = entry.get("filter", True)
    if not isinstance(keep_filter, bool):
        raise ValueError(f"{where}: filter must be true or false, got {keep_filter!r}")
    dart = _noise_level(entry, "dart", where)
    if dart and noise:
        raise ValueError(f"{where}: action_noise and dart both set; dart records the expert's "
                         "action, action_noise the played one: pick one")  # fmt: skip
    return TaskSpec(
        id=task_id,
        suite=str(entry["suite"]),
        env=dict(entry.get("env", {})),
        observation=observation,
        action=action_entry,
        episode_limit=limit,
        expert=entry.get("expert"),
        expert_params=dict(entry.get("expert_params", {})),
        action_noise=noise,
        dart=dart,
        start_noise=_noise_level(entry, "start_noise", where),
        filter=keep_filter,
        scores=scores,
        dataset=str(entry.get("dataset", f"cache/episodes/{task_id}")),
        dataset_config=config,
        dataset_env=recorded,
        description=str(entry.get("description", "")),
        reference=reference,
        source=source,
        root=root,
    )


class Registry(Mapping[str, TaskSpec]):
    """Task id -> `TaskSpec`, in file order. Unknown ids raise `UnknownTaskError`.

    Attributes:
        path: the root registry file (None for a registry parsed from text).
        files: every file read, the root first, then its includes in order.
    """

    def __init__(
        self,
        tasks: Mapping[str, TaskSpec],
        path: Path | None = None,
        files: tuple[Path, ...] = (),
    ) -> None:
        self._tasks = dict(tasks)
        self.path = path
        self.files = files or ((path,) if path is not None else ())
        self._stamps = _stamps(self.files)

    def __getitem__(self, task_id: str) -> TaskSpec:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTaskError(unknown_task_message(task_id, list(self._tasks))) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def by_suite(self, suite: str) -> list[TaskSpec]:
        """The tasks of one suite, in file order."""
        return [t for t in self._tasks.values() if t.suite == suite]

    @property
    def suites(self) -> list[str]:
        """Suite names that have tasks, in order of first appearance."""
        return list(dict.fromkeys(t.suite for t in self._tasks.values()))

    def is_current(self) -> bool:
        """Whether no file of this registry changed on disk since it was read."""
        return _stamps(self.files) == self._stamps


def _stamps(files: tuple[Path, ...]) -> tuple[int, ...]:
    return tuple(f.stat().st_mtime_ns if f.exists() else -1 for f in files)


def unknown_task_message(task_id: str, known: list[str]) -> str:
    """'unknown task X; did you mean Y? known tasks: ...' (long lists are cut short)."""
    close = difflib.get_close_matches(task_id, known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(known[:40]) + (f", ... ({len(known)} in all)" if len(known) > 40 else "")
    return f"unknown task {task_id!r}{hint} known tasks: {shown}"


def _read_tables(
    text: str, where: str, root: Path, overrides: Mapping[Path, str]
) -> list[tuple[Path | None, dict[str, Any]]]:
    """(file, parsed TOML) of a registry text and of every file it includes, in order."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where}: not valid TOML: {err}") from None
    unknown = sorted(set(raw) - {"suites", "tasks", "include"})
    if unknown:
        raise ValueError(
            f"{where}: unknown top-level tables {unknown}; expected suites, tasks, include"
        )
    include = raw.pop("include", [])
    if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
        raise ValueError(f"{where}: include must be a list of file paths, got {include!r}")
    out: list[tuple[Path | None, dict[str, Any]]] = [(None, raw)]
    for name in include:
        file = (root / name).resolve()
        if file in overrides:
            sub = overrides[file]
        elif file.exists():
            sub = file.read_text()
        else:
            raise FileNotFoundError(f"{where}: included registry file {file} does not exist")
        tables = _read_tables(sub, str(file), file.parent, overrides)
        if any(f == file for f, _ in out) or any(f == file for f, _ in tables[1:]):
            raise ValueError(f"{where}: {file} is included twice")
        out.append((file, tables[0][1]))
        out.extend(tables[1:])
    return out


def parse_registry(
    text: str,
    root: Path = ASSETS_DIR / "data",
    path: Path | None = None,
    overrides: Mapping[Path, str] | None = None,
):
    """A `Registry` from TOML text (`root`: the folder relative paths start from).

    Files named by `include` are read relative to `root`; `overrides` maps a file to the text to
    use instead of its contents (how `write_scores` checks an edit before writing it).
    """
    where = str(path) if path is not None else "registry"
    tables = _read_tables(text, where, root, dict(overrides or {}))
    suites: dict[str, Any] = {}
    for file, raw in tables:
        for name, table in raw.get("suites", {}).items():
            if name in suites:
                raise ValueError(f"{file or where}: suite {name!r} is defined twice")
            suites[name] = table
    tasks: dict[str, TaskSpec] = {}
    for file, raw in tables:
        source = file or path
        for task_id, entry in raw.get("tasks", {}).items():
            if task_id in tasks:
                raise ValueError(
                    f"{source or where}: task {task_id!r} is already defined in "
                    f"{tasks[task_id].source or where}"
                )
            suite = entry.get("suite")
            if suite is None:
                raise ValueError(f"task {task_id!r}: missing 'suite'")
            if suite not in suites:
                raise ValueError(
                    f"task {task_id!r}: unknown suite {suite!r}; suites: {sorted(suites)}"
                )
            tasks[task_id] = _parse_task(task_id, _merge(suites[suite], entry), root, source)
    files = (path, *(f for f, _ in tables[1:])) if path is not None else ()
    return Registry(tasks, path, files)


_CACHE: dict[Path, Registry] = {}


def load_registry(path: str | Path | None = None) -> Registry:
    """Read a registry file (default `data/tasks.toml`) and its includes; re-read when one of
    them changes on disk."""
    path = Path(path) if path is not None else DEFAULT_REGISTRY_PATH
    path = path.resolve()
    if not path.exists():
        raise FileNotFoundError(f"no task registry at {path}")
    cached = _CACHE.get(path)
    if cached is None or not cached.is_current():
        cached = parse_registry(path.read_text(), root=path.parent, path=path)
        _CACHE[path] = cached
    return cached


def get_task(task_id: str, registry: Registry | str | Path | None = None) -> TaskSpec:
    """The spec of one task; an unknown id raises `UnknownTaskError` listing the known ones."""
    if not isinstance(registry, Registry):
        registry = load_registry(registry)
    return registry[task_id]


def list_tasks(registry: Registry | str | Path | None = None) -> list[TaskSpec]:
    """Every task of the registry, in file order."""
    if not isinstance(registry, Registry):
        registry = load_registry(registry)
    return list(registry.values())


# ---------------------------------------------------------------------------------------------
# Writing scores back
# ---------------------------------------------------------------------------------------------


def format_scores(scores: Scores) -> str:
    """The one-line TOML inline table `write_scores` puts in a task's entry."""
    return (
        f"scores = {{ expert = {scores.expert:.6g}, random = {scores.random:.6g}, "
        f"expert_episodes = {scores.expert_episodes}, random_episodes = {scores.random_episodes} }}"
    )


def write_scores(path: str | Path, task_id: str, scores: Scores) -> None:
    """Set one task's `scores = {...}` line in a registry, keeping everything else as is.

    `path` is the root registry file; the line goes into whichever of its files declares the
    task (the root or an include). The line is replaced where it exists, else added at the end
    of the task's table. The whole registry is re-parsed with the edit before anything is
    written, and the file is written through a temporary file and a rename, so a bad edit never
    lands.
    """
    path = Path(path).resolve()
    files = [path]
    try:
        files = list(load_registry(path).files)
    except (ValueError, FileNotFoundError):
        pass  # an unreadable registry: look in the root file only (and fail below)
    name = re.escape(task_id)
    header = re.compile(rf'^\s*\[\s*tasks\.("{name}"|{name})\s*\]\s*(#.*)?$')
    for file in files:
        lines = file.read_text().splitlines(keepends=True)
        start = next((i for i, line in enumerate(lines) if header.match(line)), None)
        if start is not None:
            break
    else:
        raise UnknownTaskError(f"{path}: no [tasks.{task_id}] table to write scores into")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    new_line = format_scores(scores) + "\n"
    for i in range(start + 1, end):
        if re.match(r"^\s*scores\s*=", lines[i]):
            lines[i] = new_line
            break
    else:
        insert = end
        # Before the blank and comment lines that separate this table from the next one.
        while insert > start + 1 and lines[insert - 1].strip()[:1] in ("", "#"):
            insert -= 1
        lines.insert(insert, new_line)
    text = "".join(lines)
    # Never write a registry that does not load.
    if file == path:
        parse_registry(text, root=path.parent, path=path)
    else:
        parse_registry(path.read_text(), root=path.parent, path=path, overrides={file: text})
    atomic_write_text(file, text)
