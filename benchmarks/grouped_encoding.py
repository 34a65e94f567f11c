"""Grouped continuous values against one token per value: training timesteps/s and policy step.

Two measurements, each interleaved in one process (every contender's step i runs within
moments of the others', so their ratios survive a shared, noisy machine):

* training: a MuJoCo-like task (17 continuous observations, 6 continuous actions), the same
  model depth and width, the same timesteps per batch (rows x window), one AdamW step
  (forward, backward, update) per call; environment timesteps per second, median over steps;
* acting: a dm-control-like task (30 observations, 6 actions) with a demonstration prompt of
  half the context; milliseconds per environment step of `GatoPolicy`: one token per value on
  the eager and the compiled path (the fastest CPU path), grouped on the eager path.

    python benchmarks/grouped_encoding.py                    # both tables, tiny preset
    python benchmarks/grouped_encoding.py --part train --steps 20 --json out.json

Grouped: `ENCODINGS["grouped"]` (`gato.modeling.config`): `continuous_observation_group` 32 (a
whole observation of up to 32 values is one position), `continuous_action_group` 8 (an action of
up to 8 dimensions decoded in one forward pass), no separator position; "separator kept" is the
same with the separator's position.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.modeling.config import ENCODINGS, GatoConfig
from gato.modeling.model import GatoModel
from gato.policy import GatoPolicy, PolicyConfig
from gato.schema import ActionSpec
from gato.tokens.batch import collate
from gato.tokens.tokenizer import GatoTokenizer


def episode(tokenizer: GatoTokenizer, steps: int, obs: int, act: int, rng: np.random.Generator):
    return tokenizer.encode_episode(
        {"continuous_observations": rng.normal(size=(steps, obs)).astype(np.float32)},
        {"continuous_actions": rng.uniform(-1, 1, (steps, act)).astype(np.float32)},
        ActionSpec("continuous", (act,)),
    )


def make_model(preset: str, encoding: dict, context: int) -> GatoModel:
    torch.manual_seed(0)
    return GatoModel(GatoConfig.from_preset(preset, max_position_embeddings=context, **encoding))


def contenders(args: argparse.Namespace) -> dict[str, dict]:
    """Gato's encoding, the grouped one (`ENCODINGS["grouped"]` with --groups), and the grouped
    one keeping the separator's position."""
    ko, ka = args.groups
    grouped = {
        **ENCODINGS["grouped"],
        "continuous_observation_group": ko,
        "continuous_action_group": ka,
    }
    return {
        "one token per value": ENCODINGS["values"],
        "grouped, separator kept": {**grouped, "keep_separator": True},
        "grouped": grouped,
    }


def train_step(model: GatoModel, optimizer: torch.optim.Optimizer, batch: dict) -> Any:
    """One optimiser step on a batch (forward, backward, update) -> the model's output."""
    out = model(**batch)
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return out


def interleaved(calls: dict[str, Callable[[int], Any]], warmup: int, steps: int):
    """Call every contender's `call(i)` in turn for i < warmup + steps -> {name: the seconds of
    each call after the warmup}: step i of each runs within moments of the others'."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(warmup + steps):
        for name, call in calls.items():
            start = time.perf_counter()
            call(i)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def add_timing_arguments(parser: argparse.ArgumentParser, rows: int, window: int) -> None:
    """The options both of this folder's encoding benchmarks take."""
    parser.add_argument("--part", choices=["train", "act", "both"], default="both")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=rows, help="training batch rows")
    parser.add_argument("--window", type=int, default=window, help="timesteps per training row")
    parser.add_argument("--json", type=Path, default=None)


def write_json(rows: list[dict], path: Path | None) -> None:
    if path is not None:
        from gato.files import atomic_write_text

        atomic_write_text(path, json.dumps(rows, indent=1))


def measure_training(args: argparse.Namespace) -> list[dict]:
    tokenizer = GatoTokenizer()
    rng = np.random.default_rng(0)
    per_step = args.train_obs + 1 + args.train_act
    context = max(per_step * args.window, 8)
    encodings = contenders(args)
    setups = {}
    for name, encoding in encodings.items():
        model = make_model(args.preset, encoding, context).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        setups[name] = (model, optimizer)
    batches = []
    for _ in range(4):
        rows = [
            episode(tokenizer, args.window, args.train_obs, args.train_act, rng)
            for _ in range(args.rows)
        ]
        batches.append(collate(rows).as_dict())
    calls = {
        name: lambda i, m=model, o=optimizer: train_step(m, o, batches[i % len(batches)])
        for name, (model, optimizer) in setups.items()
    }
    times = interleaved(calls, args.warmup, args.steps)
    timesteps = args.rows * args.window
    base = statistics.median(times["one token per value"])
    rows = []
    for name, spent in times.items():
        median = statistics.median(spent)
        encoding = encodings[name]
        grouped = encoding["continuous_observation_group"] > 0
        positions = 2 + encoding.get("keep_separator", True) if grouped else per_step
        rows.append(
            {
                "part": "train",
                "encoding": name,
                "positions_per_timestep": positions,
                "ms_per_step": median * 1e3,
                "timesteps_per_s": timesteps / median,
                "speedup": base / median,
            }
        )
    return rows


def measure_acting(args: argparse.Namespace) -> list[dict]:
    tokenizer = GatoTokenizer()
    rng = np.random.default_rng(1)
    spec = ActionSpec("continuous", (args.act_act,))
    encodings = contenders(args)
    runs = {
        "one token per value, eager": ("one token per value", False),
        "one token per value, compiled": ("one token per value", True),
        "grouped, separator kept, eager": ("grouped, separator kept", False),
        "grouped, eager": ("grouped", False),
    }
    if not args.compiled:
        del runs["one token per value, compiled"]
    per_step = args.act_obs + 1 + args.act_act
    context = 1024
    demo = episode(tokenizer, context // 2 // per_step, args.act_obs, args.act_act, rng)
    prompt = demo
    models = {}
    policies = {}
    for name, (encoding, compiled) in runs.items():
        if encoding not in models:
            models[encoding] = make_model(args.preset, encodings[encoding], context).eval()
        config = PolicyConfig(compile=compiled)
        policies[name] = GatoPolicy(models[encoding], tokenizer, spec, prompt, config)
    observations = [
        {"continuous_observations": rng.normal(size=args.act_obs).astype(np.float32)}
        for _ in range(16)
    ]
    calls = {
        name: lambda i, p=policy: p.act(observations[i % len(observations)])
        for name, policy in policies.items()
    }
    with torch.no_grad():
        times = interleaved(calls, args.warmup, args.policy_steps)
    base = statistics.median(
        times["one token per value, compiled" if args.compiled else "one token per value, eager"]
    )
    return [
        {
            "part": "act",
            "encoding": name,
            "prompt_tokens": len(prompt),
            "ms_per_step": statistics.median(spent) * 1e3,
            "speedup": base / statistics.median(spent),
        }
        for name, spent in times.items()
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser, rows=8, window=16)
    parser.add_argument("--groups", type=int, nargs=2, default=[32, 8], metavar=("OBS", "ACT"))
    parser.add_argument("--train-obs", type=int, default=17)
    parser.add_argument("--train-act", type=int, default=6)
    parser.add_argument("--act-obs", type=int, default=30)
    parser.add_argument("--act-act", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--policy-steps", type=int, default=200, help="timed policy steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--compiled",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the compiled one-token-per-value policy too (the reference of the table)",
    )
    args = parser.parse_args(argv)
    if min(args.groups) < 1:
        parser.error("--groups: both sizes must be >= 1")
    torch.set_num_threads(args.threads)
    print(f"# CPU, {args.threads} thread(s), preset {args.preset}, groups {args.groups}\n")
    rows: list[dict] = []
    if args.part in ("train", "both"):
        trained = measure_training(args)
        print(
            f"Training: {args.train_obs} observations, {args.train_act} actions, "
            f"{args.rows} rows x {args.window} timesteps per batch\n"
        )
        print("| encoding | positions / timestep | ms / step | timesteps / s | speed-up |")
        print("| --- | --- | --- | --- | --- |")
        for r in trained:
            print(
                f"| {r['encoding']} | {r['positions_per_timestep']} | {r['ms_per_step']:.1f} | "
                f"{r['timesteps_per_s']:,.0f} | {r['speedup']:.1f}x |"
            )
        rows += trained
    if args.part in ("act", "both"):
        acted = measure_acting(args)
        print(
            f"\nActing: {args.act_obs} observations, {args.act_act} actions, a prompt of "
            f"{acted[0]['prompt_tokens']} tokens\n"
        )
        against = "compiled" if args.compiled else "eager"
        print(f"| policy | ms / step (median) | speed-up vs one token per value, {against} |")
        print("| --- | --- | --- |")
        for r in acted:
            print(f"| {r['encoding']} | {r['ms_per_step']:.2f} | {r['speedup']:.2f}x |")
        rows += acted
    write_json(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
