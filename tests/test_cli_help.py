"""Every command line answers `--help` with its usage and exit status 0.

argparse formats help strings with `%`, so a stray percent sign in a dataclass field's help text
breaks `--help` of the whole command (it did, for `train.py`): each entry point is checked here.
"""

from __future__ import annotations

import contextlib
import importlib
import io

import pytest

COMMANDS = [
    ("gato.training.pipeline", []),
    ("gato.data.__main__", []),
    ("gato.data.__main__", ["collect"]),
    ("gato.data.__main__", ["tasks"]),
    ("gato.data.build", []),
    ("gato.data.mixture.__main__", []),
    ("gato.data.corpora.text", []),
    ("gato.data.corpora.text_corpus", []),
    ("gato.data.corpora.text_model_build", []),
    ("gato.data.corpora.vision_language", []),
    ("gato.evaluation.cli", ["control"]),
    ("gato.evaluation.cli", ["caption"]),
    ("gato.evaluation.cli", ["chat"]),
    ("gato.evaluation.cli", ["progress"]),
    ("gato.rl.impala", []),
    ("gato.experiments.algorithm_distillation.experiment", ["train"]),
    ("gato.experiments.pathnet.__main__", ["supervised"]),
    ("gato.experiments.pathnet.__main__", ["rl"]),
    ("gato.experiments.pathnet.__main__", ["gato"]),
]


@pytest.mark.parametrize(("module", "words"), COMMANDS, ids=lambda v: str(v))
def test_help_prints_usage_and_exits_zero(module, words):
    main = importlib.import_module(module).main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        with pytest.raises(SystemExit) as exit_info:
            main([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in out.getvalue()
