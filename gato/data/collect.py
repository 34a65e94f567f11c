"""Roll policies out in real environments: record expert episodes, measure scores.

`collect` plays a task's expert for N episodes (episode i reset with seed `seed + i`, so a
collection is reproducible whatever the number of workers), streams each episode as one Arrow
row to a temporary file beside the destination, then writes the dataset through
`gato.data.io.save_dataset` (a sibling folder renamed into place). A killed or failed collection
therefore leaves the previous dataset, or nothing, where a complete one is expected; the
temporary folder is removed on failure (and by `gato.data.io.recover_dataset` after a kill).

Episodes below 80% of the registry's expert score are dropped, as in Gato (`gato.tasks.scores`).

`measure_scores` plays the expert and the random policy without recording and returns the
task's `Scores` (expert: best windowed mean; random: mean).

Parallelism: episodes are independent, so `workers > 1` spreads them over processes, each
holding one environment (vectorising inside a process does not pay for per-environment scripted
experts, and the Atari experts read each console's RAM).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gato.data.episodes import expert_score_of, training_mask
from gato.schema import END_COLUMNS, TERMINATED_COLUMN, TRUNCATED_COLUMN
from gato.tasks import scores as score_math
from gato.tasks.envs import make_env
from gato.tasks.registry import Registry, Scores, TaskSpec, load_registry

CREATED_BY = "python -m gato.data collect"
"""What a collection's info names as its maker."""


class NothingKeptError(RuntimeError):
    """No played episode reached the filter threshold; nothing was written."""


@dataclass
class CollectConfig:
    """What `collect` does."""

    task: str
    """Task id in the registry."""
    episodes: int
    """Episodes to play (before filtering)."""
    output: str | None = None
    """Destination folder; default the task's `dataset` location (data/cache/episodes/<id>)."""
    seed: int = 0
    """Episode i is reset with seed `seed + i` (environment and policy)."""
    policy: str | None = None
    """Expert name; default the task's expert ("random" records the random policy)."""
    workers: int = 1
    """Processes playing episodes in parallel."""
    filter: bool = True
    """Drop episodes below 80% of the registry's expert score (Gato); needs registry scores."""
    progress: bool = True
    """Show a progress bar."""
    registry: str | None = None
    """Registry file; default data/tasks.toml."""
    action_noise: float | None = None
    """Noise on the played actions (`NoisyExpert`): a standard deviation for continuous
    actions, a probability of a random action for discrete ones; None: the task's
    `action_noise` from the registry (0 unless set)."""
    dart: float | None = None
    """DART (Laskey et al. 2017): play the expert with this noise (as `action_noise`) but record
    the expert's own clean action in every state the noise led to, the correction a behaviour
    clone must learn; None: the task's `dart` from the registry (0 unless set). Exclusive with
    `action_noise`."""
    start_noise: float | None = None
    """Wider start states: Gaussian noise of this standard deviation on every joint position
    after the task's own reset (`ControlEnv.reset`; dm-control tasks), so the data shows the
    expert coming back from states its episodes would not reach; None: the task's
    `start_noise` from the registry (0 unless set)."""
    learner: str | None = None
    """DAgger (Ross et al. 2011): a trained learner (a file of `save_learner`, e.g. from
    `benchmarks/control_learning.py --save-learners`) plays, and the expert's action in every
    state it reaches is recorded: the corrections of the clone's own errors. Exclusive with
    `action_noise` and `dart`; pass `filter=False` (the learner's returns are not the expert's)."""
    expert_mix: float = 0.0
    """With `learner`: the probability that a step plays the expert's action instead (DAgger's
    beta; 0: the learner plays every step)."""
    atari_protocol: str | None = None
    """Atari tasks: play under this protocol (`gato.tasks.envs.atari.ATARI_PROTOCOLS`; "sticky"
    is Machado et al.'s sticky actions, under which no two Pong games are alike); None: the
    registry's env table as it is. The dataset's info records the env played (`env`)."""
    atari_options: list[str] = field(default_factory=list)
    """Changes to the protocol, "key=value" (`sticky_actions=0.1`, `noop_max=0`); on their own,
    changes to the "data" protocol."""
    expert_params: list[str] = field(default_factory=list)
    """Parameters of the policy played, "key=value" (values as TOML: `horizon=6`), over the
    registry's `expert_params` when it is the task's expert; recorded in the dataset's info."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be positive, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be positive, got {self.workers}")
        if self.action_noise is not None and self.action_noise < 0:
            raise ValueError(f"action_noise must be non-negative, got {self.action_noise}")
        if self.dart is not None and self.dart < 0:
            raise ValueError(f"dart must be non-negative, got {self.dart}")
        if self.start_noise is not None and not 0 <= self.start_noise < float("inf"):
            raise ValueError(f"start_noise must be finite and non-negative, got {self.start_noise}")
        if self.dart and self.action_noise:
            raise ValueError(
                f"action_noise ({self.action_noise}) and dart ({self.dart}) both set: dart is "
                "noise with the expert's action recorded, action_noise with the played one"
            )
        if not 0.0 <= self.expert_mix <= 1.0:
            raise ValueError(
                f"expert_mix must lie in [0, 1] (a probability), got {self.expert_mix}"
            )
        if self.expert_mix and self.learner is None:
            raise ValueError(
                "expert_mix is the share of expert steps among a learner's: pass a learner"
            )
        if self.learner is not None and (self.dart or self.action_noise):
            raise ValueError(
                f"learner and {'dart' if self.dart else 'action_noise'} both set: the learner's "
                "errors are the exploration; pick one"
            )
        if self.learner is not None and not Path(self.learner).is_file():
            raise FileNotFoundError(f"learner {self.learner}: no such file")
        # A bad protocol or parameter fails before anything is played.
        if self.atari_protocol is not None or self.atari_options:
            from gato.tasks.envs.atari import atari_protocol

            atari_protocol(self.atari_protocol or "data", self.atari_options)
        parse_params(self.expert_params)
        score_math.check_not_evaluation_seeds(self.seed, self.episodes)


class SettingsError(ValueError):
    """A collection's or a score's setting that cannot be played (`played_as`): the command
    line's to report, not a failure of the run."""


def parse_params(texts: Sequence[str]) -> dict[str, Any]:
    """Parameters from "key=value" texts, each value read as TOML (a number, a boolean, an
    array, a quoted string) or, where it is not TOML, kept as the text."""
    params: dict[str, Any] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expert parameter {text!r}: expected key=value")
        try:
            params[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = value
    return params


def with_settings(
    task: TaskSpec, env: Mapping[str, Any], policy: str, expert_params: Mapping[str, Any]
) -> TaskSpec:
    """`task` as a collection plays it: `env` entries over its adapter arguments, `policy` as
    its expert, and `expert_params` over the registry's parameters when `policy` is the
    registry's expert (over none when it is another)."""
    base = task.expert_params if policy == task.expert else {}
    return dataclasses.replace(
        task, env={**task.env, **env}, expert=policy, expert_params={**base, **expert_params}
    )


def played_as(
    task: TaskSpec,
    policy: str | None = None,
    atari_protocol: str | None = None,
    atari_options: Sequence[str] = (),
    expert_params: Sequence[str] = (),
) -> TaskSpec:
    """`task` with the settings of the command line (`with_settings`): `policy` (default the
    task's expert), an Atari protocol and its options (`gato.tasks.envs.atari.protocol_env`;
    refused for another suite) and "key=value" expert parameters (`parse_params`).

    The policy is built once here, so a bad setting (an unknown protocol, a parameter the policy
    does not take or of the wrong type) fails before any environment starts, as a
    `SettingsError` naming it.
    """
    from gato.tasks.envs.atari import protocol_env
    from gato.tasks.experts import make_expert

    try:
        env = protocol_env(task, atari_protocol, atari_options)
        policy = policy or task.expert
        if policy is None:
            raise ValueError(f"task {task.id!r} has no expert; pass a policy")
        played = with_settings(task, env, policy, parse_params(expert_params))
        make_expert(played, seed=0, name=policy)
    except ValueError as err:
        raise SettingsError(str(err)) from None
    return played


def noise_setting(
    task: TaskSpec, action_noise: float | None, dart: float | None
) -> tuple[float, str]:
    """(noise, what is recorded) of a collection: the given options over the registry's."""
    noise = task.action_noise if action_noise is None else action_noise
    dart = task.dart if dart is None else dart
    if dart and noise:
        raise ValueError(
            f"task {task.id!r}: action_noise {noise} and dart {dart} both set; pick one "
            "(dart records the expert's action, action_noise the played one)"
        )
    return (float(dart), "expert") if dart else (float(noise), "played")


@dataclass
class EpisodeResult:
    """One played episode: its seed, return, length, and (when recorded) its Arrow row."""

    seed: int
    episode_return: float
    length: int
    batch: Any = None
    terminated: bool = False
    """The episode reached a terminal state (else the environment or the step limit cut it)."""


@dataclass
class CollectResult:
    """What a collection produced."""

    path: Path
    """The dataset folder."""
    returns: list[float]
    """Return of every played episode, in seed order."""
    kept: list[bool]
    """Whether each episode passed the filter (and is in the dataset)."""
    threshold: float | None
    """The filter's minimum return, None when not filtering."""
    steps: int
    """Environment steps played."""
    seconds: float
    """Wall time of the rollouts and the write."""
    metadata: dict = field(default_factory=dict)
    """What was stored in the dataset's info."""

    @property
    def num_kept(self) -> int:
        return int(sum(self.kept))

    @property
    def steps_per_second(self) -> float:
        return self.steps / max(self.seconds, 1e-9)


# ---------------------------------------------------------------------------------------------
# One episode
# ---------------------------------------------------------------------------------------------


def _recorder(column: str) -> Callable[[Any], Any]:
    """How one step's observation value is kept in memory."""
    if column == "image_observations":
        from gato.data.episodes import encode_png

        return encode_png  # encode now: a PNG is ~30x smaller than the frame
    return lambda value: value


def play_episode(
    env: Any,
    policy: Any,
    seed: int,
    task: TaskSpec,
    record: bool = True,
    features: Any = None,
    start_noise: float = 0.0,
) -> EpisodeResult:
    """Play one episode from `env.reset(seed)`; with `record`, build its Arrow row.

    Step t records the observation, the action (the one played, or for a policy with
    `act_and_label` the label it gives: the expert's own action under DART) and the reward that
    followed; only the task's observation columns are recorded (an expert may see more, e.g.
    state behind pixels). `start_noise`: see `ControlEnv.reset`.
    """
    from gato.data.episodes import episode_record_batch

    columns = task.observation_columns if record else ()
    recorders = [(c, _recorder(c), []) for c in columns]
    actions: list[Any] = []
    rewards: list[float] = []
    observation = env.reset(seed=seed, start_noise=start_noise)
    policy.reset(seed)
    act = getattr(policy, "act_and_label", None) or (lambda o, e: (policy.act(o, e),) * 2)
    while True:
        action, label = act(observation, env)
        for column, keep, values in recorders:
            values.append(keep(observation[column]))
        step = env.step(action)
        if record:
            actions.append(label)
        rewards.append(step.reward)
        observation = step.observation
        if step.terminated or step.truncated:
            break
    terminated = bool(step.terminated)  # both flags set: the terminal state is what happened
    result = EpisodeResult(
        seed, float(np.sum(rewards, dtype=np.float64)), len(rewards), terminated=terminated
    )
    if record:
        data = {column: values for column, _, values in recorders}
        data[task.action.column] = actions
        data["rewards"] = rewards
        data[TERMINATED_COLUMN] = terminated
        data[TRUNCATED_COLUMN] = not terminated
        result.batch = episode_record_batch(data, features)
    return result


# ---------------------------------------------------------------------------------------------
# Many episodes, in one process or several
# ---------------------------------------------------------------------------------------------

_WORKER_CACHE: dict[tuple, tuple[Any, Any, TaskSpec]] = {}


def _worker_play(args: tuple) -> EpisodeResult:
    """Process-pool job: one episode, with the environment kept between jobs."""
    (registry_path, task_id, policy_name, seed, record, noise, recorded, start_noise, learner,
     expert_mix, settings) = args  # fmt: skip
    key = (registry_path, task_id, policy_name, noise, recorded, learner, expert_mix, settings)
    if key not in _WORKER_CACHE:
        from gato.tasks.experts import make_expert

        env, expert, params = json.loads(settings)
        task = with_settings(load_registry(registry_path)[task_id], env, expert, params)
        expert = make_expert(task, seed, policy_name, noise, recorded, learner, expert_mix)
        _WORKER_CACHE[key] = (make_env(task), expert, task)
    env, policy, task = _WORKER_CACHE[key]
    features = _features(task) if record else None
    return play_episode(env, policy, seed, task, record, features, start_noise)


def _features(task: TaskSpec):
    from gato.data.episodes import episode_features

    return episode_features((*task.columns, *END_COLUMNS))


def play_episodes(
    task: TaskSpec,
    seeds: Sequence[int],
    policy: str | None = None,
    *,
    record: bool = False,
    workers: int = 1,
    registry_path: str | Path | None = None,
    progress: bool = True,
    description: str = "",
    action_noise: float = 0.0,
    recorded: str = "played",
    start_noise: float = 0.0,
    learner: str | None = None,
    expert_mix: float = 0.0,
) -> Iterator[EpisodeResult]:
    """Play one episode per seed with `policy` (default the task's expert; `action_noise` and
    `recorded`, "played" or "expert" (DART): see `NoisyExpert`; `start_noise`: see
    `ControlEnv.reset`; `learner`, `expert_mix`: see `LearnerLedExpert`), yielding in order."""
    from tqdm.auto import tqdm

    policy = policy or task.expert
    bar = tqdm(total=len(seeds), unit="ep", desc=description or task.id, disable=not progress)
    steps, start = 0, time.perf_counter()
    try:
        results = _results(
            task, seeds, policy, record, workers, registry_path,
            action_noise=action_noise, recorded=recorded, start_noise=start_noise,
            learner=learner, expert_mix=expert_mix,
        )  # fmt: skip
        for result in results:
            steps += result.length
            bar.update(1)
            bar.set_postfix(
                ret=f"{result.episode_return:.1f}",
                steps_s=f"{steps / (time.perf_counter() - start):.0f}",
                refresh=False,
            )
            yield result
    finally:
        bar.close()


def _results(
    task, seeds, policy, record, workers, registry_path, *, action_noise, recorded, start_noise,
    learner, expert_mix,
) -> Iterator[EpisodeResult]:  # fmt: skip
    if workers == 1:
        from gato.tasks.experts import make_expert

        env = make_env(task)
        expert = make_expert(
            task, seeds[0] if seeds else 0, policy, action_noise, recorded, learner, expert_mix
        )
        features = _features(task) if record else None
        try:
            for seed in seeds:
                yield play_episode(env, expert, seed, task, record, features, start_noise)
        finally:
            env.close()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a forked child would share the parent's simulator and GL state.
    context = multiprocessing.get_context("spawn")
    path = str(Path(registry_path).resolve()) if registry_path else None
    learner = None if learner is None else str(Path(learner).resolve())
    # The task's env and expert settings as given (`with_settings`), not only the registry's,
    # as JSON text: hashable, for the worker's cache.
    settings = json.dumps([dict(task.env), task.expert, dict(task.expert_params)], sort_keys=True)
    jobs = [
        (path, task.id, policy, seed, record, action_noise, recorded, start_noise, learner,
         expert_mix, settings)
        for seed in seeds
    ]  # fmt: skip
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_worker_play, jobs)


# ---------------------------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------------------------


def collect(config: CollectConfig) -> CollectResult:
    """Play and record `config.episodes` episodes of a task into a dataset (see module doc)."""
    import datasets
    import pyarrow as pa

    from gato.data.io import save_dataset

    registry = load_registry(config.registry)
    task = registry[config.task]
    registered = task.expert  # the filter's scores are this expert's
    task = played_as(
        task, config.policy, config.atari_protocol, config.atari_options, config.expert_params
    )
    policy = task.expert
    output = Path(config.output) if config.output else task.dataset_path
    if not isinstance(output, Path):
        raise ValueError(f"task {task.id!r}: its dataset is a hub id ({output}); pass --output")
    output = output.resolve()
    if output.exists() and not _replaceable(output):
        raise FileExistsError(
            f"{output} exists and is not a dataset; collection replaces only a previous dataset"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.tmp-collect-{uuid.uuid4().hex[:8]}")
    noise, recorded = noise_setting(task, config.action_noise, config.dart)
    if config.learner is not None:  # the learner's errors replace the registry's noise
        noise, recorded = 0.0, "expert"
    start_noise = task.start_noise if config.start_noise is None else config.start_noise
    features = _features(task)
    seeds = [config.seed + i for i in range(config.episodes)]
    start = time.perf_counter()
    returns: list[float] = []
    lengths: list[int] = []
    terminated: list[bool] = []
    steps = 0
    try:
        staging.mkdir()
        stream_path = staging / "episodes.arrow"
        with pa.OSFile(str(stream_path), "wb") as sink:
            with pa.ipc.new_stream(sink, features.arrow_schema) as writer:
                for result in play_episodes(
                    task, seeds, policy, record=True, workers=config.workers,
                    registry_path=_registry_path(registry, config.registry),
                    progress=config.progress, description=f"collect {task.id}",
                    action_noise=noise, recorded=recorded, start_noise=start_noise,
                    learner=config.learner, expert_mix=config.expert_mix,
                ):  # fmt: skip
                    writer.write_batch(result.batch)
                    returns.append(result.episode_return)
                    lengths.append(result.length)
                    terminated.append(result.terminated)
                    steps += result.length
        ends = (np.array(terminated), ~np.array(terminated))
        # The registry's `filter = false` keeps every game of its own expert too.
        filtering = config.filter and task.filter and policy == registered
        kept, threshold = _filter(task, returns, filtering, lengths, ends)
        if not any(kept):
            raise NothingKeptError(
                f"task {task.id!r}: no episode reached the filter threshold {threshold:.4g} "
                f"(returns {min(returns):.4g}..{max(returns):.4g}); nothing written"
            )
        metadata = {
            "task": task.id,
            "policy": policy,
            "expert_params": dict(task.expert_params),  # the played policy's
            "env": dict(task.env),
            "action_noise": noise if recorded == "played" else 0.0,
            "dart": noise if recorded == "expert" else 0.0,
            "start_noise": float(start_noise),
            "learner": None if config.learner is None else str(Path(config.learner).resolve()),
            "expert_mix": config.expert_mix,
            "filter": filtering,
            "seeds": [seeds[0], seeds[-1]],
            "episode_seeds": [s for s, k in zip(seeds, kept, strict=True) if k],
            "episodes_played": len(returns),
            "episodes_kept": int(sum(kept)),
            "filter_threshold": threshold,
            "windowed_expert_score": expert_score_of(returns, lengths, ends, task.episode_limit),
            "episodes_terminated": int(sum(terminated)),
            "mean_return": float(np.mean(returns)),
            "returns": returns,
            "created_by": CREATED_BY,
            # The adapters take [-1, 1] actions (`gato.data.action_scale`).
            "action_scale": "unit",
        }
        dataset = datasets.Dataset.from_file(str(stream_path))
        if not all(kept):
            dataset = dataset.select(np.flatnonzero(kept))
        dataset.info.description = json.dumps(metadata)
        quiet = not config.progress and not datasets.are_progress_bars_disabled()
        if quiet:
            datasets.disable_progress_bars()
        try:
            save_dataset(dataset, output)
        finally:
            if quiet:
                datasets.enable_progress_bars()
        del dataset  # it maps the staging file, removed below
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - start
    return CollectResult(output, returns, kept, threshold, steps, seconds, metadata)


COLLECTION_SETTINGS = (
    "policy", "expert_params", "env", "action_noise", "dart", "start_noise", "learner",
    "expert_mix", "filter",
)  # fmt: skip
"""What a collection's info records of how its episodes were played (the rest says which
seeds were played and what came of them)."""


def registry_collection(task: TaskSpec) -> dict[str, Any]:
    """The `COLLECTION_SETTINGS` a collection with the registry's settings records today."""
    noise, recorded = noise_setting(task, None, None)
    return {
        "policy": task.expert,
        "expert_params": dict(task.expert_params),
        "env": dict(task.env),
        "action_noise": noise if recorded == "played" else 0.0,
        "dart": noise if recorded == "expert" else 0.0,
        "start_noise": float(task.start_noise),
        "learner": None,
        "expert_mix": 0.0,
        "filter": task.filter,
    }


def changed_settings(task: TaskSpec, metadata: Mapping[str, Any]) -> list[str]:
    """The `COLLECTION_SETTINGS` that `metadata` (a collection's info) records differently from
    `registry_collection(task)`, sorted. A setting the info does not record (written before it
    was recorded) is not judged: the project cannot tell."""
    today = registry_collection(task)
    return sorted(
        key for key in COLLECTION_SETTINGS if key in metadata and metadata[key] != today[key]
    )


def recorded_collection(path: str | Path) -> dict[str, Any] | None:
    """The info `collect` stored in the dataset folder at `path`; None when there is none (not
    a dataset saved by `collect`, or no dataset at all)."""
    from gato.data.io import saved_description

    metadata = saved_description(path)
    return metadata if metadata is not None and metadata.get("created_by") == CREATED_BY else None


def recorded_seeds(dataset: Any) -> list[int] | None:
    """The reset seed of each episode (row) of a collected dataset, from what `collect` stored
    in its info; None when the dataset does not say (not collected here, or rows selected since).

    Datasets written before the seeds were stored per episode are read from their seed range,
    returns and filter threshold (the filter kept exactly the returns at or above it)."""
    try:
        meta = json.loads(dataset.info.description or "")
    except (AttributeError, TypeError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    seeds = meta.get("episode_seeds")
    if seeds is None and "seeds" in meta and "returns" in meta:
        first, threshold = int(meta["seeds"][0]), meta.get("filter_threshold")
        seeds = [
            first + i for i, r in enumerate(meta["returns"]) if threshold is None or r >= threshold
        ]
    if seeds is None or len(seeds) != len(dataset):
        return None
    return [int(s) for s in seeds]


def _replaceable(path: Path) -> bool:
    """An empty folder or a saved dataset: what a collection may overwrite."""
    if path.is_file():
        return False
    saved = (path / "state.json").exists() or (path / "dataset_dict.json").exists()
    return saved or not any(path.iterdir())


def _registry_path(registry: Registry, given: str | None) -> str | None:
    if registry.path is not None:
        return str(registry.path)
    return given


def _filter(
    task: TaskSpec,
    returns: list[float],
    enabled: bool,
    lengths: list[int] | None = None,
    ends: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list[bool], float | None]:
    """Gato's 80% filter, dropping episodes cut short too (`training_mask`); only for an expert
    whose scores the registry holds."""
    if not enabled or task.scores is None:
        return [True] * len(returns), None
    mask, threshold = training_mask(np.asarray(returns), task, lengths, ends)
    return mask.tolist(), threshold


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


@dataclass
class ScoreReport:
    """Expert and random returns of a task, and the scores derived from them."""

    task: str
    scores: Scores
    expert_returns: list[float]
    random_returns: list[float]
    seconds: float

    def summary(self) -> str:
        e, r = np.asarray(self.expert_returns), np.asarray(self.random_returns)
        return (
            f"{self.task}: expert {self.scores.expert:.4g} (mean {e.mean():.4g} +- {e.std():.3g} "
            f"over {e.size}), random {self.scores.random:.4g} (+- {r.std():.3g} over {r.size}), "
            f"{self.seconds:.0f} s"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def measure_scores(
    task: TaskSpec,
    expert_episodes: int = 100,
    random_episodes: int = 100,
    seed: int = score_math.SCORE_SEED,
    *,
    workers: int = 1,
    registry_path: str | Path | None = None,
    progress: bool = True,
) -> ScoreReport:
    """Play the expert and the random policy; Gato's expert score and the random mean.

    Seeds start at `seed` (default `SCORE_SEED`: far from collection seeds, so scores are
    measured on episodes the dataset does not hold, and below the evaluation seeds).
    """
    score_math.check_not_evaluation_seeds(
        seed, max(expert_episodes, random_episodes), "score measuring"
    )
    start = time.perf_counter()
    kwargs = {"workers": workers, "registry_path": registry_path, "progress": progress}
    played = list(
        play_episodes(
            task, range(seed, seed + expert_episodes), task.expert, description="expert", **kwargs
        )
    )
    expert = [r.episode_return for r in played]
    ended = np.array([r.terminated for r in played], dtype=bool)
    rand = [
        r.episode_return
        for r in play_episodes(
            task, range(seed, seed + random_episodes), "random", description="random", **kwargs
        )
    ]
    scores = Scores(
        expert=expert_score_of(
            expert, [r.length for r in played], (ended, ~ended), task.episode_limit
        ),
        random=score_math.random_score(rand),
        expert_episodes=expert_episodes,
        random_episodes=random_episodes,
    )
    return ScoreReport(task.id, scores, expert, rand, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# Whole suites
# ---------------------------------------------------------------------------------------------


@dataclass
class SuiteCollectConfig:
    """What `collect_suites` does: every task of some suites that has an offline expert."""

    suites: list[str] | None
    """Suite names; None for every suite of the registry."""
    episodes: int = 100
    """Episodes to play per task (before filtering)."""
    seed: int = 0
    """Episode i of every task is reset with seed `seed + i`."""
    workers: int = 1
    """Processes playing episodes in parallel, per task."""
    filter: bool = True
    """Drop episodes below 80% of the expert score (Gato)."""
    overwrite: bool = False
    """Collect tasks whose dataset is already on disk too (default: skip them, so a stopped run
    resumes where it stopped)."""
    progress: bool = True
    """Show progress bars."""
    registry: str | None = None
    """Registry file; default data/tasks.toml."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be positive, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be positive, got {self.workers}")
        score_math.check_not_evaluation_seeds(self.seed, self.episodes)


@dataclass
class SuitePlan:
    """The tasks of a suite collection, sorted by what will happen to them."""

    todo: list[TaskSpec]
    """Tasks to collect, in registry order."""
    present: list[TaskSpec]
    """Tasks skipped because their dataset is already on disk."""
    no_expert: list[TaskSpec]
    """Tasks without an offline expert (none registered, or its checkpoint is missing)."""


def plan_suites(config: SuiteCollectConfig) -> SuitePlan:
    """Which tasks a suite collection collects; unknown suites and missing packages raise.

    Raises `ValueError` naming the known suites, and `gato.tasks.envs.MissingPackageError`
    naming the package when a suite with tasks to collect cannot run here.
    """
    from gato.tasks.envs import require_suite

    registry = load_registry(config.registry)
    suites = config.suites or registry.suites
    unknown = sorted(set(suites) - set(registry.suites))
    if unknown:
        raise ValueError(f"unknown suites {unknown}; suites: {registry.suites}")
    tasks = [t for t in registry.values() if t.suite in suites]
    plan = SuitePlan([], [], [])
    for task in tasks:
        if not task.has_offline_expert:
            plan.no_expert.append(task)
        elif task.has_data() and not config.overwrite:
            plan.present.append(task)
        else:
            plan.todo.append(task)
    for suite in dict.fromkeys(t.suite for t in plan.todo):
        require_suite(suite)
    return plan


@dataclass
class TaskEstimate:
    """Cost of collecting one task, extrapolated from one recorded expert episode."""

    task: str
    steps: int
    """Steps of the probe episode."""
    seconds: float
    """Wall time of the probe episode (environment, expert, recording)."""
    bytes: int
    """Arrow bytes of the probe episode's row (images PNG-encoded, as stored)."""

    def total(self, episodes: int) -> tuple[float, float]:
        """(seconds, bytes) for `episodes` episodes like the probe."""
        return self.seconds * episodes, float(self.bytes) * episodes


def estimate_task(task: TaskSpec, seed: int = 0) -> TaskEstimate:
    """Play and record one expert episode (seed `seed`) and measure its time and size."""
    from gato.tasks.experts import make_expert

    start = time.perf_counter()
    env = make_env(task)
    try:
        expert = make_expert(task, seed)
        result = play_episode(env, expert, seed, task, True, _features(task))
    finally:
        env.close()
    return TaskEstimate(task.id, result.length, time.perf_counter() - start, result.batch.nbytes)


def collect_suites(
    config: SuiteCollectConfig, plan: SuitePlan | None = None
) -> dict[str, CollectResult | Exception]:
    """Collect every task of `plan.todo` (default `plan_suites(config)`), one dataset each.

    Each task is written atomically by `collect`, so stopping the run loses at most the task in
    progress, and running it again skips the tasks already on disk. A task that fails (e.g. no
    episode passes the filter) is reported and the run goes on; its exception is returned.
    """
    from tqdm.auto import tqdm

    plan = plan or plan_suites(config)
    out: dict[str, CollectResult | Exception] = {}
    bar = tqdm(plan.todo, unit="task", desc="tasks", disable=not config.progress, position=0)
    for task in bar:
        bar.set_postfix(task=task.id, refresh=True)
        try:
            out[task.id] = collect(
                CollectConfig(
                    task=task.id,
                    episodes=config.episodes,
                    seed=config.seed,
                    workers=config.workers,
                    filter=config.filter,
                    progress=config.progress,
                    registry=config.registry,
                )
            )
        except (RuntimeError, ValueError, OSError) as err:
            out[task.id] = err
    bar.close()
    return out
