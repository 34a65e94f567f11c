"""Control evaluation: N episodes per task with lockstep environments, expert-normalised scores.

`run_episodes` is the one environment loop: a batched `GatoPolicy` (one row per environment)
steps `len(envs)` environments in lockstep; when an episode ends its environment is reset with
the next episode's seed and its policy row is rebuilt with a fresh prompt, until exactly
`episodes` episodes have been started; rows whose environment has no episode left are retired.
Every episode is played to its end, so the count is exact and short episodes are not favoured
(stopping at the first N finished episodes would favour them). Episode k is seeded `seed + k`
whatever the number of environments, so results do not depend on the batching.

Start states are held out: evaluation seeds default to `gato.tasks.scores.EVALUATION_SEED` (a
range collection refuses), the demonstration prompt is never an evaluated episode (its seed is
excluded), and each task's result records its episodes' seeds and the prompt's.

Scores follow Gato: the expert-normalised score of a task is (mean return - random) /
(expert - random) with the registry's expert and random scores (`gato.tasks.scores`); a task counts
"above 50%" and "above 100%" of expert on that scale. Beside it: the human-normalised score of an
Atari game, the cached specialist's score (`gato.evaluation.baselines`), per task a bootstrap 95%
interval over episodes, and over tasks the IQM, mean and median with stratified bootstrap
intervals, overall and per domain (`gato.evaluation.aggregate`). Atari games are played under a
stated protocol (`gato.tasks.envs.atari.AtariProtocol`), recorded in the report.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gato.evaluation.loading import ModelLike, load_model, recipe_tasks, trained_recipe
from gato.policy import (
    GatoPolicy,
    PolicyConfig,
    demonstration_episode,
    demonstration_prompt,
    prompt_budget,
    task_tokenizer,
)
from gato.tasks.envs import make_env
from gato.tasks.envs.atari import AtariProtocol, atari_protocol, protocol_dict
from gato.tasks.scores import EVALUATION_SEED

__all__ = [
    "ControlEvalConfig",
    "EpisodeStats",
    "TaskResult",
    "check_task_supported",
    "evaluate_control",
    "evaluate_task",
    "render_frame",
    "mixture_control_specs",
    "mixture_control_tasks",
    "resolve_tasks",
    "run_episodes",
]


@dataclass
class ControlEvalConfig:
    """How control tasks are evaluated."""

    episodes: int = 50
    """Episodes per task (Gato: 50)."""
    num_envs: int = 8
    """Environments stepped in lockstep per task (rows of the policy's batch)."""
    seed: int = EVALUATION_SEED
    """Episode k of a task is reset with seed `seed + k` (default: the held-out evaluation range,
    which no collected episode uses)."""
    max_steps: int | None = None
    """Cut every episode after this many steps (default: the task's own limit)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Sampling, prompting and context options of the policy."""
    video_dir: str | None = None
    """Write a video of each task's first episodes here."""
    video_format: Literal["mp4", "gif"] = "mp4"
    """mp4 (H.264 through imageio-ffmpeg) or gif."""
    video_episodes: int = 4
    """Episodes shown side by side in a task's video (a grid, each with its return)."""
    atari_protocol: str = "data"
    """How Atari games are played: data (as our data was collected), jat (JAT's evaluation),
    sticky (sticky actions 0.25)."""
    atari_options: list[str] = field(default_factory=list)
    """Atari protocol options replacing the preset's, as key=value: sticky_actions,
    full_action_space, noop_max, max_frames, terminal_on_life_loss, fire_reset."""
    bootstrap_reps: int = 2000
    """Bootstrap replications of every confidence interval."""
    specialists: str | None = None
    """Specialist score cache (default: data/cache/specialists.json, if it exists)."""
    progress: bool = True
    """Show a progress bar per task."""
    strict_tasks: bool = True
    """Refuse tasks whose action space no training task of the checkpoint shares (when the
    checkpoint records its training mixture)."""

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.num_envs < 1:
            raise ValueError("ControlEvalConfig: episodes and num_envs must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"ControlEvalConfig.max_steps must be positive, got {self.max_steps}")
        if self.video_format not in ("mp4", "gif"):
            raise ValueError(f"video_format must be mp4 or gif, got {self.video_format!r}")
        if self.video_episodes < 1 or self.bootstrap_reps < 10:
            raise ValueError("video_episodes must be at least 1 and bootstrap_reps at least 10")
        _ = self.protocol  # an unknown protocol or option fails here, before any rollout

    @property
    def protocol(self) -> AtariProtocol:
        """The Atari protocol: the preset with the options applied."""
        return atari_protocol(self.atari_protocol, self.atari_options)


@dataclass
class EpisodeStats:
    """What `run_episodes` measured.

    Attributes:
        returns: (N,) summed reward of episode k at index k.
        lengths: (N,) steps of each episode.
        steps: environment steps in all.
        seconds: wall-clock time of the loop.
        frames: rendered frames of episode 0 (when a renderer was given).
        episode_frames: rendered frames of each of the first `video_episodes` episodes.
        seeds: (N,) the reset seed of each episode.
    """

    returns: np.ndarray
    lengths: np.ndarray
    steps: int
    seconds: float
    frames: list[np.ndarray] = field(default_factory=list)
    seeds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    episode_frames: list[list[np.ndarray]] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.inf


def run_episodes(
    policy: GatoPolicy,
    envs: Sequence[Any],
    episodes: int,
    seed: int = EVALUATION_SEED,
    max_steps: int | None = None,
    render: Callable[[Any, dict], np.ndarray | None] | None = None,
    progress: Any = None,
    video_episodes: int = 1,
) -> EpisodeStats:
    """Play exactly `episodes` episodes with `len(envs)` environments in lockstep.

    Args:
        policy: a policy with `num_envs == min(len(envs), episodes)` rows (its rows are reset).
        envs: objects with `reset(seed) -> observation` and `step(action) -> (observation,
            reward, terminated, truncated)` (`gato.tasks.envs.ControlEnv`, or a fake).
        episodes: how many episodes to play.
        seed: episode k is reset with `seed + k`.
        max_steps: truncate episodes after this many steps.
        render: `render(env, observation) -> frame` for the first episodes (a video), or None.
        progress: a tqdm-like bar (`update(n)`, `set_postfix`), updated per finished episode.
        video_episodes: with `render`, record the frames of episodes 0 .. video_episodes - 1.
    """
    n = min(len(envs), episodes)
    if policy.num_envs != n:
        raise ValueError(f"the policy has {policy.num_envs} rows for {n} environments")
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    recorded: list[list[np.ndarray]] = [[] for _ in range(min(video_episodes, episodes))]
    env_of = list(range(n))  # environment of each policy row
    episode_of = list(range(n))  # episode each row is playing
    observations = [envs[i].reset(seed=seed + i) for i in range(n)]
    policy.reset()
    if render is not None:
        shown = [_grab(recorded, render, envs[i], observations[i], i) for i in range(n)]
        if not any(shown):
            render = None  # nothing to show for this environment: do not try every step
    started, steps, start = n, 0, time.perf_counter()
    while env_of:
        actions = policy.act_batch(observations)
        retired = []
        for row, action in enumerate(actions):
            env, episode = envs[env_of[row]], episode_of[row]
            observation, reward, terminated, truncated = env.step(action)[:4]
            returns[episode] += reward
            lengths[episode] += 1
            steps += 1
            if render is not None:
                _grab(recorded, render, env, observation, episode)
            if max_steps is not None and lengths[episode] >= max_steps:
                truncated = True
            if not (terminated or truncated):
                observations[row] = observation
                continue
            if progress is not None:
                progress.update(1)
                progress.set_postfix(steps_per_s=f"{steps / (time.perf_counter() - start):.0f}")
            if started < episodes:
                observations[row] = env.reset(seed=seed + started)
                if render is not None:
                    _grab(recorded, render, env, observations[row], started)
                episode_of[row] = started
                started += 1
                policy.reset_env(row)
            else:
                retired.append(row)
        if retired:
            keep = [r for r in range(len(env_of)) if r not in retired]
            env_of = [env_of[r] for r in keep]
            episode_of = [episode_of[r] for r in keep]
            observations = [observations[r] for r in keep]
            if keep:
                policy.remove_envs(keep)
    seeds = np.arange(seed, seed + episodes, dtype=np.int64)
    frames = recorded[0] if recorded else []
    seconds = time.perf_counter() - start
    return EpisodeStats(returns, lengths, steps, seconds, frames, seeds, recorded)


def _grab(recorded: list, render: Callable, env: Any, observation: dict, episode: int) -> bool:
    """Append a frame of `episode` when it is one of the recorded episodes."""
    if episode >= len(recorded):
        return False
    frame = render(env, observation)
    if frame is not None:
        recorded[episode].append(np.asarray(frame, dtype=np.uint8))
    return frame is not None


def render_frame(env: Any, observation: dict) -> np.ndarray | None:
    """An RGB frame of an environment: the ALE screen, a MuJoCo camera, gymnasium's
    `render()`, else the observation's image (the newest frame of a stack); None for a state-only
    environment that cannot render."""
    ale = getattr(env, "ale", None)
    if ale is not None:
        return ale.getScreenRGB()
    physics = getattr(env, "physics", None)
    if physics is not None:
        try:
            return physics.render(height=240, width=320, camera_id=0)
        except Exception:  # no GL context: fall back to what the observation shows
            pass
    unwrapped = getattr(env, "unwrapped", None)
    if unwrapped is not None and getattr(unwrapped, "render_mode", None) == "rgb_array":
        try:
            return unwrapped.render()
        except Exception:  # e.g. classic control without pygame
            pass
    image = observation.get("image_observations") if isinstance(observation, dict) else None
    if image is None:
        return None
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        image = image[..., -1]  # a frame stack: show the newest frame
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    return image


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


@dataclass
class TaskResult:
    """One task's evaluation (JSON-ready through `asdict`)."""

    task: str
    episodes: int
    mean_return: float
    std_return: float
    random_score: float | None
    expert_score: float | None
    normalized_score: float | None
    """(mean - random) / (expert - random); None when the task has no reference scores."""
    returns: list[float]
    lengths: list[int]
    steps: int
    steps_per_second: float
    prompt_tokens: int
    video: str | None = None
    note: str = ""
    cut_at: int | None = None
    """Episodes were cut at this many steps, below the task's own limit: the normalised score
    then compares partial returns with full-episode references (marked * in reports)."""
    seeds: list[int] = field(default_factory=list)
    """The reset seed of each episode (index k: episode k)."""
    prompt_seed: int | None = None
    """The reset seed of the demonstration prompt's episode (None: no prompt, or its dataset
    records no seeds); never one of `seeds`."""
    domain: str = ""
    """The task's suite (atari, dmc, gym, babyai, metaworld): its aggregate's group."""
    return_interval: dict[str, Any] | None = None
    """Mean, std and bootstrap 95% interval of the return over episodes."""
    normalized_scores: list[float] | None = None
    """Each episode's expert-normalised score (what the aggregates resample)."""
    normalized_interval: dict[str, Any] | None = None
    """Mean, std and bootstrap 95% interval of the expert-normalised score over episodes."""
    human_normalized_score: float | None = None
    """Atari: (mean - random) / (human - random) with the published references."""
    human_random: float | None = None
    human_score: float | None = None
    specialist_score: float | None = None
    """The expert-normalised score of the task's behaviour-cloned specialist, where
    benchmarks/control_learning.py has cached it; None otherwise."""
    protocol: dict[str, Any] | None = None
    """Atari: the protocol the game was played under."""


def mixture_control_specs(mixture: Any) -> list[Any]:
    """The registry `TaskSpec`s of a mixture recipe's control sources (none for a recipe of
    captions, VQA or text only), each reading its episodes where the recipe points it.

    A source whose `path` is a local dataset other than the registry's gets a spec whose
    `dataset` (and `dataset_config`, the source's `hub_name`) is that one, so the demonstration
    prompt and the seeds the evaluation checks against come from the data the run trained on. A
    control source the registry does not know is warned about and left out. `mixture`: a recipe
    name or path, or the run's `ResolvedRecipe`.
    """
    from gato.data.minari_source import MinariSource
    from gato.data.mixture import BUILTIN_SOURCES, resolve_recipe
    from gato.tasks.registry import load_registry

    registry = load_registry()
    recipe = resolve_recipe(mixture)
    specs = []
    for source in recipe.sources:
        if source.name in BUILTIN_SOURCES or source.kind != "control":
            continue
        if source.name not in registry:
            warnings.warn(
                f"mixture {recipe.name!r}: source {source.name!r} is not a registry task; "
                "it is not evaluated",
                stacklevel=3,
            )
            continue
        spec = registry[source.name]
        local = Path(source.path).expanduser()
        if (
            not isinstance(source, MinariSource)
            and local.exists()
            and local.resolve() != Path(spec.dataset_path).resolve()
        ):
            spec = replace(spec, dataset=str(local.resolve()), dataset_config=source.hub_name)
        specs.append(spec)
    return specs


def mixture_control_tasks(mixture: Any) -> list[str]:
    """The registry task ids among a mixture recipe's sources (`mixture_control_specs`' ids)."""
    return [spec.id for spec in mixture_control_specs(mixture)]


def resolve_tasks(tasks: Sequence[Any] = (), mixture: Any = None) -> list[Any]:
    """Task ids or specs, plus the control tasks of a mixture recipe -> `TaskSpec`s (no repeats).

    A recipe's tasks read their episodes where the recipe points them (`mixture_control_specs`).
    An unknown id raises `UnknownTaskError` listing the known ones."""
    from gato.tasks.registry import get_task

    ids: list[Any] = list(tasks)
    if mixture is not None:
        ids.extend(mixture_control_specs(mixture))
    if not ids:
        raise ValueError("no control task to evaluate: give --task or a --mixture with tasks")
    specs, seen = [], set()
    for task in ids:
        spec = get_task(task) if isinstance(task, str) else task
        if spec.id not in seen:
            seen.add(spec.id)
            specs.append(spec)
    return specs


def check_task_supported(task: Any, trained: list[str] | None) -> str:
    """Raise `ValueError` if no task the checkpoint trained on shares `task`'s action space.

    Returns a note: "" for a training task, a warning text for an unseen task whose action space
    a training task shares (zero-shot), or that the training tasks are unknown.
    """
    if trained is None:
        return "training tasks unknown (no checkpoint manifest)"
    if task.id in trained:
        return ""
    from gato.tasks.registry import get_task

    spaces = {}
    for name in trained:
        try:
            spaces[name] = get_task(name).action
        except KeyError:
            continue
    if task.action in spaces.values():
        return "not a training task (zero-shot)"
    described = ", ".join(f"{n}: {_describe(a)}" for n, a in spaces.items()) or "none"
    raise ValueError(
        f"task {task.id!r} acts in {_describe(task.action)}, an action space the checkpoint was "
        f"not trained for (its control tasks: {described})"
    )


def _describe(action: Any) -> str:
    if action.kind == "discrete":
        return f"discrete({action.num_values})"
    return f"continuous{list(action.shape)}"


def _make_envs(task: Any, count: int, video: bool, protocol: AtariProtocol) -> list[Any]:
    overrides: dict[str, Any] = {}
    if task.suite == "atari":
        overrides = protocol.env_kwargs()
    if video and task.suite == "gym":  # gymnasium renders only when made to
        overrides["kwargs"] = {**task.env.get("kwargs", {}), "render_mode": "rgb_array"}
    return [make_env(task, **overrides) for _ in range(count)]


def evaluate_task(model: Any, tokenizer: Any, task: Any, config: ControlEvalConfig) -> TaskResult:
    """Roll out `config.episodes` episodes of one task and score them."""
    from gato.tasks.scores import normalized_score

    budget = prompt_budget(model.config.max_position_embeddings, config.policy)
    # Observations (prompt and episodes) tokenized as training tokenized this task's.
    tokenizer = task_tokenizer(tokenizer, model.config, task)
    seeds = range(config.seed, config.seed + config.episodes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a missing dataset becomes the task's note below
        prompt = demonstration_prompt(task, tokenizer, budget, config.policy.prompt_from, seeds)
    prompt_seed, overlap = _prompt_and_training_seeds(task, seeds, prompt is not None)
    num_envs = min(config.num_envs, config.episodes)
    policy = GatoPolicy(model, tokenizer, task.action, prompt, config.policy, num_envs)
    video = config.video_dir is not None
    envs = _make_envs(task, num_envs, video, config.protocol)
    bar = _progress(config.progress, config.episodes, task.id)
    try:
        stats = run_episodes(
            policy,
            envs,
            config.episodes,
            seed=config.seed,
            max_steps=config.max_steps,
            render=render_frame if video else None,
            progress=bar,
            video_episodes=config.video_episodes,
        )
    finally:
        if bar is not None:
            bar.close()
        for env in envs:
            env.close()
    mean = float(stats.returns.mean())
    std = float(stats.returns.std())
    scores = task.scores
    normalized = None
    if scores is not None and scores.expert != scores.random:
        normalized = float(normalized_score(mean, scores.expert, scores.random))
    notes = [] if prompt is not None else ["no demonstration prompt (no dataset)"]
    if overlap:
        notes.append(
            f"{overlap} evaluated start state(s) are seeds of training episodes: not held out"
        )
    cut_at = None
    if config.max_steps is not None and config.max_steps < task.episode_limit:
        cut_at = config.max_steps
        notes.append(
            f"episodes cut at {cut_at} of {task.episode_limit} steps: the normalised score "
            "compares partial returns with full-episode references"
        )
    video_path = None
    if video:
        from gato.evaluation.report import write_episodes_video

        shown = [f for f in stats.episode_frames if f]
        if shown:
            path = Path(config.video_dir) / f"{task.id}.{config.video_format}"
            labels = [f"return {r:,.1f}" for r in stats.returns[: len(shown)]]
            video_path = str(write_episodes_video(shown, path, labels))
        else:
            notes.append("no video: the environment cannot render")
    references = _references(task, stats.returns, mean, config)
    return TaskResult(
        task=task.id,
        episodes=config.episodes,
        mean_return=mean,
        std_return=std,
        random_score=None if scores is None else scores.random,
        expert_score=None if scores is None else scores.expert,
        normalized_score=normalized,
        returns=stats.returns.tolist(),
        lengths=stats.lengths.tolist(),
        steps=stats.steps,
        steps_per_second=stats.steps_per_second,
        prompt_tokens=0 if prompt is None else len(prompt),
        video=video_path,
        note="; ".join(notes),
        cut_at=cut_at,
        seeds=stats.seeds.tolist(),
        prompt_seed=prompt_seed,
        **references,
    )


def _references(task: Any, returns: np.ndarray, mean: float, config: Any) -> dict[str, Any]:
    """The TaskResult fields that set a score beside its references and its uncertainty."""
    from gato.evaluation.aggregate import episode_interval
    from gato.evaluation.baselines import human_normalized_score, specialist_score
    from gato.tasks.scores import normalized_score

    reps = config.bootstrap_reps
    out: dict[str, Any] = {
        "domain": task.suite,
        "return_interval": episode_interval(returns, reps),
        "human_normalized_score": human_normalized_score(mean, task),
        "specialist_score": specialist_score(task.id, config.specialists),
    }
    scores = task.scores
    if scores is not None and scores.expert != scores.random:
        per_episode = np.atleast_1d(normalized_score(returns, scores.expert, scores.random))
        out["normalized_scores"] = per_episode.tolist()
        out["normalized_interval"] = episode_interval(per_episode, reps)
    if task.reference is not None:
        out["human_random"], out["human_score"] = task.reference.random, task.reference.human
    if task.suite == "atari":
        out["protocol"] = protocol_dict(config.protocol)
    return out


def _prompt_and_training_seeds(task: Any, seeds: range, prompted: bool) -> tuple[int | None, int]:
    """(the prompt episode's seed, how many evaluation seeds the task's dataset also used)."""
    if not task.has_data():
        return None, 0
    from gato.data.collect import recorded_seeds
    from gato.data.episodes import load_episodes

    dataset = load_episodes(task.dataset_path, task=task)
    training = recorded_seeds(dataset)
    overlap = 0 if training is None else len(set(training).intersection(seeds))
    prompt_seed = demonstration_episode(dataset, seeds)[1] if prompted else None
    return prompt_seed, overlap


def _progress(enabled: bool, total: int, name: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="episode", leave=False)


def evaluate_control(
    model: ModelLike,
    tasks: Sequence[Any] = (),
    *,
    mixture: Any = None,
    config: ControlEvalConfig | None = None,
    device: Any = None,
    dtype: Any = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Evaluate a checkpoint (or a loaded model) on control tasks; returns a JSON-ready report.

    Args:
        model: a model, checkpoint or run folder, or a `(GatoModel, GatoTokenizer)` pair.
        tasks: task ids or `TaskSpec`s.
        mixture: also every control task of this recipe (a name in data/mixtures/, a path, or a
            `ResolvedRecipe`).
        config: the evaluation options; keyword `overrides` replace its fields (episodes=5, ...).
        device, dtype: where and in what precision to load a model given as a folder.

    Returns:
        {"kind": "control", "checkpoint", "config", "tasks": [TaskResult dicts], "summary"}.
    """
    config = config or ControlEvalConfig()
    if overrides:
        config = ControlEvalConfig(**{**asdict(config), **overrides, "policy": config.policy})
    specs = resolve_tasks(tasks, mixture)
    loaded, tokenizer, source = load_model(model, device=device, dtype=dtype)
    recipe = trained_recipe(source) if source is not None else None  # the manifest's, read once
    trained = recipe_tasks(recipe)
    if mixture is None:
        specs = _as_trained(specs, tasks, recipe)
    notes = {}
    for spec in specs:
        note = check_task_supported(spec, trained) if config.strict_tasks else ""
        notes[spec.id] = note
    results = []
    for spec in specs:
        result = evaluate_task(loaded, tokenizer, spec, config)
        if notes[spec.id]:
            result.note = "; ".join(n for n in (notes[spec.id], result.note) if n)
        results.append(result)
    config_record = dict(asdict(config))
    if any(s.suite == "atari" for s in specs):
        config_record["atari"] = protocol_dict(config.protocol)
    return control_report(results, config_record, source)


def _as_trained(specs: list[Any], tasks: Sequence[Any], recipe: Any) -> list[Any]:
    """Tasks given by id take their spec from the recipe the checkpoint trained on, where that
    recipe points them at its own episodes: the prompt and the training seeds checked then come
    from the data the model learnt (`mixture_control_specs`). Specs given whole stay as given."""
    if recipe is None:
        return specs
    by_id = {task for task in tasks if isinstance(task, str)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the recipe's unknown sources are not asked for here
        trained = {spec.id: spec for spec in mixture_control_specs(recipe)}
    return [trained.get(s.id, s) if s.id in by_id else s for s in specs]


def control_report(
    results: Sequence[TaskResult], config_record: dict[str, Any], checkpoint: Any = None
) -> dict[str, Any]:
    """The JSON-ready report of scored tasks: {"kind": "control", "checkpoint", "config",
    "tasks", "summary"}; `config_record` is the evaluation's options as a dict."""
    return {
        "kind": "control",
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "config": config_record,
        "tasks": [asdict(r) for r in results],
        "summary": summarize(
            results, config_record.get("bootstrap_reps", ControlEvalConfig.bootstrap_reps)
        ),
    }


def summarize(results: Sequence[TaskResult], reps: int = 2000) -> dict[str, Any]:
    """Counts of tasks at or above 50% and 100% of expert, the mean and median normalised score,
    and the aggregates with their intervals (`gato.evaluation.aggregate.aggregate`): over the
    expert-normalised scores ("aggregates") and over Atari's human-normalised ones
    ("human_aggregates", None without an Atari game with references)."""
    from gato.evaluation.aggregate import aggregate

    scored = [r.normalized_score for r in results if r.normalized_score is not None]
    per_episode = {r.task: r.normalized_scores for r in results if r.normalized_scores}
    domains = {r.task: r.domain for r in results if r.task in per_episode}
    human = {
        r.task: [(x - r.human_random) / (r.human_score - r.human_random) for x in r.returns]
        for r in results
        if r.human_normalized_score is not None and r.returns
    }
    return {
        "aggregates": aggregate(per_episode, domains, reps) if per_episode else None,
        "human_aggregates": aggregate(human, reps=reps) if human else None,
        "tasks": len(results),
        "cut_tasks": sum(r.cut_at is not None for r in results),
        "scored_tasks": len(scored),
        "above_50": int(sum(s >= 0.5 for s in scored)),
        "above_100": int(sum(s >= 1.0 for s in scored)),
        "mean_normalized": float(np.mean(scored)) if scored else None,
        "median_normalized": float(np.median(scored)) if scored else None,
    }
