"""`python -m gato.experiments.few_shot [--field value ...]` (or `--config FILE.json`): the
few-shot transfer experiment (`experiment.py`); `--help` lists the fields."""

from __future__ import annotations

from collections.abc import Sequence

from gato.experiments.few_shot.experiment import FewShotConfig, results_markdown, run


def main(argv: Sequence[str] | None = None) -> None:
    from gato.cli import parse

    config = parse(
        FewShotConfig,
        argv,
        prog="python -m gato.experiments.few_shot",
        description=FewShotConfig.__doc__,
        config_file=True,
    )
    print(results_markdown(run(config)))


if __name__ == "__main__":
    main()
