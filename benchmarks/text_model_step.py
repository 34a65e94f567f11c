"""The default run's training step under each shipped text model (8k and 32k pieces).

    python benchmarks/text_model_step.py [--from-step 0,500] [--batches 8] [--rounds 2]

A model writes only its text model's pieces (`GatoConfig.text_vocab_size`), so its head costs
in proportion to them: 10,304 ids with `gato_text_8k` against 34,112 with `gato_text_32k`. For
each text model this builds the default `TrainConfig`'s trainer (the demo mixture, which must be
on disk: `python train.py` builds it; the first build of a text model's token caches takes a
minute) and draws `--batches` global batches at each `--from-step` (0: the first lesson's
one-object captions; 500: the whole mixture), then times `Trainer._train_step` on them,
alternating text models batch by batch so that a shared, noisy machine moves both alike. The
two models start from the same seed; the batches hold the same rows tokenized by each text
model. Prints a table of the median and mean seconds a step and the ratio to the 32k model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from gato.files import ASSETS_DIR
from gato.tokens.text_model import TEXT_MODEL_ENV
from gato.training.config import TrainConfig
from gato.training.trainer import Trainer, task_family

TEXT_MODELS = ("gato_text_32k", "gato_text_8k")


def _batches(name: str, out: str, from_step: int, count: int) -> tuple[Trainer, list]:
    """A default trainer tokenizing with text model `name`, and `count` batches from a step."""
    os.environ[TEXT_MODEL_ENV] = str(ASSETS_DIR / "tokenizers" / f"{name}.model")
    trainer = Trainer(TrainConfig(output_dir=out, checkpoint_every=10**9, log_every=10**9))
    trainer.data.step = trainer.step = from_step
    batches = [next(trainer.data) for _ in range(count)]
    trainer.data.close()
    trainer.model.train()
    return trainer, batches


def main(argv: list[str] | None = None) -> dict[tuple[int, str], list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-step", default="0,500", help="comma-separated steps")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the batches")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches of round one")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.from_step.split(",")]
    except ValueError:
        parser.error(f"--from-step must be comma-separated integers, got {args.from_step!r}")
    if args.batches < 1 or args.rounds < 1 or args.warmup < 0 or min(steps) < 0:
        parser.error("--batches and --rounds must be >= 1, --from-step and --warmup >= 0")
    if args.rounds == 1 and args.warmup >= args.batches:
        parser.error(f"--warmup {args.warmup} leaves none of {args.batches} batches timed")

    seconds: dict[tuple[int, str], list[float]] = {}
    saved = os.environ.get(TEXT_MODEL_ENV)
    try:
        for step in steps:
            with tempfile.TemporaryDirectory() as out:
                runs = {
                    name: _batches(name, f"{out}/{name}", step, args.batches)
                    for name in TEXT_MODELS
                }
                for round_ in range(args.rounds):
                    for index in range(args.batches):
                        for name, (trainer, batches) in runs.items():
                            mixed = batches[index]
                            families = [
                                task_family(mixed.source_names[int(i)]) for i in mixed.source_index
                            ]
                            start = time.perf_counter()
                            trainer._train_step(mixed.batch, families)
                            if round_ or index >= args.warmup:
                                seconds.setdefault((step, name), []).append(
                                    time.perf_counter() - start
                                )
    finally:
        if saved is None:
            os.environ.pop(TEXT_MODEL_ENV, None)
        else:
            os.environ[TEXT_MODEL_ENV] = saved

    print(f"default run's steps from {steps}, {torch.get_num_threads()} threads")
    print("| steps from | text model | median s/step | mean s/step | mean / 32k |")
    print("| --- | --- | --- | --- | --- |")
    for (step, name), values in seconds.items():
        mean = statistics.mean(values)
        base = statistics.mean(seconds[(step, TEXT_MODELS[0])])
        median = statistics.median(values)
        print(f"| {step} | {name} | {median:.3f} | {mean:.3f} | {mean / base:.2f} |")
    return seconds


if __name__ == "__main__":
    main()
