"""Training throughput with the real input pipeline against the model-only step, in one run.

    python benchmarks/train_pipeline.py [--mixture demo] [--steps 30] [--warmup 5]

Both paths train the same preset with the same optimizer and precision on the same batches: the
model-only path steps through batches made beforehand and held in memory (no data work at all);
the pipeline path is `gato.training.trainer.Trainer`'s loop drawing each batch from the mixture's
loader.
Goal: pipeline >= 90% of the model-only tokens/s (the data never holds the step back). Needs the
mixture's data (`python -m gato.data.build demo`).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixture", default="demo")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per path")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--global-batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--mixed-precision", default="auto")
    args = parser.parse_args()

    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            preset=args.preset,
            mixture=args.mixture,
            steps=args.warmup + args.steps,
            global_batch=args.global_batch,
            context=args.context,
            mixed_precision=args.mixed_precision,
            output_dir=out,
            checkpoint_every=10**9,
            log_every=10**9,
        )
        trainer = Trainer(config)
        total = args.warmup + args.steps
        # The same batches for both paths: drawn once into memory here, then again by the loop.
        start_state = trainer.data.state_dict()
        made = [next(trainer.data) for _ in range(total)]
        model_only = []
        for step, mixed in enumerate(made):
            names = [mixed.source_names[int(i)].split("-")[0] for i in mixed.source_index]
            start = time.perf_counter()
            log = trainer._train_step(mixed.batch, names)
            if step >= args.warmup:
                model_only.append((log.tokens, time.perf_counter() - start))
        trainer.data.load_state_dict(start_state)
        logs = trainer.train()
        pipeline = [(log.tokens, log.seconds) for log in logs[args.warmup :]]

    def rate(samples: list[tuple[int, float]]) -> float:
        return sum(t for t, _ in samples) / sum(s for _, s in samples)

    ours, base = rate(pipeline), rate(model_only)
    print(
        f"{args.preset}, mixture {args.mixture}, global batch {args.global_batch} x "
        f"{args.context}, {args.steps} timed steps, {torch.get_num_threads()} threads"
    )
    print("| path | tokens/s | ms/step |")
    print("| --- | --- | --- |")
    for name, samples in (
        ("model only (batches in memory)", model_only),
        ("real pipeline", pipeline),
    ):
        ms = 1e3 * sum(s for _, s in samples) / len(samples)
        print(f"| {name} | {rate(samples):,.0f} | {ms:.0f} |")
    print(f"pipeline / model-only: {ours / base:.2f} (goal >= 0.90)")


if __name__ == "__main__":
    main()
