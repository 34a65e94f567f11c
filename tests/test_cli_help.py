"""Every command line answers `--help` with its usage, each field and its default, and exit 0;
a flag it does not know ends with exit status 2 and a message naming the flag.

argparse formats help strings with `%`, so a stray percent sign in a dataclass field's help text
broke `--help` of a whole command once (`train.py`): each entry point is checked here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gato.cli import Section

REPO = Path(__file__).resolve().parent.parent


def _sections(module: str, words: list[str]) -> list[Section]:
    """The dataclasses whose fields the command's options are."""
    from gato.data import build
    from gato.data.corpora import text, text_corpus, text_model_build, vision_language
    from gato.data.mixture import __main__ as mixture_main
    from gato.experiments.pathnet.__main__ import _commands as pathnet_commands
    from gato.rl.impala import ImpalaConfig
    from gato.training.config import TrainConfig
    from gato.training.pipeline import PipelineConfig

    single = {
        "gato.training.pipeline": (TrainConfig, PipelineConfig),
        "gato.rl.impala": (ImpalaConfig,),
        "gato.data.build": (build.Target, build.BuildPlan),
        "gato.data.corpora.text": (text.TextOptions,),
        "gato.data.corpora.text_corpus": (text_corpus.CorpusOptions,),
        "gato.data.corpora.vision_language": (
            vision_language.BuildOptions,
            vision_language.BuildSizes,
        ),
        "gato.data.corpora.text_model_build": (text_model_build.TextModelOptions,),
        "gato.data.mixture.__main__": (mixture_main.Options,),
    }
    if module in single:
        sections = single[module]
    else:
        commands = (
            pathnet_commands()
            if module == "gato.experiments.pathnet.__main__"
            else importlib.import_module(module).COMMANDS
        )
        sections = commands[words[0]].sections
    return [s if isinstance(s, Section) else Section(s) for s in sections]


def _shown(value) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "(empty)"
    return str(value)


SINGLE = [
    "gato.training.pipeline",
    "gato.data.build",
    "gato.data.mixture.__main__",
    "gato.data.corpora.text",
    "gato.data.corpora.text_corpus",
    "gato.data.corpora.vision_language",
    "gato.data.corpora.text_model_build",
    "gato.rl.impala",
]
SUBCOMMANDS = {
    "gato.data.__main__": ["tasks", "collect", "score"],
    "gato.data.minari": ["import", "export"],
    "gato.evaluation.cli": ["control", "caption", "chat", "progress"],
    "gato.experiments.pathnet.__main__": ["supervised", "rl", "gato"],
    "gato.experiments.algorithm_distillation.__main__": ["collect", "train", "evaluate", "all"],
}
COMMANDS = [(m, []) for m in SINGLE] + [(m, [w]) for m, words in SUBCOMMANDS.items() for w in words]


def _run(module: str, argv: list[str]) -> tuple[int, str, str]:
    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    return exit_info.value.code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("module", "words"), COMMANDS, ids=lambda v: str(v))
def test_help_lists_every_field_with_its_default_and_exits_zero(module, words):
    code, out, _ = _run(module, [*words, "--help"])
    assert code == 0
    assert "usage:" in out
    flat = " ".join(out.split())
    sections = _sections(module, words)
    for section in sections:
        for f in dataclasses.fields(section.cls):
            if f.name in section.exclude or dataclasses.is_dataclass(f.default_factory):
                continue
            name = f.name if f.metadata.get("positional") else f"--{f.name}"
            assert name in out, f"{module} {words}: {name} missing from the help"
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                assert "(required)" in flat
                continue
            shown = "True;" if default is True else _shown(default) + ")"
            assert f"(default: {shown}" in flat, f"{module} {words}: default of {f.name}"


@pytest.mark.parametrize("module", list(SUBCOMMANDS), ids=str)
def test_help_without_a_command_lists_every_command(module):
    code, out, _ = _run(module, ["--help"])
    assert code == 0
    for word in SUBCOMMANDS[module]:
        assert word in out


@pytest.mark.parametrize(("module", "words"), COMMANDS, ids=lambda v: str(v))
def test_an_unknown_flag_exits_2_naming_it(module, words):
    code, _, err = _run(module, [*words, "--no_such_flag", "1"])
    assert code == 2
    assert "--no_such_flag" in err


@pytest.mark.parametrize(
    ("module", "argv", "flag"),
    [
        ("gato.training.pipeline", ["--steps", "many"], "--steps"),
        ("gato.rl.impala", ["--preset", "nope"], "--preset"),
        ("gato.evaluation.cli", ["control", "--checkpoint", "x", "--slide", "sideways"], "--slide"),
        ("gato.experiments.pathnet.__main__", ["rl", "--seeds", "2.5"], "--seeds"),
        (
            "gato.experiments.algorithm_distillation.__main__",
            ["train", "--resume", "maybe"],
            "--resume",
        ),
    ],
)
def test_a_bad_value_exits_2_naming_the_flag(module, argv, flag):
    code, _, err = _run(module, argv)
    assert code == 2
    assert flag in err


def _documented_commands() -> list[list[str]]:
    """Every `python -m gato...` command (with its subcommand) the README and the docs name."""
    pattern = re.compile(r"python -m (gato[\w.]*)((?: (?!-)[a-z_]+)?)")
    found = set()
    for doc in [REPO / "README.md", REPO / "data" / "README.md", *sorted(REPO.glob("docs/*.md"))]:
        for module, sub in pattern.findall(doc.read_text()):
            words = sub.split()
            # A subcommand is a lowercase word; anything else after the module is an argument.
            sub_ok = words and words[0] in (
                "collect",
                "score",
                "tasks",
                "supervised",
                "rl",
                "gato",
                "train",
                "evaluate",
                "all",
            )
            found.add((module, *(words if sub_ok else [])))
    return [["-m", *command, "--help"] for command in sorted(found)]


DOCUMENTED = _documented_commands()


def test_the_docs_name_commands():
    modules = {command[1] for command in DOCUMENTED}
    assert {"gato.rl.impala", "gato.data", "gato.experiments.pathnet"} <= modules


@pytest.mark.parametrize("command", DOCUMENTED, ids=lambda c: " ".join(c[1:-1]))
def test_every_documented_command_answers_help(command):
    module = command[1]
    module = module if module in SINGLE or module in SUBCOMMANDS else module + ".__main__"
    code, out, _ = _run(module, command[2:])
    assert code == 0 and "usage:" in out


# Each program once as a real process (what a reader types), the subcommands in-process above.
@pytest.mark.parametrize(
    "command",
    [
        *sorted({("-m", c[1], "--help") for c in DOCUMENTED}),
        (str(REPO / "train.py"), "--help"),
        (str(REPO / "eval.py"), "--help"),
    ],
    ids=str,
)
def test_python_dash_m_help_exits_zero(command):
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
