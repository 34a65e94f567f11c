"""Supervised PathNet transfer: binary digit tasks, task A then task B, three ways of learning B.

The data is scikit-learn's bundled 8x8 digits (1,797 images, offline; an optional dependency).
A task "3v8" classifies digit 3 (label 1) against digit 8 (label 0); a task may name digit sets,
"02468v13579" (even, label 1, against odd) or "01234v56789". Each task's images are split once
(a fixed split, whatever the seed) into a training and a held-out set.

Learning a task (the paper's binary MNIST protocol, `learn_task`): a new head, a population of
random pathways, binary tournaments; in a tournament each of the two pathways is trained for T
minibatches by SGD (frozen modules excluded) and its fitness is its accuracy on those minibatches,
measured before each update (the paper's "negative classification error during training"). The
task is learned when a tournament's winner, after its T steps, classifies at least
`target_accuracy` of the whole training set; the cost is the number of tournaments (generations)
and SGD steps until then.

Noise (`noise`, default 0.2): every pixel of a training minibatch is, with that probability,
set to 0 or 1 (salt and pepper), afresh at every step; the sets pathways are scored on get one
fixed noisy copy. Without it (`--noise 0 --target_accuracy 0.99`) every binary 8x8 task is
learnt from scratch in a handful of tournaments, too few for selection to act or for A's
features to form, and transfer cannot show (docs/pathnet.md has both tables).

Task B is learned three ways (four with the diagnostic), with the same seed:
- pathnet: after A, the best pathway of A is frozen (its modules and A's head), every other
  module is re-initialised, and a new population evolves on B; B's pathways may read A's frozen
  modules.
- finetune: after A, nothing is frozen or re-initialised; a new population evolves on B over
  the weights A left (the paper's fine-tuning control).
- scratch: a freshly initialised network (the paper's independent control).
- from_a (only when asked for; not the paper): pathnet whose B population starts as copies of
  A's frozen pathway instead of random pathways, to tell the search for A's modules apart from
  what those modules are worth to B.
Speed-up = mean cost of a control / mean cost of pathnet, over seeds.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gato.experiments.pathnet.digits import (
    BinaryTask,
    load_digits_task,
    parse_pair,
    salt_and_pepper,
)
from gato.experiments.pathnet.evolution import active_modules, random_population, tournament
from gato.experiments.pathnet.network import PathNet, PathNetConfig
from gato.experiments.pathnet.report import (
    markdown_table,
    plot_speedups,
    speedup,
    spread,
)
from gato.files import atomic_write_json, atomic_write_text

__all__ = [
    "CONDITIONS",
    "EXTRA_CONDITIONS",
    "SupervisedConfig",
    "TaskRun",
    "learn_task",
    "run_seed",
    "run_supervised",
    "train_pathway",
]

CONDITIONS = ("pathnet", "finetune", "scratch")
EXTRA_CONDITIONS = ("from_a",)
"""Run only when named in `conditions`. from_a: pathnet whose B population starts as copies of
A's frozen pathway (not the paper; a diagnostic that removes the search for A's modules, so
what is left is what A's frozen features are worth to B)."""


@dataclass
class SupervisedConfig:
    """The supervised transfer experiment (defaults: the paper's binary MNIST settings where the
    paper gives them, scaled to the 8x8 digits; salt-and-pepper noise and a 95% target make the
    tasks hard enough to take tens of tournaments from scratch)."""

    pairs: list[str] = field(
        default_factory=lambda: [
            "6v8:3v8",
            "3v8:6v8",
            "1v7:4v7",
            "4v7:1v7",
            "3v9:3v5",
            "3v9:3v8",
            "3v8:8v3",
        ]
    )
    """Task pairs "A:B", each task "<digits>v<digits>" (digits before the "v" = label 1, e.g.
    "3v8" or "02468v13579"). The defaults use single digits: pairs that share a
    digit, in both directions, and a positive control (last: B is A with the labels swapped, so
    A's features suffice). `3v5:3v9` is left out: with the default noise 3v9 rarely reaches
    the target, so its B costs are censored at `max_generations` (docs/pathnet.md)."""
    seeds: int = 10
    """Independent runs per pair (seeds first_seed, first_seed + 1, ...)."""
    first_seed: int = 0
    """The first seed."""
    population: int = 64
    """Pathways in the population (the paper: 64)."""
    steps_per_pathway: int = 50
    """T: SGD minibatches a pathway trains in one tournament (the paper: 50)."""
    batch_size: int = 16
    """Minibatch size (the paper: 16)."""
    learning_rate: float = 0.02
    """Plain SGD step size."""
    target_accuracy: float = 0.95
    """A task is learned when a winner reaches this accuracy on the whole (noisy) training set."""
    max_generations: int = 300
    """Give up on a task after this many tournaments (the cost is then recorded as this bound)."""
    layers: int = 3
    """L (the paper: 3)."""
    modules: int = 10
    """M (the paper: 10)."""
    active: int = 3
    """N (the paper: 3)."""
    width: int = 20
    """Units per linear module (the paper: 20) or channels per conv module."""
    kind: str = "linear"
    """Module type: linear or conv."""
    test_fraction: float = 0.25
    """Share of each task's images held out (reported; used for stopping only with
    `stop_on="heldout"`)."""
    noise: float = 0.2
    """Salt-and-pepper noise: each pixel, with this probability, is set to 0 or 1 (even odds).
    Training minibatches get fresh noise at every step; the sets a pathway is scored on
    (training set for stopping, held-out set) get one fixed noisy copy per task."""
    train_examples_b: int = 0
    """Task B keeps only this many training images (the first of its fixed permutation);
    0 keeps all. Task A always keeps all of its images."""
    stop_on: str = "train"
    """The set on which a winner must reach `target_accuracy`: "train" (the paper) or
    "heldout" (the task's held-out images, which then no longer measure generalisation)."""
    output_dir: str = "runs/pathnet/supervised"
    """Where results, tables and plots go."""
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))
    """Which ways of learning B to run (from CONDITIONS and EXTRA_CONDITIONS)."""

    def __post_init__(self) -> None:
        self.pairs = list(self.pairs)
        self.conditions = list(self.conditions)
        for pair in self.pairs:
            parse_pair(pair)
        for name in (
            "seeds",
            "population",
            "steps_per_pathway",
            "batch_size",
            "max_generations",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SupervisedConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.population < 2:
            raise ValueError("SupervisedConfig.population must be >= 2 for a binary tournament")
        if not 0.5 < self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must lie in (0.5, 1], got {self.target_accuracy}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"noise must lie in [0, 1), got {self.noise}")
        if self.train_examples_b < 0:
            raise ValueError(f"train_examples_b must be >= 0, got {self.train_examples_b}")
        if self.stop_on not in ("train", "heldout"):
            raise ValueError(f"stop_on must be 'train' or 'heldout', got {self.stop_on!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        unknown = set(self.conditions) - set(CONDITIONS + EXTRA_CONDITIONS)
        if unknown or "pathnet" not in self.conditions:
            raise ValueError(
                f"conditions must include pathnet and come from {CONDITIONS + EXTRA_CONDITIONS}, "
                f"got {self.conditions}"
            )
        self.network()  # the network's own checks (N <= M, kind, ...)

    def network(self) -> PathNetConfig:
        shape = (64,) if self.kind == "linear" else (1, 8, 8)
        return PathNetConfig(
            layers=self.layers,
            modules=self.modules,
            active=self.active,
            width=self.width,
            kind=self.kind,
            input_shape=shape,
        )


# ---------------------------------------------------------------------------------------------
# Learning one task
# ---------------------------------------------------------------------------------------------


def train_pathway(
    net: PathNet,
    genotype: np.ndarray,
    task: BinaryTask,
    steps: int,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
) -> float:
    """T steps of plain SGD on the pathway's unfrozen parameters; returns the fitness: the share
    of minibatch examples classified right, each batch scored before its update."""
    params = net.pathway_parameters(genotype, task.name)
    correct = 0
    n = len(task.train_y)
    for _ in range(steps):
        rows = torch.from_numpy(rng.integers(0, n, size=batch_size))
        x = salt_and_pepper(task.train_x[rows], task.noise, rng)
        logits = net(x, genotype, task.name)  # (B, 2)
        labels = task.train_y[rows]
        loss = F.cross_entropy(logits, labels)
        correct += int((logits.argmax(1) == labels).sum())
        if params:
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.sub_(learning_rate * g)
    return correct / (steps * batch_size)


@torch.no_grad()
def accuracy(net: PathNet, genotype: np.ndarray, task: str, x: torch.Tensor, y: torch.Tensor):
    """Share of (x, y) the pathway classifies right."""
    return float((net(x, genotype, task).argmax(1) == y).float().mean())


@dataclass
class TaskRun:
    """How learning one task went."""

    task: str
    generations: int
    """Tournaments until the target was reached (max_generations when it never was)."""
    steps: int
    """SGD minibatch steps spent (2 T per tournament)."""
    reached: bool
    """Whether the target training accuracy was reached."""
    train_accuracy: float
    test_accuracy: float
    genotype: list[list[int]]
    """(L, N) the pathway that reached the target (or the last winner)."""
    seconds: float
    stop_accuracy: float = float("nan")
    """Accuracy on the stopping set (training or held-out, `stop_on`) of that pathway."""


def learn_task(
    net: PathNet,
    task: BinaryTask,
    config: SupervisedConfig,
    rng: np.random.Generator,
    generator: torch.Generator,
    population: list[np.ndarray] | None = None,
) -> TaskRun:
    """Evolve a population of pathways on `task` (a new head) until the target accuracy; the
    population is random unless given."""
    start = time.perf_counter()
    cfg = net.config
    net.add_head(task.name, 2, generator)
    if population is None:
        population = random_population(config.population, cfg.layers, cfg.active, cfg.modules, rng)
    else:
        population = [np.array(g, dtype=np.int64) for g in population]

    def fitness(genotype: np.ndarray) -> float:
        return train_pathway(
            net,
            genotype,
            task,
            config.steps_per_pathway,
            config.batch_size,
            config.learning_rate,
            rng,
        )

    stop_x, stop_y = (
        (task.train_eval_x, task.train_y)
        if config.stop_on == "train"
        else (task.test_x, task.test_y)
    )
    best = population[0]
    generation = 0
    reached = False
    while generation < config.max_generations:
        generation += 1
        result = tournament(population, fitness, cfg.modules, rng)
        best = result.winner_genotype
        # The winner is scored on the whole training set after its T steps (one pass over a
        # few hundred images: cheap next to the 2 T training steps of a tournament).
        if accuracy(net, best, task.name, stop_x, stop_y) >= config.target_accuracy:
            reached = True
            break
    train_acc = accuracy(net, best, task.name, task.train_eval_x, task.train_y)
    return TaskRun(
        task=task.name,
        generations=generation,
        steps=generation * 2 * config.steps_per_pathway,
        reached=reached,
        train_accuracy=train_acc,
        test_accuracy=accuracy(net, best, task.name, task.test_x, task.test_y),
        genotype=np.asarray(best).tolist(),
        seconds=time.perf_counter() - start,
        stop_accuracy=accuracy(net, best, task.name, stop_x, stop_y),
    )


# ---------------------------------------------------------------------------------------------
# One seed, many seeds
# ---------------------------------------------------------------------------------------------


def _frozen_copy(net: PathNet) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in net.frozen_state()}


def run_seed(
    config: SupervisedConfig,
    pair: str,
    seed: int,
    tasks: dict[str, BinaryTask],
    learned_a: dict[tuple[str, int], tuple[PathNet, TaskRun]] | None = None,
) -> dict[str, Any]:
    """Task A, then task B under each condition. Returns a JSON-able record.

    `learned_a` keeps each (A, seed)'s network and run for the next pair with the same A: A's
    run depends on nothing else and B's conditions copy the network, so reusing it gives the
    same record as learning A again.
    """
    name_a, name_b = parse_pair(pair)
    net_cfg = config.network()

    def rngs(stream: int) -> tuple[np.random.Generator, torch.Generator]:
        return (
            np.random.default_rng([seed, stream]),
            torch.Generator().manual_seed(seed * 1000 + stream),
        )

    if learned_a is not None and (name_a, seed) in learned_a:
        net_a, run_a = learned_a[name_a, seed]
    else:
        rng, gen = rngs(0)
        net_a = PathNet(net_cfg, gen)
        run_a = learn_task(net_a, tasks[name_a], config, rng, gen)
        if learned_a is not None:
            learned_a[name_a, seed] = (net_a, run_a)
    record: dict[str, Any] = {"pair": pair, "seed": seed, "A": asdict(run_a), "B": {}}
    # Streams follow the tuple order, so an extra condition leaves the others' runs unchanged.
    for stream, condition in enumerate(CONDITIONS + EXTRA_CONDITIONS, start=1):
        if condition not in config.conditions:
            continue
        rng, gen = rngs(stream)
        if condition == "scratch":
            net = PathNet(net_cfg, gen)
        else:
            net = copy.deepcopy(net_a)
        start = None
        if condition in ("pathnet", "from_a"):
            net.freeze(np.asarray(run_a.genotype), name_a)
            net.reinitialise_unfrozen(gen)
            frozen_before = _frozen_copy(net)
        if condition == "from_a":
            start = [np.asarray(run_a.genotype).copy() for _ in range(config.population)]
        task_b = tasks[name_b].subset(config.train_examples_b)
        run_b = learn_task(net, task_b, config, rng, gen, population=start)
        entry = asdict(run_b)
        if condition in ("pathnet", "from_a"):
            after = _frozen_copy(net)
            entry["frozen_unchanged"] = all(
                torch.equal(frozen_before[k], after[k]) for k in frozen_before
            )
            # Whether B's winner reads A's frozen modules or routes around them (fresh ones).
            used = active_modules(np.asarray(run_b.genotype))
            frozen = active_modules(np.asarray(run_a.genotype))
            entry["modules_used"] = [len(u) for u in used]
            entry["frozen_modules_used"] = [
                len(set(u) & set(f)) for u, f in zip(used, frozen, strict=True)
            ]
            # A's pathway still solves A: its modules and head were frozen.
            entry["task_a_train_accuracy_after"] = accuracy(
                net,
                np.asarray(run_a.genotype),
                name_a,
                tasks[name_a].train_eval_x,
                tasks[name_a].train_y,
            )
        record["B"][condition] = entry
    return record


def summarize(records: list[dict[str, Any]], config: SupervisedConfig) -> dict[str, Any]:
    """Per pair: each condition's cost spread and the speed-ups of pathnet over the controls."""
    out: dict[str, Any] = {}
    for pair in config.pairs:
        rows = [r for r in records if r["pair"] == pair]
        if not rows:
            continue
        entry: dict[str, Any] = {"seeds": len(rows), "conditions": {}, "speedup": {}}
        for condition in config.conditions:
            gens = [r["B"][condition]["generations"] for r in rows]
            entry["conditions"][condition] = {
                "generations": asdict(spread(gens)),
                "steps": asdict(spread([r["B"][condition]["steps"] for r in rows])),
                "not_reached": sum(not r["B"][condition]["reached"] for r in rows),
                "test_accuracy": asdict(spread([r["B"][condition]["test_accuracy"] for r in rows])),
            }
        pathnet = [r["B"]["pathnet"]["generations"] for r in rows]
        for control in config.conditions:
            if control != "pathnet":
                base = [r["B"][control]["generations"] for r in rows]
                entry["speedup"][f"over_{control}"] = speedup(base, pathnet)
        entry["task_a_generations"] = asdict(spread([r["A"]["generations"] for r in rows]))
        entry["frozen_unchanged"] = all(r["B"]["pathnet"]["frozen_unchanged"] for r in rows)
        if all("modules_used" in r["B"]["pathnet"] for r in rows):
            used = np.array([r["B"]["pathnet"]["modules_used"] for r in rows])
            frozen = np.array([r["B"]["pathnet"]["frozen_modules_used"] for r in rows])
            a_used = np.array(
                [[len(m) for m in active_modules(np.asarray(r["A"]["genotype"]))] for r in rows]
            )
            # Per layer, pooled over seeds: the share of B's modules that are A's frozen ones,
            # and what a pathway drawn at random would give (A's module count / M).
            entry["b_frozen_share_per_layer"] = (frozen.sum(0) / used.sum(0)).tolist()
            entry["b_frozen_share_by_chance"] = (a_used.mean(0) / config.modules).tolist()
        out[pair] = entry
    return out


def summary_table(summary: dict[str, Any], config: SupervisedConfig) -> str:
    header = ["pair A:B", "seeds", "A gens"]
    header += [f"B gens: {c}" for c in config.conditions]
    header += [f"speed-up vs {c} [95% CI]" for c in config.conditions if c != "pathnet"]
    rows = []
    for pair, entry in summary.items():
        row = [f"`{pair}`", entry["seeds"], _fmt(entry["task_a_generations"])]
        for c in config.conditions:
            cond = entry["conditions"][c]
            miss = f" ({cond['not_reached']} not reached)" if cond["not_reached"] else ""
            row.append(_fmt(cond["generations"]) + miss)
        for c in config.conditions:
            if c != "pathnet":
                s = entry["speedup"][f"over_{c}"]
                row.append(f"{s['ratio']:.2f} [{s['low']:.2f}, {s['high']:.2f}]")
        rows.append(row)
    return markdown_table(header, rows)


def _fmt(s: dict[str, float]) -> str:
    return f"{s['median']:.0f} [{s['q25']:.0f}, {s['q75']:.0f}]; {s['mean']:.1f} ± {s['std']:.1f}"


def run_supervised(
    config: SupervisedConfig, progress: bool = True, command: str | None = None
) -> dict[str, Any]:
    """Every pair x seed; writes results.jsonl, summary.json, summary.md and a plot."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    torch.set_num_threads(1)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {t for pair in config.pairs for t in parse_pair(pair)}
    tasks = {
        n: load_digits_task(n, config.test_fraction, config.kind, config.noise)
        for n in sorted(names)
    }
    records: list[dict[str, Any]] = []
    learned_a: dict[tuple[str, int], tuple[PathNet, TaskRun]] = {}
    seeds = range(config.first_seed, config.first_seed + config.seeds)
    bar = tqdm(total=len(config.pairs) * config.seeds, desc="supervised", disable=not progress)
    for pair in config.pairs:
        for seed in seeds:
            record = run_seed(config, pair, seed, tasks, learned_a)
            records.append(record)
            bar.update(1)
            bar.set_postfix(
                pair=pair, **{c: record["B"][c]["generations"] for c in config.conditions}
            )
            # Rewritten whole after every seed: an interrupted run keeps what it finished.
            atomic_write_text(out / "results.jsonl", "".join(_jsonl(r) for r in records))
    bar.close()
    summary = summarize(records, config)
    result = {
        "command": command,
        "config": asdict(config),
        "seconds": time.perf_counter() - start,
        "summary": summary,
    }
    atomic_write_json(out / "summary.json", result)
    table = summary_table(summary, config)
    atomic_write_text(out / "summary.md", table + "\n")
    groups = {
        pair: {
            c: [r["B"][c]["generations"] for r in records if r["pair"] == pair]
            for c in config.conditions
        }
        for pair in summary
    }
    plot_speedups(
        groups,
        out / "generations.png",
        "tournaments to target on B",
        f"PathNet transfer, 8x8 digits, noise {config.noise:g}, target {config.target_accuracy:g} "
        f"({config.seeds} seeds per pair)",
    )
    result["table"] = table
    return result


def _jsonl(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record) + "\n"
