"""Training-step throughput of `GatoModel`: forward + backward + AdamW step, tokens per second.

CPU (default): the `tiny` preset at context 1024 in fp32 eager, with `torch.compile` (each decoder
block compiled) and under bf16 autocast, beside a `transformers` `LlamaForCausalLM` of the same
depth, width, heads and vocabulary fed the same token ids (its SwiGLU MLP sized to our MLP's
parameters, i.e. 2/3 of the FF size, unless `--baseline-ff same`).

    python benchmarks/train_step.py --steps 5 --warmup 2 --baseline-bf16 [--threads 1]

CUDA: the presets 79m, 364m, 1.18b in bf16 autocast with `torch.compile`, at the largest batch
that fits (doubling from `--batch-size` until out of memory, unless `--no-search`), reporting
achieved TFLOP/s and MFU against the H100's 989 TFLOP/s dense bf16 peak:

    FLOPs per token = 6 N + 12 n_layers T H d_head
    (N: parameters in matmuls, i.e. all but the position/lookup tables, the tied token table
    counted once as the head; the second term: attention scores and values, forward + backward,
    at context T, not halved for causality; Chowdhery et al. 2022, appendix B.)

    python benchmarks/train_step.py --device cuda
    python benchmarks/train_step.py --device cuda --dry-run   # on a CPU: build the presets on
        `meta`, count FLOPs, run the batch search with the tiny preset on the CPU

`--compare-decoders` times the decoder stacks alone (ours, transformers' GPTNeoXModel and
LlamaModel fed `inputs_embeds` of the same shape): the measurement behind the choice of decoder
in `gato/modeling/model.py`.
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gato.modeling.config import GatoConfig
from gato.modeling.model import GatoModel
from gato.modeling.rotary import rotary_cos_sin

H100_BF16_PEAK = 989e12


@dataclass
class Row:
    name: str
    params: int
    batch_size: int
    tokens_per_s: float
    step_s: float
    note: str = ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--presets", nargs="+", default=None, help="default: tiny (cpu) / 79m 364m 1.18b (cuda)"
    )
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=None, help="default 4 (cpu), 8 (cuda)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["eager", "compile", "bf16"],
        choices=["eager", "compile", "bf16"],
        help="CPU modes for our model",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip LlamaForCausalLM")
    parser.add_argument("--baseline-ff", default="matched", choices=["matched", "same"])
    parser.add_argument("--baseline-bf16", action="store_true", help="also time Llama in bf16")
    parser.add_argument(
        "--compare-decoders",
        action="store_true",
        help="only time the decoder stacks (ours, GPTNeoXModel, LlamaModel) of the first preset",
    )
    parser.add_argument("--no-search", action="store_true", help="cuda: fixed --batch-size")
    parser.add_argument("--max-batch-size", type=int, default=256)
    parser.add_argument("--dry-run", action="store_true", help="build models on meta, no steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.presets is None:
        args.presets = ["tiny"] if args.device == "cpu" else ["79m", "364m", "1.18b"]
    if args.batch_size is None:
        args.batch_size = 4 if args.device == "cpu" else 8
    return args


# ---------------------------------------------------------------------------------------------
# Models and steps
# ---------------------------------------------------------------------------------------------


def llama_baseline(config: GatoConfig, ff: str):
    """A LlamaForCausalLM with our depth, width, heads, head size and (tied) vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    intermediate = config.intermediate_size
    if ff == "matched":
        # SwiGLU has three matrices: 2/3 of the FF size gives the same parameters and FLOPs.
        intermediate = 8 * round(config.intermediate_size * 2 / 3 / 8)
    llama_config = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=intermediate,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )
    model = LlamaForCausalLM._from_config(llama_config, attn_implementation="sdpa")
    return model, f"SwiGLU MLP, FF {intermediate} ({ff})"


def matmul_params(model: GatoModel) -> int:
    """Parameters that take part in matmuls: all but the lookup tables (tied table counted once
    as the head)."""
    emb = model.embedding
    lookups = [emb.patch_rows, emb.patch_cols, emb.local_positions]
    skip = sum(p.numel() for m in lookups for p in m.parameters())
    return sum(p.numel() for p in model.parameters()) - skip


def flops_per_token(model: GatoModel, seq_len: int) -> float:
    cfg = model.config
    attention = 12 * cfg.num_hidden_layers * seq_len * cfg.num_attention_heads * cfg.head_dim
    return 6 * matmul_params(model) + attention


def make_batch(batch_size: int, seq_len: int, device: str, seed: int) -> dict[str, torch.Tensor]:
    """Text-like ids in [0, 32000), every token a target: the same ids for both models."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 32000, (batch_size, seq_len), generator=g)
    return {
        "input_ids": ids.to(device),
        "loss_mask": torch.ones(batch_size, seq_len, dtype=torch.bool, device=device),
    }


def gato_step_fn(model: GatoModel, batch, autocast: torch.dtype | None) -> Callable[[], float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    device_type = batch["input_ids"].device.type

    def step() -> float:
        with torch.autocast(device_type, dtype=autocast or torch.float32, enabled=bool(autocast)):
            loss = model(**batch, use_cache=False, validate=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def llama_step_fn(model, batch, autocast: torch.dtype | None) -> Callable[[], float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    ids = batch["input_ids"]

    def step() -> float:
        with torch.autocast(
            ids.device.type, dtype=autocast or torch.float32, enabled=bool(autocast)
        ):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def time_steps(step: Callable[[], float], warmup: int, steps: int, sync: Callable[[], None]):
    """Seconds per step: the fastest of the timed steps (the machine is shared, and other work
    only ever slows a step down), after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - start)
    if not math.isfinite(loss):
        raise RuntimeError(f"non-finite loss {loss}")
    return min(times)


def time_round_robin(
    steps_by_name: dict[str, Callable[[], float]], warmup: int, steps: int
) -> dict[str, float]:
    """Like `time_steps` for several contenders on the CPU, taking turns step by step so that
    a change in the machine's load hits all of them alike."""
    for step in steps_by_name.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for _ in range(steps):
        for name, step in steps_by_name.items():
            start = time.perf_counter()
            loss = step()
            times[name].append(time.perf_counter() - start)
            if not math.isfinite(loss):
                raise RuntimeError(f"{name}: non-finite loss {loss}")
    return {name: min(t) for name, t in times.items()}


def compile_blocks(model: GatoModel) -> None:
    """Compile each decoder block in place: the loop, validation and the loss gather (a
    data-dependent shape) stay eager, so there are no graph breaks inside what is compiled."""
    for block in model.layers:
        block.compile()


# ---------------------------------------------------------------------------------------------
# CPU
# ---------------------------------------------------------------------------------------------


def run_cpu(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    tokens = args.batch_size * args.seq_len
    labels = {"eager": "fp32 eager", "compile": "fp32 torch.compile", "bf16": "bf16 autocast"}
    for preset in args.presets:
        config = GatoConfig.from_preset(preset)
        batch = make_batch(args.batch_size, args.seq_len, "cpu", args.seed)
        contenders: dict[str, tuple[Callable[[], float], int, str]] = {}
        for mode in args.modes:
            torch.manual_seed(args.seed)
            model = GatoModel(config).train()
            if mode == "compile":
                compile_blocks(model)
            autocast = torch.bfloat16 if mode == "bf16" else None
            step = gato_step_fn(model, batch, autocast)
            contenders[f"gato {preset} {labels[mode]}"] = (step, _count(model), "GELU MLP, RoPE")
        if not args.no_baseline:
            for mode in ["eager"] + (["bf16"] if args.baseline_bf16 else []):
                torch.manual_seed(args.seed)
                llama, note = llama_baseline(config, args.baseline_ff)
                autocast = torch.bfloat16 if mode == "bf16" else None
                step = llama_step_fn(llama.train(), batch, autocast)
                contenders[f"LlamaForCausalLM {labels[mode]}"] = (step, _count(llama), note)
        seconds = time_round_robin(
            {name: c[0] for name, c in contenders.items()}, args.warmup, args.steps
        )
        for name, (_, params, note) in contenders.items():
            s = seconds[name]
            rows.append(Row(name, params, args.batch_size, tokens / s, s, note))
    return rows


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def compare_decoders(args: argparse.Namespace) -> list[Row]:
    """Decoder stacks alone, fed the same (B, T, D) inputs: forward + backward, fp32."""
    from transformers import GPTNeoXConfig, GPTNeoXModel, LlamaConfig, LlamaModel

    config = GatoConfig.from_preset(args.presets[0])
    b, t, d = args.batch_size, args.seq_len, config.hidden_size
    common = dict(
        vocab_size=64,  # the decoders are fed inputs_embeds; keep their unused tables small
        hidden_size=d,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        max_position_embeddings=t,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    neox = GPTNeoXModel._from_config(
        GPTNeoXConfig(
            **common,
            intermediate_size=config.intermediate_size,
            rotary_pct=1.0,
            use_parallel_residual=False,
            attention_bias=False,
        ),
        attn_implementation="sdpa",
    )
    llama = LlamaModel._from_config(
        LlamaConfig(
            **common,
            head_dim=config.head_dim,
            intermediate_size=8 * round(config.intermediate_size * 2 / 3 / 8),
        ),
        attn_implementation="sdpa",
    )
    gato = GatoModel(config)
    x = torch.randn(b, t, d)
    positions = torch.arange(t).expand(b, t)

    def ours() -> torch.Tensor:
        cos, sin = rotary_cos_sin(positions, config.head_dim, config.rope_theta)
        h = x
        for block in gato.layers:
            h = block(h, cos, sin)
        return gato.norm(h)

    stacks = {
        "gato decoder (GELU MLP, RoPE, SDPA is_causal)": (ours, gato.layers),
        "transformers GPTNeoXModel (GELU MLP, RoPE)": (
            lambda: neox(inputs_embeds=x, use_cache=False).last_hidden_state,
            neox.layers,
        ),
        "transformers LlamaModel (SwiGLU, param-matched)": (
            lambda: llama(inputs_embeds=x, use_cache=False).last_hidden_state,
            llama.layers,
        ),
    }

    def make_step(forward: Callable[[], torch.Tensor]) -> Callable[[], float]:
        def step() -> float:
            out = forward()
            out.float().square().mean().backward()
            return 0.0

        return step

    seconds = time_round_robin(
        {name: make_step(forward) for name, (forward, _) in stacks.items()},
        args.warmup,
        args.steps,
    )
    return [
        Row(name, _count(layers), b, b * t / seconds[name], seconds[name])
        for name, (_, layers) in stacks.items()
    ]


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


def run_cuda(args: argparse.Namespace) -> list[Row]:
    rows = []
    if args.dry_run:
        for preset in args.presets:
            with torch.device("meta"):
                model = GatoModel(GatoConfig.from_preset(preset))
            flops = flops_per_token(model, args.seq_len)
            print(
                f"[dry-run] {preset}: {_count(model) / 1e6:.1f}M parameters, "
                f"{matmul_params(model) / 1e6:.1f}M in matmuls, "
                f"{flops / 1e9:.2f} GFLOP per token at T={args.seq_len}"
            )
        # The search and the step, on the CPU with the tiny preset and a short context.
        small = argparse.Namespace(**{**vars(args), "seq_len": 64, "warmup": 0, "steps": 1})
        small.max_batch_size = 2 * small.batch_size
        found = search_batch_size(GatoConfig.from_preset("tiny"), small, "cpu", compile=False)
        print(f"[dry-run] batch search on cpu (tiny, T=64): {found}")
        return rows
    torch.backends.cuda.matmul.allow_tf32 = True
    for preset in args.presets:
        config = GatoConfig.from_preset(preset)
        result = search_batch_size(config, args, "cuda", compile=True)
        if result is None:
            print(f"{preset}: batch {args.batch_size} does not fit")
            continue
        batch_size, seconds = result
        with torch.device("meta"):
            model = GatoModel(config)
        tokens_per_s = batch_size * args.seq_len / seconds
        achieved = flops_per_token(model, args.seq_len) * tokens_per_s
        rows.append(
            Row(
                f"gato {preset} bf16 compile",
                _count(model),
                batch_size,
                tokens_per_s,
                seconds,
                f"{achieved / 1e12:.0f} TFLOP/s, MFU {achieved / H100_BF16_PEAK:.1%}",
            )
        )
    return rows


def search_batch_size(
    config: GatoConfig, args: argparse.Namespace, device: str, compile: bool
) -> tuple[int, float] | None:
    """Double the batch from `args.batch_size` while a step fits (up to `max_batch_size`, or
    just the one size with `--no-search`); return (largest batch that fit, its s/step)."""
    batch_size, result = args.batch_size, None
    while True:
        try:
            seconds = _trial(config, args, batch_size, device, compile)
        except torch.OutOfMemoryError:
            seconds = None
        finally:
            gc.collect()
            torch._dynamo.reset()  # compiled graphs hold on to the model's tensors
            if device == "cuda":
                torch.cuda.empty_cache()
        if seconds is None:
            break
        result = (batch_size, seconds)
        if args.no_search or batch_size * 2 > args.max_batch_size:
            break
        batch_size *= 2
    return result


def _trial(
    config: GatoConfig, args: argparse.Namespace, batch_size: int, device: str, compile: bool
) -> float:
    torch.manual_seed(args.seed)
    model = GatoModel(config).to(device).train()
    if compile:
        compile_blocks(model)
    batch = make_batch(batch_size, args.seq_len, device, args.seed)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    step = gato_step_fn(model, batch, torch.bfloat16)
    return time_steps(step, args.warmup, args.steps, sync)


# ---------------------------------------------------------------------------------------------


def print_table(rows: list[Row], title: str, baseline: str | None = None) -> None:
    ref = next((r for r in rows if baseline and r.name.startswith(baseline)), None)
    print(f"\n{title}")
    print("| model | params | batch | tokens/s | s/step | vs baseline | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ratio = f"{r.tokens_per_s / ref.tokens_per_s:.2f}" if ref else ""
        print(
            f"| {r.name} | {r.params / 1e6:.2f}M | {r.batch_size} | {r.tokens_per_s:,.0f} | "
            f"{r.step_s:.2f} | {ratio} | {r.note} |"
        )


def _print_ratios(rows: list[Row]) -> None:
    """Ours over the baseline at the same precision (the goal is >= 1.0)."""
    by_name = {r.name: r for r in rows}
    for ours, base in [("fp32 eager", "fp32 eager"), ("bf16 autocast", "bf16 autocast")]:
        mine = [r for r in rows if r.name.startswith("gato") and r.name.endswith(ours)]
        theirs = by_name.get(f"LlamaForCausalLM {base}")
        for r in mine:
            if theirs:
                ratio = r.tokens_per_s / theirs.tokens_per_s
                print(f"ratio {r.name} / LlamaForCausalLM {base}: {ratio:.2f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        f"context {args.seq_len}, batch {args.batch_size}, warmup {args.warmup}, "
        f"steps {args.steps}"
    )
    if args.device == "cuda":
        rows = run_cuda(args)
        if rows:
            print_table(rows, "Training step, bf16 autocast + torch.compile (CUDA)")
        return
    if args.compare_decoders:
        print_table(
            compare_decoders(args),
            f"Decoder stacks alone ({args.presets[0]} shape), forward + backward, fp32",
            baseline="transformers LlamaModel",
        )
        return
    rows = run_cpu(args)
    _print_ratios(rows)
    print_table(
        rows,
        "Training step: forward + backward + AdamW (CPU)",
        baseline=None if args.no_baseline else "LlamaForCausalLM fp32",
    )


if __name__ == "__main__":
    main()
