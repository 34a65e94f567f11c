"""The CPU training step's two precision choices, measured on the default run's own steps.

    python benchmarks/cpu_step_choices.py [--from-step 500] [--batches 10] [--rounds 3]

Builds the default `TrainConfig`'s trainer (the demo mixture, which must be on disk: `python
train.py` builds it), draws `--batches` global batches from `--from-step` on (500: the whole
mixture, after the first lesson's captions), and times `Trainer._train_step` on each of them
under four settings, interleaved batch by batch so that a shared, noisy machine moves all four
alike:

* the head's fused cross-entropy in chunks of 1,024 targets (`LOSS_CHUNK_ROWS`) or of 128
  (`CPU_LOSS_CHUNK_ROWS`, the CPU default);
* the attention under bf16 autocast in bf16, or in fp32 where a gradient is needed
  (`CPU_TRAINING_ATTENTION_DTYPE`, the default).

Each setting trains the same model on (the step changes the weights, not the work). Prints a
table of the median and mean seconds a step and each setting's mean against the first row's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import gato.modeling.layers as layers
import gato.modeling.loss as loss
from gato.training.config import TrainConfig
from gato.training.trainer import Trainer, task_family

SETTINGS = {
    "chunks of 1,024, attention bf16 (before)": (1024, None),
    "chunks of 128, attention bf16": (128, None),
    "chunks of 1,024, attention fp32": (1024, torch.float32),
    "chunks of 128, attention fp32 (default)": (128, torch.float32),
}


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-step", type=int, default=500)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the batches")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches of round one")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.rounds < 1 or args.from_step < 0 or args.warmup < 0:
        parser.error("--batches and --rounds must be >= 1, --from-step and --warmup >= 0")
    if args.rounds == 1 and args.warmup >= args.batches:
        parser.error(f"--warmup {args.warmup} leaves none of {args.batches} batches timed")

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(TrainConfig(output_dir=out, checkpoint_every=10**9, log_every=10**9))
        trainer.data.step = trainer.step = args.from_step
        batches = [next(trainer.data) for _ in range(args.batches)]
        trainer.data.close()
        trainer.model.train()
        saved = loss.CPU_LOSS_CHUNK_ROWS, layers.CPU_TRAINING_ATTENTION_DTYPE
        seconds: dict[str, list[float]] = {name: [] for name in SETTINGS}
        try:
            for round_ in range(args.rounds):
                for index, mixed in enumerate(batches):
                    families = [task_family(mixed.source_names[int(i)]) for i in mixed.source_index]
                    for name, (rows, dtype) in SETTINGS.items():
                        loss.CPU_LOSS_CHUNK_ROWS = rows
                        layers.CPU_TRAINING_ATTENTION_DTYPE = dtype
                        start = time.perf_counter()
                        trainer._train_step(mixed.batch, families)
                        if round_ or index >= args.warmup:
                            seconds[name].append(time.perf_counter() - start)
        finally:
            loss.CPU_LOSS_CHUNK_ROWS, layers.CPU_TRAINING_ATTENTION_DTYPE = saved

    first = statistics.mean(next(iter(seconds.values())))
    print(
        f"default run's steps {args.from_step}-{args.from_step + args.batches - 1}, "
        f"{len(next(iter(seconds.values())))} timed steps a setting, "
        f"{torch.get_num_threads()} threads"
    )
    print("| setting | median s/step | mean s/step | mean / first row |")
    print("| --- | --- | --- | --- |")
    for name, values in seconds.items():
        mean = statistics.mean(values)
        print(f"| {name} | {statistics.median(values):.3f} | {mean:.3f} | {mean / first:.2f} |")
    return seconds


if __name__ == "__main__":
    main()
