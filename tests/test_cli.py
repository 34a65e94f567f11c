"""`gato.cli`: config dataclasses -> command lines."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from gato.cli import Command, Section, field_help, parse, parse_command


@dataclass
class Config:
    """A config of every kind of field."""

    steps: int = 10
    """Optimizer steps, 5% of them warmup."""
    rate: float | None = None
    """Learning rate (None: scaled)."""
    name: str = "run"
    """Run name."""
    fast: bool = True
    """Go fast."""
    mode: Literal["a", "b"] = "a"
    """One of two modes."""
    sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden widths."""
    pair: tuple[str, ...] = ("x", "y")
    """Two names."""
    out: Path = Path("runs/x")
    """Output folder."""
    preset: str = "small"
    """The named preset these values started from."""
    legacy: int = field(default=3, metadata={"help": "help kept in the field's metadata"})

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")


PRESETS = {"small": {}, "big": {"steps": 1000, "sizes": [256, 256], "rate": 0.1}}


@dataclass
class Other:
    """A second section sharing `name` with `Config`."""

    name: str = "run"
    """Run name, shared."""
    target: str = field(default="demo", metadata={"positional": True})
    """What to act on."""
    needed: str = ""
    """Optional here."""


@dataclass
class Required:
    """A section with a field the command line must give."""

    checkpoint: str
    """The checkpoint."""


def _exit(fn, *args, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with pytest.raises(SystemExit) as info:
            fn(*args, **kwargs)
    return info.value.code, out.getvalue(), err.getvalue()


def test_no_flags_give_the_dataclass_defaults():
    assert parse(Config, []) == Config()


def test_types_optional_literal_lists_tuples_and_paths():
    config = parse(
        Config,
        ["--steps", "3", "--rate", "0.5", "--mode", "b", "--sizes", "8", "16", "--sizes", "32",
         "--pair", "p", "q", "r", "--out", "/tmp/o", "--name=z"],
    )  # fmt: skip
    assert config.steps == 3 and config.rate == 0.5 and config.mode == "b" and config.name == "z"
    assert config.sizes == [8, 16, 32]  # a repeated list flag adds to the values
    assert config.pair == ("p", "q", "r") and config.out == Path("/tmp/o")
    assert parse(Config, ["--rate", "none"]).rate is None


def test_bools_take_a_bare_flag_a_value_or_a_no_flag():
    assert parse(Config, ["--fast"]).fast is True
    assert parse(Config, ["--fast", "false"]).fast is False
    assert parse(Config, ["--fast", "true"]).fast is True
    assert parse(Config, ["--no_fast"]).fast is False
    assert parse(Config, ["--no-fast"]).fast is False


def test_dashes_in_flag_names_read_as_underscores():
    @dataclass
    class Dashed:
        max_new_tokens: int = 4
        """Tokens."""

    assert parse(Dashed, ["--max-new-tokens", "9"]).max_new_tokens == 9
    assert parse(Dashed, ["--max-new-tokens=7"]).max_new_tokens == 7


def test_presets_apply_before_the_explicit_flags():
    config = parse(Config, ["--preset", "big", "--steps", "5"], presets=PRESETS)
    assert config.preset == "big" and config.steps == 5  # the flag wins
    assert config.sizes == [256, 256] and config.rate == 0.1  # the preset's
    assert parse(Config, [], presets=PRESETS) == Config()  # the default preset: no change
    code, _, err = _exit(parse, Config, ["--preset", "huge"], presets=PRESETS)
    assert code == 2 and "--preset" in err and "huge" in err


def test_a_config_file_sits_between_the_presets_and_the_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"steps": 7, "name": "from-file", "rate": 0.2}))
    argv = ["--preset", "big", "--config", str(path), "--name", "flag"]
    config = parse(Config, argv, presets=PRESETS, config_file=True)
    assert (config.steps, config.rate, config.name) == (7, 0.2, "flag")
    assert config.sizes == [256, 256]
    path.write_text(json.dumps({"stepz": 7}))
    code, _, err = _exit(parse, Config, ["--config", str(path)], config_file=True)
    assert code == 2 and "stepz" in err
    code, _, err = _exit(parse, Config, ["--config", str(tmp_path / "none.json")], config_file=True)
    assert code == 2 and "none.json" in err


def test_several_sections_share_a_field_and_take_positionals():
    config, other = parse((Config, Other), ["thing", "--name", "both", "--steps", "2"])
    assert config.name == other.name == "both" and other.target == "thing" and config.steps == 2
    assert parse((Config, Other), [])[1].target == "demo"


def test_excluded_fields_are_not_options():
    code, _, err = _exit(parse, Section(Config, frozenset({"mode"})), ["--mode", "b"])
    assert code == 2 and "--mode" in err
    assert parse(Section(Config, frozenset({"mode"})), ["--steps", "2"]).steps == 2


def test_subcommands_parse_their_own_sections():
    commands = {
        "train": Command("train a model", (Config,), presets=PRESETS),
        "eval": Command("evaluate one", (Required, Other)),
    }
    name, (config,) = parse_command(commands, ["train", "--preset", "big"])
    assert name == "train" and config.steps == 1000
    name, (required, other) = parse_command(commands, ["eval", "x", "--checkpoint", "c"])
    assert name == "eval" and required.checkpoint == "c" and other.target == "x"
    code, out, _ = _exit(parse_command, commands, ["--help"], prog="tool")
    assert code == 0 and "train a model" in out and "evaluate one" in out
    code, _, err = _exit(parse_command, commands, ["eval"])
    assert code == 2 and "--checkpoint" in err
    code, _, err = _exit(parse_command, commands, ["fly"])
    assert code == 2 and "fly" in err


def test_help_shows_each_field_docstring_and_dataclass_default():
    code, out, _ = _exit(parse, Config, ["--help"], presets=PRESETS)
    flat = " ".join(out.split())
    assert code == 0
    assert "Optimizer steps, 5% of them warmup. (default: 10)" in flat  # `%` shown as written
    assert "Learning rate (None: scaled). (default: None)" in flat
    assert "Go fast. (default: True; --no_fast: false)" in flat
    assert "Hidden widths. (default: 64 64)" in flat
    assert "help kept in the field's metadata (default: 3)" in flat
    assert "big: steps=1000, sizes=256 256, rate=0.1" in flat


def test_defaults_come_only_from_the_dataclass():
    # The options hold no default of their own: an instance built from no flags is exactly
    # the dataclass' default, and a changed dataclass default shows in the help.
    @dataclass
    class Changed(Config):
        steps: int = 77
        """Optimizer steps."""

    assert parse(Changed, []).steps == 77
    code, out, _ = _exit(parse, Changed, ["--help"])
    assert "Optimizer steps. (default: 77)" in " ".join(out.split())
    assert field_help(Changed)["steps"] == "Optimizer steps."
    assert field_help(Changed)["rate"] == "Learning rate (None: scaled)."  # inherited


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--steps", "ten"], "--steps"),
        (["--mode", "c"], "--mode"),
        (["--fast", "perhaps"], "--fast"),
        (["--sizes", "1.5"], "--sizes"),
        (["--unknown", "1"], "--unknown"),
        (["--steps", "0"], "steps must be at least 1"),  # the dataclass' own check
    ],
)
def test_bad_input_exits_2_naming_the_flag(argv, named):
    code, _, err = _exit(parse, Config, argv)
    assert code == 2 and named in err
