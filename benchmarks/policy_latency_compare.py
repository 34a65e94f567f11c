"""Steps per second of `GatoPolicy` from this tree against an older copy of the package, stepped in
turn inside one process (same weights, same observations, same moments of a shared machine), so
that the ratio new / old holds where the absolute figures drift.

The old copy is a package named `gato_old` (its `gato.` imports rewritten), e.g. for commit C:

    git archive C gato | tar -x -C /tmp/old && mv /tmp/old/gato /tmp/old/gato_old
    grep -rl "gato\\." /tmp/old/gato_old | xargs sed -i 's/\\bgato\\./gato_old./g'
    python benchmarks/policy_latency_compare.py --old /tmp/old

Modes: `dynamic` (the eager cached step) and `dynamic-compile` (the same, `torch.compile`d), on
the dm-control-like task of `policy_latency.py` (30 observation tokens, 6 action tokens). The
actions of both copies are checked equal step by step.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from policy_latency import TASKS, policy_config  # noqa: E402

from gato.modeling.config import GatoConfig  # noqa: E402
from gato.modeling.model import GatoModel  # noqa: E402
from gato.policy import GatoPolicy  # noqa: E402
from gato.tokens.tokenizer import GatoTokenizer  # noqa: E402


def old_package(path: str) -> dict:
    sys.path.insert(0, path)
    return {
        "config": importlib.import_module("gato_old.modeling.config").GatoConfig,
        "model": importlib.import_module("gato_old.modeling.model").GatoModel,
        "policy": importlib.import_module("gato_old.policy").GatoPolicy,
        "tokenizer": importlib.import_module("gato_old.tokens.tokenizer").GatoTokenizer,
    }


def compare(
    old: dict,
    preset: str,
    task_name: str,
    modes: list[str],
    steps: int,
    warmup: int,
    new_first: bool = False,
):
    task = TASKS[task_name]
    device = torch.device("cpu")
    torch.manual_seed(0)
    new_model = GatoModel(GatoConfig.from_preset(preset)).eval()
    old_model = old["model"](old["config"].from_preset(preset)).eval()
    old_model.load_state_dict(new_model.state_dict())
    context = new_model.config.max_position_embeddings
    policies = {}
    for which, model, tokenizer_cls, policy_cls, spec in (
        ("old", old_model, old["tokenizer"], old["policy"], None),
        ("new", new_model, GatoTokenizer, GatoPolicy, task.spec),
    ):
        tokenizer = tokenizer_cls.from_config(model.config)
        action_spec = spec
        if action_spec is None:  # the old package's own ActionSpec class
            spec_cls = importlib.import_module("gato_old.tokens.tokenizer").ActionSpec
            action_spec = spec_cls(task.spec.kind, task.spec.shape, num_values=task.spec.num_values)
        shape = type(task)(task.name, action_spec, task.observation_tokens)
        prompt = shape.prompt(tokenizer, context // 2, np.random.default_rng(0))
        for mode in modes:
            config = policy_config(mode, device, "shift")
            policies[which, mode] = policy_cls(model, tokenizer, action_spec, prompt, config)
    if new_first:  # the turn order, to see whether going first or second counts
        policies = {key: policies[key] for key in sorted(policies, key=lambda k: k[0] != "new")}
    rng = np.random.default_rng(1)
    observations = [task.observation(rng) for _ in range(16)]
    times = {key: [] for key in policies}
    mismatches = 0
    for i in range(warmup + steps):
        obs = observations[i % len(observations)]
        actions = {}
        for key, policy in policies.items():
            start = time.perf_counter()
            actions[key] = policy.act(obs)
            if i >= warmup:
                times[key].append(time.perf_counter() - start)
        first = np.asarray(actions["old", modes[0]])
        mismatches += sum(not np.array_equal(first, np.asarray(a)) for a in actions.values())
    rows = []
    for mode in modes:
        old_s = 1.0 / np.median(times["old", mode])
        new_s = 1.0 / np.median(times["new", mode])
        rows.append((preset, task.name, mode, old_s, new_s, new_s / old_s))
    return rows, mismatches


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="folder holding the gato_old package")
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--tasks", nargs="+", default=["dmc"], choices=list(TASKS))
    parser.add_argument("--modes", nargs="+", default=["dynamic", "dynamic-compile"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="independent rounds, each a row")
    parser.add_argument("--new-first", action="store_true", help="step the new copy first")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    old = old_package(args.old)
    print(f"# CPU, {args.threads} thread(s), torch {torch.__version__}; steps/s from the median\n")
    print("| preset | task | mode | round | old steps/s | new steps/s | new / old |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for preset in args.presets:
        for task in args.tasks:
            for r in range(args.repeats):
                rows, mismatches = compare(
                    old, preset, task, args.modes, args.steps, args.warmup, args.new_first
                )
                for p, t, mode, o, n, ratio in rows:
                    print(f"| {p} | {t} | {mode} | {r} | {o:,.0f} | {n:,.0f} | {ratio:.3f} |")
                if mismatches:
                    print(f"(old and new disagreed on {mismatches} actions)", flush=True)


if __name__ == "__main__":
    main()
