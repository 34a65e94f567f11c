"""The `gato` command: the repository's entry points, runnable from any directory.

    gato [--home DIR] train [train.py options]          = python train.py ...
    gato [--home DIR] eval <command> [options]          = python eval.py ... (control, caption,
                                                          chat, progress, push)
    gato [--home DIR] data <command> [options]          = python -m gato.data ...

Installed as console scripts (`gato`, and `gato-train`, `gato-eval` for the first two) and
runnable as `python -m gato`. `--home DIR` (anywhere on the line) sets `$GATO_HOME`, the folder
generated data and runs go under (`gato.files`); it is applied before the library is imported,
because modules read the home when they are imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gato.files import apply_home_flag

COMMANDS = ("train", "eval", "data")
USAGE = "usage: gato [--home DIR] {train,eval,data} [options]   (gato <command> --help)"


def train(argv: Sequence[str] | None = None) -> None:
    """`python train.py`: the main job, or any training run."""
    args = apply_home_flag(list(sys.argv[1:] if argv is None else argv))
    from gato.training.pipeline import main as train_main

    train_main(args)


def evaluate(argv: Sequence[str] | None = None) -> None:
    """`python eval.py`: evaluate a checkpoint, or push it to the hub (`push`)."""
    args = apply_home_flag(list(sys.argv[1:] if argv is None else argv))
    if args[:1] == ["push"]:
        from gato.training.hub import main as push_main

        push_main(args[1:])
        return
    from gato.evaluation.cli import main as eval_main

    eval_main(args)


def data(argv: Sequence[str] | None = None) -> None:
    """`python -m gato.data`: the task registry, collection, scores."""
    args = apply_home_flag(list(sys.argv[1:] if argv is None else argv))
    from gato.data.__main__ import main as data_main

    raise SystemExit(data_main(args))


def main(argv: Sequence[str] | None = None) -> None:
    args = apply_home_flag(list(sys.argv[1:] if argv is None else argv))
    if not args:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    if args[0] in ("-h", "--help"):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        raise SystemExit(0)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"{USAGE}\ngato: unknown command {command!r}", file=sys.stderr)
        raise SystemExit(2)
    {"train": train, "eval": evaluate, "data": data}[command](rest)


if __name__ == "__main__":
    main()
