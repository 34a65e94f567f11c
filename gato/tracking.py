"""Metric trackers, `--report_to tensorboard|wandb|none`, as transformers' Trainer spells it.

Training hands the name to accelerate, which opens its own trackers (they must follow its
processes); evaluation opens one here. Both check the name with `check_report_to`, so a bad name
fails the same way before anything runs.

    with open_tracker("tensorboard", run / "eval_logs" / "control", config=vars(args)) as tracker:
        tracker.log({"eval/gym-pendulum/normalized_score": 0.4}, step=2000)

`wandb` is an optional extra (`pip install "gato[wandb]"`); its mode comes from `WANDB_MODE`
(`offline` writes the run to disk for a later `wandb sync`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["REPORT_TO", "Tracker", "check_installed", "check_report_to", "open_tracker"]

REPORT_TO = ("tensorboard", "wandb", "none")
"""Metric trackers, spelt as transformers' Trainer spells `report_to` (wandb is an extra)."""


def check_report_to(name: str) -> str:
    """`name` if it is one of `REPORT_TO`; otherwise a ValueError naming it and the choices."""
    if name not in REPORT_TO:
        raise ValueError(f"report_to must be one of {list(REPORT_TO)}, got {name!r}")
    return name


_WANDB_MISSING = (
    'report_to "wandb" needs the wandb extra: pip install "gato[wandb]" '
    '(from a checkout: pip install -e ".[wandb]")'
)


def check_installed(name: str) -> str:
    """`name` if its library can be imported, so that a long evaluation does not find out at its
    end; otherwise a ValueError saying which extra to install."""
    import importlib.util

    if check_report_to(name) == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ValueError(_WANDB_MISSING)
    return name


class Tracker(Protocol):
    """Where scalars of a run go. `step` is the x axis: a training step wherever there is one,
    so that evaluation's curves line up with training's."""

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_table(
        self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int
    ) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Tracker: ...

    def __exit__(self, *exc: object) -> None: ...


class _Base:
    def log(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_table(
        self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int
    ) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Base:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NoTracker(_Base):
    """`none`: logs nothing and writes nothing."""


class TensorBoardTracker(_Base):
    """Event files in `directory` (`tensorboard --logdir` on it or any folder above)."""

    def __init__(self, directory: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory))

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, float(value), global_step=step)

    def log_table(
        self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int
    ) -> None:
        # TensorBoard's text plugin renders Markdown, tables included.
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
        self.writer.add_text(tag, "\n".join(lines), global_step=step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(_Base):
    """A wandb run whose files go under `directory` (`directory/wandb/`). When `close` returns,
    the run's files are whole on disk: it ends wandb's service process too, so a process keeps
    one tracker's run at a time (as the entry points do)."""

    def __init__(
        self, directory: Path, project: str, name: str | None, config: Mapping[str, Any]
    ) -> None:
        try:
            import wandb
        except ImportError:
            raise ValueError(_WANDB_MISSING) from None
        self._wandb = wandb
        # None lets wandb decide (online when logged in); WANDB_MODE=offline keeps it on disk.
        self.run = wandb.init(
            dir=str(directory),
            project=project,
            name=name,
            config=dict(config),
            mode=os.environ.get("WANDB_MODE") or None,
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log({k: float(v) for k, v in metrics.items()}, step=step)

    def log_table(
        self, tag: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int
    ) -> None:
        table = self._wandb.Table(columns=list(columns), data=[list(r) for r in rows])
        self.run.log({tag: table}, step=step)

    def close(self) -> None:
        self.run.finish()
        # `finish` can return before wandb's service has written the run's log (measured: about
        # one first run in five left only the log's header); teardown waits for the service.
        self._wandb.teardown()


def open_tracker(
    report_to: str,
    directory: str | Path,
    *,
    project: str = "gato",
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Tracker:
    """A tracker of kind `report_to` writing under `directory` (made if missing; not for `none`).

    Args:
        report_to: one of `REPORT_TO`.
        directory: where event files (tensorboard) or the run folder (wandb) go.
        project, name: wandb's project and run name; tensorboard's run is the directory.
        config: recorded with a wandb run (the command's options).
    """
    check_report_to(report_to)
    if report_to == "none":
        return NoTracker()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if report_to == "tensorboard":
        return TensorBoardTracker(directory)
    return WandbTracker(directory, project, name, config or {})


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
