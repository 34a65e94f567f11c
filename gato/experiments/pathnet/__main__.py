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

EXPERIMENTS = ("supervised", "rl", "gato")


def _config_type(name: str) -> type:
    if name == "supervised":
        from gato.experiments.pathnet.supervised import SupervisedConfig

        return SupervisedConfig
    if name == "gato":
        from gato.experiments.pathnet.gato_experiment import ContinualConfig

        return ContinualConfig
    from gato.experiments.pathnet.rl import RLTransferConfig

    return RLTransferConfig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from gato.training.trainer import parse_dataclasses

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in EXPERIMENTS:
        got = repr(argv[0]) if argv else "nothing"
        raise SystemExit(
            f"usage: python -m gato.experiments.pathnet {{{','.join(EXPERIMENTS)}}} ... (got {got})"
        )
    name, rest = argv[0], argv[1:]
    (config,) = parse_dataclasses((_config_type(name),), rest)
    command = "python -m gato.experiments.pathnet " + " ".join(argv)
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
