"""The few-shot experiment: pretrain on a task family, then fine-tune vs scratch on held-out tasks.

    python -m gato.experiments.few_shot [--field value ...]    (--help lists the fields)

The protocol, each stage resumable (a stage whose output exists is skipped; results are appended
to `results.jsonl` one arm at a time):

1. **Data.** Expert episodes (the registry's offline Meta-World experts, Gato's 80%-of-expert
   filter) of every pretraining task (`pretrain_episodes` each) and of every held-out task
   (`max(demos)` each, from reset seeds 0, 1, ...); the k-demonstration sets are the first k
   episodes of a held-out task, so that 1 is inside 10 is inside 100.
2. **Pretraining.** One model on the pretraining tasks, equal weights (`pretrain_steps`).
3. **Fine-tuning vs scratch.** For every held-out task, demonstration count and seed: the same
   recipe (that task's k episodes), the same steps, batch and learning rate, once from the
   pretrained weights (`train.py --init_from`) and once from random weights.
4. **Evaluation.** Expert-normalised score of every arm on `eval_episodes` episodes of held-out
   start states (`gato.evaluation.evaluate_control`; no demonstration prompt, for both arms).
5. **Report.** Per task and count: the mean over seeds with a 95% t-interval, for both arms;
   `results.md`, `results.json` and `few_shot.png` (normalised score against demonstrations,
   averaged over the held-out tasks, as the Gato paper's fine-tuning figure).

Two splits are named (`--split`): Meta-World's ML45 (45 pretraining, 5 held-out tasks) and a
BabyAI split (15 levels pretrained on, 5 held out, each held-out level with a sibling among the
pretraining ones). `--workers N` runs N fine-tuning arms at once, each in its own process (on a
GPU, small models leave the device mostly idle, so arms side by side cost little more than one).
docs/transfer.md gives the commands that were run and what they measured.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ML45_HELDOUT = ("bin-picking", "box-close", "door-lock", "door-unlock", "hand-insert")
"""Meta-World ML45's five test tasks."""
ML45_ALL = (
    "assembly basketball bin-picking box-close button-press-topdown button-press-topdown-wall "
    "button-press button-press-wall coffee-button coffee-pull coffee-push dial-turn disassemble "
    "door-close door-lock door-open door-unlock drawer-close drawer-open faucet-close faucet-open "
    "hammer hand-insert handle-press-side handle-press handle-pull-side handle-pull lever-pull "
    "peg-insert-side peg-unplug-side pick-out-of-hole pick-place pick-place-wall "
    "plate-slide-back-side plate-slide-back plate-slide-side plate-slide push-back push "
    "push-wall reach reach-wall shelf-place soccer stick-pull stick-push sweep-into sweep "
    "window-close window-open"
).split()
ML45_TRAIN = tuple(t for t in ML45_ALL if t not in ML45_HELDOUT)
BABYAI_HELDOUT = (
    "go-to-red-ball-grey",  # siblings: go-to-red-ball, go-to-red-ball-no-dists
    "go-to-obj",  # go-to-local, go-to-obj-door
    "go-to-door",  # go-to-obj-door, open-door
    "open-door-color",  # open-door, open-red-door
    "pickup-loc",  # pickup-dist
)
"""BabyAI levels held out from pretraining: short ones, each with siblings in the other split."""
BABYAI_TRAIN = (
    "go-to-red-ball go-to-red-ball-no-dists go-to-local go-to-obj-door go-to open-door "
    "open-red-door open-two-doors pickup-dist put-next-local unlock-local action-obj-door "
    "find-obj-s5 key-corridor-s3r1 one-room-s8"
).split()
SPLITS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ml45": (
        tuple(f"metaworld-{t}" for t in ML45_TRAIN),
        tuple(f"metaworld-{t}" for t in ML45_HELDOUT),
    ),
    "babyai": (
        tuple(f"babyai-{t}" for t in BABYAI_TRAIN),
        tuple(f"babyai-{t}" for t in BABYAI_HELDOUT),
    ),
}
"""Named splits: (pretraining tasks, held-out tasks)."""
ARMS = ("pretrained", "scratch")


@dataclass
class FewShotConfig:
    """The few-shot transfer experiment (defaults: Meta-World ML45 as the issue states it)."""

    output_dir: str = "runs/few_shot"
    """Everything goes here: data, runs, results (relative: under the home, $GATO_HOME)."""
    split: Literal["ml45", "babyai"] = "ml45"
    """Named split: the tasks pretrained on and held out unless the two lists below are given."""
    pretrain_tasks: list[str] | None = None
    """Tasks of the pretraining mixture (None: the split's)."""
    heldout_tasks: list[str] | None = None
    """Tasks fine-tuned on; never in the pretraining mixture (None: the split's)."""
    pretrain_episodes: int = 20
    """Expert episodes per pretraining task."""
    demos: list[int] = field(default_factory=lambda: [1, 10, 100])
    """Demonstration counts for fine-tuning."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds of every fine-tuning / scratch run (weights of scratch, data order of both)."""
    preset: str = "tiny"
    """Model preset."""
    context: int = 1024
    """Tokens per training sequence (Gato's 1,024). A Meta-World timestep is 44 tokens: at 256 a
    row held five, and with 3,000 pretraining and 300 fine-tuning steps both arms stayed near 0%
    on the held-out tasks (docs/transfer.md)."""
    global_batch: int = 16
    """Sequences per step."""
    pretrain_steps: int = 20000
    """Optimizer steps of pretraining."""
    finetune_steps: int = 2000
    """Optimizer steps of every fine-tuning and scratch run (the same budget for both)."""
    finetune_learning_rate: float = 3e-4
    """Peak learning rate of fine-tuning and scratch runs alike."""
    finetune_freeze_embedding: bool = False
    """Keep the pretrained arm's input embedding fixed while fine-tuning (`--freeze_embedding`);
    the scratch arm trains everything, as a model from scratch must."""
    finetune_train_last_blocks: int | None = None
    """Fine-tune only the pretrained arm's last N decoder blocks (`--train_last_blocks`; None:
    all); the scratch arm trains everything."""
    eval_episodes: int = 10
    """Evaluation episodes per arm (held-out start states)."""
    eval_max_steps: int | None = None
    """Cut evaluation episodes after this many steps (None: the task's 500)."""
    eval_device: str = "cpu"
    """Where arms are evaluated (a small model's closed-loop step is launch-bound on a GPU)."""
    collect_workers: int = 2
    """Processes collecting expert episodes."""
    workers: int = 1
    """Fine-tuning and scratch arms run at once, each in its own process."""
    threads: int | None = None
    """CPU threads per arm (None: torch's default with one worker, else cores // workers)."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {sorted(SPLITS)}")
        pretrain, heldout = SPLITS[self.split]
        if self.pretrain_tasks is None:
            self.pretrain_tasks = list(pretrain)
        if self.heldout_tasks is None:
            self.heldout_tasks = list(heldout)
        overlap = set(self.pretrain_tasks) & set(self.heldout_tasks)
        if overlap:
            raise ValueError(f"held-out tasks must not be pretrained on: {sorted(overlap)}")
        if not self.pretrain_tasks or not self.heldout_tasks:
            raise ValueError("needs at least one pretraining and one held-out task")
        if not self.demos or min(self.demos) < 1:
            raise ValueError(f"demos must be positive counts, got {self.demos}")
        if not self.seeds:
            raise ValueError("needs at least one seed")
        for name in (
            "pretrain_episodes", "pretrain_steps", "finetune_steps", "eval_episodes", "workers"
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.finetune_train_last_blocks is not None and self.finetune_train_last_blocks < 0:
            raise ValueError(
                f"finetune_train_last_blocks must be >= 0, got {self.finetune_train_last_blocks}"
            )


# ---------------------------------------------------------------------------------------------
# stages


TOP_UP_SEED_STRIDE = 100_000
"""Round r of a top-up in `_collect_kept` resets its episodes from seed (r + 1) * stride + the
episodes held: rounds never share a start state, and all stay below the expert-score and
evaluation ranges (1,000,000 on)."""


def _collect(task: str, episodes: int, path: Path, workers: int) -> None:
    from gato.data.collect import CollectConfig, collect

    if path.exists():
        return
    collect(CollectConfig(task=task, episodes=episodes, output=str(path), workers=workers))


def _collect_kept(
    task: str, count: int, path: Path, workers: int, rounds: int = 6, collect_fn: Any = None
) -> None:
    """At least `count` expert episodes that pass the collection filter at `path` (a held-out
    task's demonstrations: the k-demonstration sets take its first k). The filter drops an
    expert's failures (Meta-World's door-unlock kept 63 of 100), so rounds top the dataset up
    with the shortfall, doubled, from fresh seeds, until it holds `count` or `rounds` are spent.
    `collect_fn` (a `gato.data.collect.collect`) is for tests."""
    import datasets

    from gato.data.collect import CollectConfig, NothingKeptError, collect
    from gato.data.io import save_dataset

    collect_fn = collect_fn or collect
    have = _load_dataset(path) if path.exists() else None
    for r in range(rounds):
        held = 0 if have is None else len(have)
        if held >= count:
            return
        part = path.with_name(f".{path.name}.round-{r}")
        shutil.rmtree(part, ignore_errors=True)
        ask = count if have is None else 2 * (count - held)
        # The held count grows every round that keeps an episode: a later call starting again
        # at r = 0 does not replay the seeds of an earlier call's rounds.
        seed = 0 if have is None else (r + 1) * TOP_UP_SEED_STRIDE + held
        config = CollectConfig(
            task=task, episodes=ask, output=str(part), workers=workers, seed=seed
        )
        try:
            collect_fn(config)
        except NothingKeptError:  # no episode of the round passed the filter
            continue
        got = _load_dataset(part)
        have = got if have is None else datasets.concatenate_datasets([have, got])
        save_dataset(have, path)
        shutil.rmtree(part, ignore_errors=True)
    held = 0 if have is None else len(have)
    if held < count:
        raise RuntimeError(
            f"{task}: {held} expert episodes passed the filter after {rounds} rounds of "
            f"collection, {count} needed (lower --demos, or collect with --no_filter)"
        )


def _load_dataset(folder: Path) -> Any:
    """A `save_to_disk` folder's episodes (a DatasetDict's train split)."""
    import datasets

    loaded = datasets.load_from_disk(str(folder))
    return loaded["train"] if isinstance(loaded, datasets.DatasetDict) else loaded


def _subset(source: Path, count: int, path: Path) -> Path:
    """The first `count` episodes of a dataset, saved as their own dataset."""
    from gato.data.io import save_dataset

    if path.exists():
        return path
    episodes = _load_dataset(source)
    if len(episodes) < count:
        raise ValueError(f"{source} holds {len(episodes)} episodes after filtering, {count} asked")
    save_dataset(episodes.select(range(count)), path)
    return path


def _recipe(path: Path, name: str, sources: dict[str, Path]) -> Path:
    lines = [f'name = "{name}"']
    for task, data in sources.items():
        lines += ["", "[[sources]]", f'task = "{task}"', "weight = 1.0", f'path = "{data}"']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(config: Any) -> Path:
    """Train unless the run finished before; returns the run folder."""
    from gato.checkpoints import latest_checkpoint
    from gato.training.trainer import Trainer

    out = Path(config.output_dir)
    done = latest_checkpoint(out)
    if done is not None and done.name.endswith(f"{config.steps:08d}"):
        return out
    if (out / "run.json").exists():
        config.resume = True
    Trainer(config, command=f"few_shot {out.name}").train()
    return out


def _build_caches(recipes: Any, common: dict[str, Any]) -> None:
    """The token caches of the fine-tuning recipes, as the trainer would build them."""
    from gato.data.mixture import Mixture, MixtureConfig
    from gato.modeling.config import GatoConfig
    from gato.tokens.tokenizer import GatoTokenizer

    tokenizer = GatoTokenizer.from_config(GatoConfig.from_preset(common["preset"]))
    mixture_config = MixtureConfig(
        context_length=common["context"],
        batch_size=common["global_batch"],
        cache_root=common["cache_dir"],
    )
    for recipe in recipes:
        Mixture(str(recipe), mixture_config, tokenizer=tokenizer)


def _arm(job: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """Train one arm (resumably) and score it; its results row."""
    from gato.checkpoints import latest_checkpoint
    from gato.evaluation import evaluate_control

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    run_dir = _train(job["train"])
    report = evaluate_control(
        latest_checkpoint(run_dir), [job["task"]], progress=False, **job["eval"]
    )
    result = report["tasks"][0]
    return {
        "task": job["task"],
        "demos": job["demos"],
        "seed": job["seed"],
        "arm": job["arm"],
        "normalized_score": result["normalized_score"],
        "mean_return": result["mean_return"],
        "seconds": time.perf_counter() - start,
    }


def _run_arms(
    jobs: Sequence[Any],
    workers: int,
    threads: int | None,
    arm: Callable[[Any, int | None], Any] = _arm,
) -> Iterator[Any]:
    """`arm(job, threads)` of each job as it finishes: in this process, or in `workers` spawned
    processes (then `arm` must be picklable: a module-level function)."""
    if workers <= 1:
        for job in jobs:
            yield arm(job, threads)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Spawned, not forked: the parent may hold CUDA or OpenMP state a fork cannot carry.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(arm, job, threads) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def _start_options(config: FewShotConfig, pretrained: Path) -> dict[str, Any]:
    """The pretrained arm's TrainConfig fields: where it starts and what it keeps fixed (the
    scratch arm takes TrainConfig's defaults: random weights, everything trained)."""
    return {
        "init_from": str(pretrained),
        "freeze_embedding": config.finetune_freeze_embedding,
        "train_last_blocks": config.finetune_train_last_blocks,
    }


def arm_jobs(
    config: FewShotConfig,
    recipes: dict[tuple[str, int], Path],
    pretrained: Path,
    common: dict[str, Any],
    out: Path,
    done: AbstractSet[tuple[str, int, int, str]] = frozenset(),
) -> list[dict[str, Any]]:
    """One job per (seed, held-out task, demonstration count, arm) not in `done`: its training
    config (the pretrained arm starts from `pretrained`, with the fine-tuning freeze options;
    scratch from random weights, all of it trained) and its evaluation options."""
    from gato.training.config import TrainConfig

    # Seeds outermost: a run cut short still has every task and count at its first seeds.
    return [
        {
            "task": task,
            "demos": k,
            "seed": seed,
            "arm": arm,
            "train": TrainConfig(
                mixture=str(recipes[task, k]),
                steps=config.finetune_steps,
                learning_rate=config.finetune_learning_rate,
                seed=seed,
                output_dir=str(out / "runs" / f"{task}-{k}-{arm}-s{seed}"),
                checkpoint_every=config.finetune_steps,
                **(_start_options(config, pretrained) if arm == "pretrained" else {}),
                **common,
            ),
            "eval": {
                "episodes": config.eval_episodes,
                "max_steps": config.eval_max_steps,
                "device": config.eval_device,
            },
        }
        for seed in config.seeds
        for task in config.heldout_tasks
        for k in config.demos
        for arm in ARMS
        if (task, k, seed, arm) not in done
    ]


def run(config: FewShotConfig) -> dict[str, Any]:
    """Every stage; returns the report (also written under `output_dir`)."""
    from gato.files import home_path
    from gato.training.config import TrainConfig

    out = home_path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    data = out / "data"
    for task in config.pretrain_tasks:
        _collect(task, config.pretrain_episodes, data / task, config.collect_workers)
    for task in config.heldout_tasks:
        _collect_kept(task, max(config.demos), data / task, config.collect_workers)

    common = dict(
        preset=config.preset,
        context=config.context,
        global_batch=config.global_batch,
        cache_dir=str(out / "cache"),
        log_every=50,
        # The settings docs/transfer.md's runs trained with (the main job's defaults of their
        # day), kept so they reproduce.
        encoding="grouped",
        block_lr_scale=1.0,
        control_window_steps=8,
        lr_schedule="cosine",
    )
    pretrain_recipe = _recipe(
        out / "recipes" / "pretrain.toml",
        "pretrain",
        {t: data / t for t in config.pretrain_tasks},
    )
    pretrained = _train(
        TrainConfig(
            mixture=str(pretrain_recipe),
            steps=config.pretrain_steps,
            output_dir=str(out / "pretrain"),
            checkpoint_every=max(1, config.pretrain_steps // 4),
            **common,
        )
    )
    results_path = out / "results.jsonl"
    done = set()
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["task"], r["demos"], r["seed"], r["arm"]))
    recipes = {}
    for task in config.heldout_tasks:
        for k in config.demos:
            subset = _subset(data / task, k, data / f"{task}-{k}")
            recipes[task, k] = _recipe(
                out / "recipes" / f"{task}-{k}.toml", f"{task}-{k}", {task: subset}
            )
    jobs = arm_jobs(config, recipes, pretrained, common, out, done)
    if config.workers > 1 and jobs:
        _build_caches(recipes.values(), common)  # once here, not raced by the arms
    threads = config.threads
    if threads is None and config.workers > 1:
        threads = max(1, (os.cpu_count() or 1) // config.workers)
    for record in _run_arms(jobs, config.workers, threads):
        with open(results_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
    records = [json.loads(line) for line in results_path.read_text().splitlines()]
    summary = summarize(records)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "results.md").write_text(results_markdown(summary))
    plot(summary, out / "few_shot.png")
    return summary


# ---------------------------------------------------------------------------------------------
# the report


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student t quantiles at 0.975 for 1..10 degrees of freedom (beyond: 1.96, within 4% at 30)."""


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width) of a 95% Student-t interval; half-width nan for fewer than 2 values."""
    n = len(values)
    if n == 0:
        raise ValueError("t_interval of no values")
    mean = float(sum(values) / n)
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    quantile = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return mean, quantile * sd / math.sqrt(n)


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{"rows": per (task, demos, arm): mean, half-width, n; "wins": per (task, demos) whether
    the pretrained interval lies wholly above scratch's}."""
    groups: dict[tuple[str, int, str], list[float]] = {}
    for r in records:
        if r["normalized_score"] is not None:
            groups.setdefault((r["task"], r["demos"], r["arm"]), []).append(r["normalized_score"])
    rows = []
    for (task, k, arm), values in sorted(groups.items()):
        mean, half = t_interval(values)
        rows.append(
            {"task": task, "demos": k, "arm": arm, "mean": mean, "ci95": half, "n": len(values)}
        )
    index = {(r["task"], r["demos"], r["arm"]): r for r in rows}
    wins = []
    for task, k in sorted({(r["task"], r["demos"]) for r in rows}):
        p, s = index.get((task, k, "pretrained")), index.get((task, k, "scratch"))
        if p and s:
            separated = (
                not math.isnan(p["ci95"])
                and not math.isnan(s["ci95"])
                and p["mean"] - p["ci95"] > s["mean"] + s["ci95"]
            )
            wins.append(
                {"task": task, "demos": k, "pretrained_better": p["mean"] > s["mean"],
                 "intervals_separate": separated}
            )  # fmt: skip
    return {"rows": rows, "wins": wins}


def results_markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| task | demos | pretrained (mean, 95% CI) | scratch | pretrained better | CIs apart |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    index = {(r["task"], r["demos"], r["arm"]): r for r in summary["rows"]}

    def cell(row: dict[str, Any] | None) -> str:
        if row is None:
            return "-"
        half = "n/a" if math.isnan(row["ci95"]) else f"{100 * row['ci95']:.1f}"
        return f"{100 * row['mean']:.1f}% +- {half} (n={row['n']})"

    for win in summary["wins"]:
        key = (win["task"], win["demos"])
        lines.append(
            f"| {win['task']} | {win['demos']} | {cell(index.get((*key, 'pretrained')))} | "
            f"{cell(index.get((*key, 'scratch')))} | {'yes' if win['pretrained_better'] else 'no'} "
            f"| {'yes' if win['intervals_separate'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Normalised score against demonstrations, each arm averaged over the held-out tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for arm in ARMS:
        by_k: dict[int, list[float]] = {}
        for r in summary["rows"]:
            if r["arm"] == arm:
                by_k.setdefault(r["demos"], []).append(r["mean"])
        ks = sorted(by_k)
        ax.plot(ks, [100 * sum(by_k[k]) / len(by_k[k]) for k in ks], marker="o", label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("demonstration episodes")
    ax.set_ylabel("expert-normalised score (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
