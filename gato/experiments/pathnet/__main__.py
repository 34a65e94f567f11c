"""`python -m gato.experiments.pathnet {supervised,rl,gato} [--field value ...]` (or `--config
FILE.json`).

    supervised   task A -> task B on binary 8x8 digit tasks: PathNet vs scratch vs fine-tuning
    rl           PathNet actor-critic transfer between two control tasks (IMPALA learner)
    gato         a GatoModel with PathNet FFNs learns a new task on a fresh pathway: no forgetting

Each writes its results (JSON, a markdown table, a plot) under its `--output_dir` and prints the
table. `python -m gato.experiments.pathnet <experiment> --help` lists the fields.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from gato.cli import Command, parse_command

PROG = "python -m gato.experiments.pathnet"


def _commands() -> dict[str, Command]:
    from gato.experiments.pathnet.gato_experiment import ContinualConfig
    from gato.experiments.pathnet.rl import RLTransferConfig
    from gato.experiments.pathnet.supervised import SupervisedConfig

    return {
        name: Command(text, (config,), config_file=True)
        for name, text, config in (
            ("supervised", "task A -> task B on binary 8x8 digits", SupervisedConfig),
            ("rl", "actor-critic transfer between two control tasks", RLTransferConfig),
            ("gato", "a GatoModel learns a new task on a fresh pathway", ContinualConfig),
        )
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    name, (config,) = parse_command(_commands(), argv, prog=PROG, description=__doc__)
    command = " ".join([PROG, *argv])
    if name == "supervised":
        from gato.experiments.pathnet.supervised import run_supervised

        result = run_supervised(config, command=command)
    elif name == "gato":
        from gato.experiments.pathnet.gato_experiment import run_continual

        result = run_continual(config, command=command)
    else:
        from gato.experiments.pathnet.rl import run_rl_transfer

        result = run_rl_transfer(config, command=command)
    print(result.get("table", json.dumps(result.get("summary", {}), indent=2)))
    return result


if __name__ == "__main__":
    main()
