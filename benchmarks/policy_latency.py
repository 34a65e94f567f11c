"""Milliseconds per environment step of `GatoPolicy`: observation prefill + every action token.

Two synthetic tasks with the shapes that matter for latency:
- dmc-like: 30 continuous observation values (30 tokens + separator), 6 continuous action tokens
  (1 prefill + 5 one-token steps per environment step);
- atari-like: an 84x84x4 frame stack (25 patches + separator), 1 discrete action token
  (1 prefill per step).
A random-init model of each preset (latency does not depend on the weights), a prompt filling
`--prompt-fraction` of the context, then `--steps` timed steps after `--warmup`; the context
slides as in deployment (its cost is in the mean, not in the median).

Modes: `dynamic` (growing cache, the flattened forward; a greedy action in one call),
`dynamic-compile` (the same, `torch.compile`d once with symbolic sizes: the CPU's fast path),
`static` (fixed-capacity cache, fixed shapes), `graphs` (static + CUDA graphs, CUDA only),
`compile` (static + torch.compile, + CUDA graphs on CUDA).

`--interleave` steps every mode's policy in turn inside one process (same observations, same
moments of the machine), so that the modes' ratios hold on a shared, noisy machine; the actions
of every mode are checked equal to the first mode's.

    python benchmarks/policy_latency.py                      # CPU, tiny, 1 thread
    python benchmarks/policy_latency.py --device cuda --presets 79m 364m 1.18b \\
        --modes dynamic graphs compile --dtype bfloat16
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from gato.modeling.config import GatoConfig
from gato.modeling.model import GatoModel
from gato.policy import GatoPolicy, PolicyConfig
from gato.schema import ActionSpec
from gato.tokens.tokenizer import GatoTokenizer


@dataclass(frozen=True)
class TaskShape:
    name: str
    spec: ActionSpec
    observation_tokens: int

    def observation(self, rng: np.random.Generator) -> dict:
        if self.name == "atari-like":
            return {"image_observations": rng.integers(0, 256, (84, 84, 4), dtype=np.uint8)}
        values = rng.normal(size=self.observation_tokens).astype(np.float32)
        return {"continuous_observations": values}

    def prompt(self, tokenizer: GatoTokenizer, tokens: int, rng: np.random.Generator):
        per_step = self.observation_tokens + 1 + self.spec.num_tokens
        steps = max(1, tokens // per_step)
        observations = {
            k: np.stack([v] * steps) for k, v in self.observation(rng).items()
        }  # (T, ...)
        if self.spec.kind == "discrete":
            actions = {"discrete": rng.integers(0, self.spec.num_values, steps)}
        else:
            actions = {"continuous": rng.uniform(-1, 1, (steps, *self.spec.shape))}
        return tokenizer.encode_episode(observations, actions, self.spec)


TASKS = {
    "dmc": TaskShape("dmc-like", ActionSpec("continuous", (6,)), 30),
    "atari": TaskShape("atari-like", ActionSpec("discrete", (), num_values=18), 25),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def policy_config(mode: str, device: torch.device, slide: str) -> PolicyConfig:
    return PolicyConfig(
        slide=slide,
        static_cache=mode not in ("dynamic", "dynamic-compile"),
        cuda_graphs=mode in ("graphs", "compile") and device.type == "cuda",
        compile=mode in ("compile", "dynamic-compile"),
    )


def measure_modes(
    preset: str,
    task: TaskShape,
    modes: list[str],
    device: torch.device,
    dtype: torch.dtype,
    steps: int,
    warmup: int,
    prompt_fraction: float,
    num_envs: int,
    slide: str = "shift",
) -> list[dict]:
    """One policy per mode over one model, stepped in turn on the same observations: every
    mode's step i runs within moments of the others' (their ratios survive a noisy machine);
    their actions must agree (greedy decoding of the same model)."""
    torch.manual_seed(0)
    model = GatoModel(GatoConfig.from_preset(preset)).to(device=device, dtype=dtype).eval()
    tokenizer = GatoTokenizer.from_config(model.config)
    rng = np.random.default_rng(0)
    context = model.config.max_position_embeddings
    prompt = task.prompt(tokenizer, int(prompt_fraction * context), rng)
    policies = [
        GatoPolicy(
            model, tokenizer, task.spec, prompt, policy_config(m, device, slide), num_envs=num_envs
        )
        for m in modes
    ]
    observations = [[task.observation(rng) for _ in range(num_envs)] for _ in range(16)]
    times: list[list[float]] = [[] for _ in modes]
    mismatches = 0
    for i in range(warmup + steps):
        batch = observations[i % len(observations)]
        actions = []
        for policy, spent in zip(policies, times, strict=True):
            synchronize(device)
            start = time.perf_counter()
            actions.append(policy.act_batch(batch))
            synchronize(device)
            if i >= warmup:
                spent.append(time.perf_counter() - start)
        first = np.asarray(actions[0])
        mismatches += sum(not np.array_equal(first, np.asarray(a)) for a in actions[1:])
    rows = []
    for mode, spent in zip(modes, times, strict=True):
        ms = np.array(spent) * 1e3
        mean = float(ms.mean())
        rows.append(
            {
                "preset": preset,
                "task": task.name,
                "mode": mode if slide == "shift" else f"{mode}, {slide}",
                "envs": num_envs,
                "prompt": len(prompt),
                "mean_ms": mean,
                "p50_ms": float(np.percentile(ms, 50)),
                "p90_ms": float(np.percentile(ms, 90)),
                "steps_per_s": num_envs * 1e3 / mean,
                "mismatched_steps": mismatches,
            }
        )
    return rows


def dry_run(presets: list[str], bandwidth_tb_s: float) -> None:
    """What the GPU run would do, without a GPU: each preset built on the meta device (no
    memory), its bf16 weights and KV cache, and the memory-bandwidth floor of a step (every
    forward reads the block weights and the full cache once: decoding one row is bound by it).
    Then the static cache path runs a few steps on a CPU model with the GPU run's options."""
    print(f"[dry-run] floor = forwards x (bf16 weights read + KV cache) / {bandwidth_tb_s} TB/s\n")
    print(
        "| preset | parameters | bf16 read per forward | KV cache (1 row) | dmc-like floor "
        "| atari floor |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for preset in presets:
        with torch.device("meta"):
            model = GatoModel(GatoConfig.from_preset(preset))
        cfg = model.config
        params = sum(p.numel() for p in model.parameters())
        # A forward reads the blocks' weights; of the 34,112-row token table only the looked-up
        # rows and the action range of the head (1,024 rows at most).
        read = sum(p.numel() for p in model.layers.parameters()) + 1024 * cfg.hidden_size
        weights = 2 * read
        kv = 2 * 2 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim
        kv *= cfg.max_position_embeddings
        per_forward_ms = (weights + kv) / (bandwidth_tb_s * 1e12) * 1e3  # weights + a full cache
        dmc = TASKS["dmc"].spec.num_tokens * per_forward_ms  # 1 prefill + 5 one-token steps
        atari = TASKS["atari"].spec.num_tokens * per_forward_ms
        print(
            f"| {preset} | {params / 1e6:,.1f}M | {weights / 2**30:.2f} GiB | "
            f"{kv / 2**20:.0f} MiB | {dmc:.2f} ms | {atari:.2f} ms |"
        )
    torch.manual_seed(0)
    model = GatoModel(GatoConfig.from_preset("tiny")).eval()
    tokenizer = GatoTokenizer.from_config(model.config)
    rng = np.random.default_rng(0)
    for name, task in TASKS.items():
        config = PolicyConfig(static_cache=True, cuda_graphs=True)  # graphs: CUDA only, skipped
        policy = GatoPolicy(model, tokenizer, task.spec, task.prompt(tokenizer, 256, rng), config)
        for _ in range(3):
            policy.act(task.observation(rng))
        print(f"[dry-run] static-cache policy, {name}: 3 steps on the CPU ok")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=None, help="default: tiny on the CPU")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument(
        "--modes",
        nargs="+",
        default=None,
        choices=["dynamic", "dynamic-compile", "static", "graphs", "compile"],
        help="default: dynamic dynamic-compile (CPU), dynamic graphs (CUDA)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="step the modes in turn in one process (compare their ratios on a noisy machine)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--prompt-fraction", type=float, default=0.5)
    parser.add_argument("--envs", type=int, default=1, help="environments in lockstep")
    parser.add_argument("--slide", default="shift", choices=["shift", "recompute"])
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="no GPU needed: sizes and bandwidth floors of the GPU presets, static path on CPU",
    )
    parser.add_argument(
        "--bandwidth", type=float, default=3.0, help="dry run: device memory TB/s (H100 ~3.0)"
    )
    args = parser.parse_args(argv)

    if args.dry_run:
        dry_run(args.presets or ["79m", "364m", "1.18b"], args.bandwidth)
        return []
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if not cuda:
        torch.set_num_threads(args.threads)
        bad = {"graphs"} & set(args.modes or [])
        if bad:
            parser.error(f"modes {sorted(bad)} need a CUDA device")
    presets = args.presets or (["79m", "364m", "1.18b"] if cuda else ["tiny"])
    modes = args.modes or (["dynamic", "graphs"] if cuda else ["dynamic", "dynamic-compile"])
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {args.threads} thread(s)"
    print(f"# {where}, {dtype}, torch {torch.__version__}, envs {args.envs}, slide {args.slide}\n")
    print("| preset | task | mode | prompt | ms/step mean | p50 | p90 | steps/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for preset in presets:
        for name in args.tasks:
            groups = [modes] if args.interleave else [[m] for m in modes]
            for group in groups:
                measured = measure_modes(
                    preset,
                    TASKS[name],
                    group,
                    device,
                    dtype,
                    args.steps,
                    args.warmup,
                    args.prompt_fraction,
                    args.envs,
                    args.slide,
                )
                for r in measured:
                    rows.append(r)
                    cells = [preset, r["task"], r["mode"], r["prompt"], f"{r['mean_ms']:.2f}"]
                    cells += [f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}"]
                    cells += [f"{r['steps_per_s']:,.0f}"]
                    print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
                if measured[0]["mismatched_steps"]:
                    print(f"(modes disagreed on {measured[0]['mismatched_steps']} actions)")
    return rows


if __name__ == "__main__":
    main()
