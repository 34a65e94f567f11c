"""Atari frames as patch tokens against one position a frame: training timesteps/s, policy step.

An Atari-like task (84x84x4 frame stacks, 18 discrete actions), the same model depth and width,
the same timesteps per batch, three ways an image enters (`contenders`):

* "patches": Gato's, the stack resized to 80x80 and cut into 25 patch tokens of 16 pixels, each
  through the ResNet patch block (27 positions a timestep);
* "frame groups": the same 25 patch tokens from the tokenizer, one position inside the model,
  the Nature DQN's convolutions on the frame put back together (`GatoConfig.frame_group` 5;
  3 positions a timestep) while a picture's patches would stay tokens;
* "one patch a frame": the tokenizer cuts 84-pixel patches, so every image is one token
  (`patch_size` 84, `patch_encoder` "nature"; 3 positions a timestep, captions included).

Each part is interleaved in one process (every contender's step i runs within moments of the
others'), so the ratios survive a shared, noisy machine: training, one AdamW step (forward,
backward, update) per call, environment timesteps per second (median); acting, `GatoPolicy`'s
milliseconds per environment step on the eager cache with a demonstration prompt of about half
the context (median).

    python benchmarks/frame_groups.py                       # both tables, tiny preset, 1 thread
    python benchmarks/frame_groups.py --part train --steps 10 --json out.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grouped_encoding import add_timing_arguments, interleaved, train_step, write_json  # noqa: E402

from gato.modeling.config import GatoConfig
from gato.modeling.groups import compact_length
from gato.modeling.model import GatoModel
from gato.policy import GatoPolicy, PolicyConfig
from gato.schema import ActionSpec
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer

NUM_ACTIONS = 18


def contenders() -> dict[str, dict[str, Any]]:
    """{name: GatoConfig fields}."""
    return {
        "patches": {},
        "frame groups": {"frame_group": 5},
        "one patch a frame": {"patch_size": 84, "patch_encoder": "nature"},
    }


def frames(rng: np.random.Generator, steps: int) -> np.ndarray:
    """(T, 84, 84, 4) uint8: a grey field with a ball and a paddle, as Pong's stacks look."""
    out = np.full((steps, 84, 84, 4), 87, dtype=np.uint8)
    for t in range(steps):
        y, x = rng.integers(0, 80, 2)
        out[t, y : y + 2, x : x + 2] = 236
        out[t, (7 * t) % 60 : (7 * t) % 60 + 16, 76:78] = 92
    return out


def episode(tokenizer: GatoTokenizer, steps: int, rng: np.random.Generator) -> TokenSequence:
    return tokenizer.encode_episode(
        {"image_observations": frames(rng, steps)},
        {"discrete_actions": rng.integers(0, NUM_ACTIONS, steps)},
        ActionSpec("discrete", (), num_values=NUM_ACTIONS),
    )


def make_model(preset: str, fields: dict[str, Any], context: int) -> GatoModel:
    torch.manual_seed(0)
    config = GatoConfig.from_preset(preset, max_position_embeddings=context, **fields)
    return GatoModel(config)


def measure_training(args: argparse.Namespace) -> list[dict]:
    setups = {}
    for name, fields in contenders().items():
        tokenizer = GatoTokenizer(patch_size=fields.get("patch_size", 16))
        rng = np.random.default_rng(0)
        rows = [episode(tokenizer, args.window, rng) for _ in range(args.rows)]
        batch = collate(rows).as_dict()
        model = make_model(args.preset, fields, max(len(r) for r in rows)).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        # The positions the model compacts a row to (`compact_length`, the policy's count).
        positions = compact_length(
            rows[0].ids, rows[0].local_positions, 0, 0, True, fields.get("frame_group", 0)
        )
        per_step = (len(rows[0]) // args.window, positions // args.window)
        setups[name] = (model, optimizer, batch, *per_step)
    calls = {
        name: lambda i, m=model, o=optimizer, b=batch: train_step(m, o, b)
        for name, (model, optimizer, batch, *_) in setups.items()
    }
    times = interleaved(calls, args.warmup, args.steps)
    timesteps = args.rows * args.window
    base = statistics.median(times["patches"])
    return [
        {
            "part": "train",
            "contender": name,
            "tokens_per_timestep": setups[name][3],
            "positions_per_timestep": setups[name][4],
            "ms_per_step": statistics.median(spent) * 1e3,
            "timesteps_per_s": timesteps / statistics.median(spent),
            "speedup": base / statistics.median(spent),
        }
        for name, spent in times.items()
    ]


def measure_acting(args: argparse.Namespace) -> list[dict]:
    spec = ActionSpec("discrete", (), num_values=NUM_ACTIONS)
    context = args.context
    policies = {}
    rng = np.random.default_rng(1)
    observations = [{"image_observations": f} for f in frames(rng, 16)]
    prompts = {}
    for name, fields in contenders().items():
        tokenizer = GatoTokenizer(patch_size=fields.get("patch_size", 16))
        per_step = len(episode(tokenizer, 1, np.random.default_rng(2)))
        # A prompt of about half the context, in the tokens the policy's window counts.
        prompts[name] = episode(tokenizer, max(1, context // 2 // per_step), rng)
        model = make_model(args.preset, fields, context).eval()
        policies[name] = GatoPolicy(model, tokenizer, spec, prompts[name], PolicyConfig())
    calls = {
        name: lambda i, p=policy: p.act(observations[i % len(observations)])
        for name, policy in policies.items()
    }
    with torch.no_grad():
        times = interleaved(calls, args.warmup, args.policy_steps)
    base = statistics.median(times["patches"])
    return [
        {
            "part": "act",
            "contender": name,
            "prompt_tokens": len(prompts[name]),
            "ms_per_step": statistics.median(spent) * 1e3,
            "speedup": base / statistics.median(spent),
        }
        for name, spent in times.items()
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(parser, rows=4, window=8)
    parser.add_argument("--context", type=int, default=1024, help="the policy's context")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--policy-steps", type=int, default=100, help="timed policy steps")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    for name in ("rows", "window", "context", "steps", "policy_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    torch.set_num_threads(args.threads)
    print(f"# CPU, {args.threads} thread(s), preset {args.preset}\n")
    rows: list[dict] = []
    if args.part in ("train", "both"):
        trained = measure_training(args)
        print(
            f"Training: 84x84x4 frames, {NUM_ACTIONS} actions, {args.rows} rows x "
            f"{args.window} timesteps per batch\n"
        )
        print("| contender | tokens / timestep | positions / timestep | ms / step | timesteps / s "
              "| speed-up |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- |")
        for r in trained:
            print(
                f"| {r['contender']} | {r['tokens_per_timestep']} | "
                f"{r['positions_per_timestep']} | {r['ms_per_step']:.1f} | "
                f"{r['timesteps_per_s']:,.0f} | {r['speedup']:.2f}x |"
            )
        rows += trained
    if args.part in ("act", "both"):
        acted = measure_acting(args)
        print(f"\nActing: a context of {args.context}, a prompt of about half of it\n")
        print("| contender | prompt tokens | ms / step (median) | speed-up vs patches |")
        print("| --- | --- | --- | --- |")
        for r in acted:
            print(
                f"| {r['contender']} | {r['prompt_tokens']} | {r['ms_per_step']:.2f} | "
                f"{r['speedup']:.2f}x |"
            )
        rows += acted
    write_json(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
