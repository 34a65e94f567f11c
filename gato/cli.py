"""Config dataclasses -> command lines, one way for every entry point.

Each field of a config dataclass becomes an option `--name value`; its type, its default and its
help come from the dataclass alone, so no default is written twice:

- the help is the field's docstring (the string literal under the field, the project's style),
  or `field(metadata={"help": ...})` where a config still carries its help there;
- `int`, `float`, `str`, `Path`; `X | None` also takes `none`; `Literal[...]` takes its values;
  `list[X]` / `tuple[X, ...]` take one or more values (a repeated flag adds to them);
- a `bool` field `flag` takes `--flag`, `--flag true|false` and `--no_flag`;
- `field(metadata={"positional": True})` makes a positional argument instead;
- `--foo-bar` is read as `--foo_bar`;
- a nested dataclass field is left to its default (give its own dataclass a section).

`parse` reads one command; `parse_command` reads `<command> [options]` for a table of `Command`s.
With `presets`, `--preset NAME` applies a named set of values before the explicit flags; with
`config_file=True`, `--config FILE.json|yaml` does the same with a file's values (flags still win).
An unknown flag, a bad value or a value the dataclass refuses (`ValueError` in `__post_init__`)
ends with a usage line, `error: ...` naming it, and exit status 2. `--help` exits 0.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Command", "Section", "field_help", "parse", "parse_command", "parser_for"]

_MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Section:
    """A config dataclass whose fields become options, less the `exclude`d ones."""

    cls: type
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line and the sections of its options.

    `presets` maps a preset name to field values, applied before the flags by `--preset NAME`
    (the default preset is the default of a field named `preset`, if any).
    """

    help: str
    sections: tuple[type | Section, ...]
    presets: Mapping[str, Mapping[str, Any]] | None = None
    config_file: bool = False
    description: str | None = None


# -- help text ---------------------------------------------------------------------------------


@functools.cache
def _docstrings(cls: type) -> dict[str, str]:
    """Field name -> the string literal written under it in the class body (`cls` only)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = next((n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)), None)
    if body is None:
        return {}
    docs = {}
    for node, after in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def field_help(cls: type) -> dict[str, str]:
    """Field name -> help text: its docstring, else `metadata["help"]`, else ""."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_docstrings(klass))
    return {f.name: docs.get(f.name) or f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


# -- types -------------------------------------------------------------------------------------


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(text)


_bool.__name__ = "bool (true or false)"


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def optional(text: str) -> Any:
        return None if text.lower() == "none" else convert(text)

    optional.__name__ = getattr(convert, "__name__", "value") + " or none"
    return optional


def _literal(values: tuple) -> Callable[[str], Any]:
    by_text = {str(v): v for v in values}

    def literal(text: str) -> Any:
        if text not in by_text:
            raise ValueError(text)
        return by_text[text]

    literal.__name__ = "choice (" + ", ".join(by_text) + ")"
    return literal


@dataclass(frozen=True)
class _Kind:
    """How one field's text becomes its value."""

    convert: Callable[[str], Any]
    many: bool = False  # list or tuple: one or more values
    as_tuple: bool = False
    is_bool: bool = False
    choices: tuple | None = None
    nested: bool = False  # a dataclass: not an option


def _kind(annotation: Any) -> _Kind:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"gato.cli: no command-line form for a field of type {annotation!r}")
        inner = _kind(rest[0])
        return dataclasses.replace(inner, convert=_optional(inner.convert))
    if origin is typing.Literal:
        return _Kind(_literal(args), choices=args)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        item = args[0] if args else str
        return _Kind(_kind(item).convert, many=True, as_tuple=origin is tuple)
    if annotation is bool:
        return _Kind(_bool, is_bool=True)
    if dataclasses.is_dataclass(annotation):
        return _Kind(str, nested=True)
    if annotation in (int, float, str, Path):
        return _Kind(annotation)
    raise TypeError(f"gato.cli: no command-line form for a field of type {annotation!r}")


# -- parser ------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help strings are shown as written: no `%` formatting (a `%` in a docstring is text), no
    line break at a hyphen."""

    def _expand_help(self, action: argparse.Action) -> str:
        return self._get_help_string(action) or ""

    def _split_lines(self, text: str, width: int) -> list[str]:
        # Task ids and paths hold hyphens: a line never breaks inside one.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(_underscored(args), namespace)


def _underscored(argv: Sequence[str]) -> list[str]:
    """`--foo-bar[=x]` -> `--foo_bar[=x]`; everything after a bare `--` is left alone."""
    out = []
    for k, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[k:])
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg.partition("=")
            arg = "--" + name[2:].replace("-", "_") + eq + value
        out.append(arg)
    return out


def _sections(sections: Sequence[type | Section]) -> list[Section]:
    return [s if isinstance(s, Section) else Section(s) for s in sections]


def _options(sections: list[Section]) -> dict[str, tuple[dataclasses.Field, str, _Kind]]:
    """Option name -> (field, help, kind); a name in several sections is one option for all."""
    options: dict[str, tuple[dataclasses.Field, str, _Kind]] = {}
    for section in sections:
        hints = typing.get_type_hints(section.cls)
        helps = field_help(section.cls)
        for f in dataclasses.fields(section.cls):
            if f.name in section.exclude or not f.init:
                continue
            kind = _kind(hints[f.name])
            if kind.nested:
                continue
            if f.name in options and _default(options[f.name][0]) != _default(f):
                raise TypeError(
                    f"gato.cli: field {f.name!r} has different defaults in two sections"
                )
            options.setdefault(f.name, (f, helps[f.name], kind))
    return options


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "(empty)"
    return str(value)


def _add_options(
    parser: argparse.ArgumentParser,
    sections: list[Section],
    presets: Mapping[str, Mapping[str, Any]] | None,
    config_file: bool,
) -> None:
    positionals = []
    for name, (f, text, kind) in _options(sections).items():
        default = _default(f)
        shown = "(required)" if default is _MISSING else f"(default: {_shown(default)})"
        if kind.is_bool and default is True:
            shown = f"(default: True; --no_{name}: false)"
        help_text = f"{text} {shown}" if text else shown
        kwargs: dict[str, Any] = {"help": help_text, "default": argparse.SUPPRESS}
        if kind.choices is not None:
            kwargs["metavar"] = "{" + ",".join(str(c) for c in kind.choices) + "}"
        if f.metadata.get("positional"):
            if default is not _MISSING:
                kwargs["nargs"] = "?"
            parser.add_argument(name, type=kind.convert, **kwargs)
            positionals.append(name if default is _MISSING else f"[{name}]")
            continue
        if kind.is_bool:
            kwargs.update(nargs="?", const=True, metavar="true|false")
        elif kind.many:
            kwargs.update(nargs="+", action="extend")
        if presets is not None and name == "preset":
            kwargs["choices"] = list(presets)
            kwargs.pop("metavar", None)
            kwargs["type"] = str
        else:
            kwargs["type"] = kind.convert
        # A missing required option is reported by `_build`, after any unknown flag.
        parser.add_argument(f"--{name}", dest=name, **kwargs)
        if kind.is_bool:
            parser.add_argument(
                f"--no_{name}",
                dest=name,
                action="store_false",
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )
    # The options are listed below with their help: the usage line only says where they go.
    parser.usage = " ".join(["%(prog)s", *positionals, "[--field value ...]"])
    if config_file:
        parser.add_argument(
            "--config",
            metavar="FILE",
            default=argparse.SUPPRESS,
            help="a .json (or .yaml) file of field values; flags on the command line win",
        )
    if presets:
        lines = ["presets (--preset NAME sets these values; flags on the command line win):"]
        for preset, values in presets.items():
            shown = ", ".join(f"{k}={_shown(v)}" for k, v in values.items()) or "the defaults"
            lines += textwrap.wrap(
                f"{preset}: {shown}", width=96, initial_indent="  ", subsequent_indent="    "
            )
        parser.epilog = "\n".join(lines)


def _read_config_file(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as err:
        parser.error(f"--config {path}: {err.strerror or err}")
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml  # only for YAML files; JSON needs nothing beyond the standard library

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as err:  # noqa: BLE001 - any decoding error is the file's fault
        parser.error(f"--config {path}: not valid {Path(path).suffix[1:] or 'JSON'}: {err}")
    if not isinstance(values, dict):
        parser.error(f"--config {path}: expected an object of field values")
    return values


def _build(
    parser: argparse.ArgumentParser,
    sections: list[Section],
    given: dict[str, Any],
    presets: Mapping[str, Mapping[str, Any]] | None,
) -> tuple:
    """Explicit values over config-file values over preset values over the dataclass defaults."""
    options = _options(sections)
    values: dict[str, Any] = {}
    if "config" in given:
        path = given.pop("config")
        from_file = _read_config_file(parser, path)
        unknown = sorted(set(from_file) - set(options))
        if unknown:
            parser.error(f"--config {path}: unknown fields {unknown}")
        values.update(from_file)
    values.update(given)
    missing = [
        f"--{name}"
        for name, (f, _text, _kind) in options.items()
        if _default(f) is _MISSING and name not in values and not f.metadata.get("positional")
    ]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    if presets is not None and "preset" in options:
        name = values.get("preset", _default(options["preset"][0]))
        if name is not None:
            if name not in presets:
                parser.error(
                    f"argument --preset: unknown preset {name!r}; presets: {list(presets)}"
                )
            values = {**presets[name], "preset": name, **values}
    for name, (_f, _text, kind) in options.items():
        if kind.as_tuple and isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    built = []
    for section in sections:
        names = {f.name for f in dataclasses.fields(section.cls)} - section.exclude
        try:
            built.append(section.cls(**{k: v for k, v in values.items() if k in names}))
        except (ValueError, TypeError) as err:
            parser.error(str(err))
    return tuple(built)


def parser_for(
    sections: Sequence[type | Section],
    *,
    prog: str | None = None,
    description: str | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    config_file: bool = False,
) -> argparse.ArgumentParser:
    """The `argparse` parser of these sections' fields (for `--help` or embedding)."""
    parser = _Parser(prog=prog, description=description)
    _add_options(parser, _sections(sections), presets, config_file)
    return parser


def parse(
    sections: type | Section | Sequence[type | Section],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    config_file: bool = False,
) -> Any:
    """Command line -> one instance of each section's dataclass (one section: the instance)."""
    single = not isinstance(sections, Sequence)
    listed = _sections([sections] if single else sections)  # type: ignore[list-item]
    parser = parser_for(
        listed, prog=prog, description=description, presets=presets, config_file=config_file
    )
    given = vars(parser.parse_args(argv))
    built = _build(parser, listed, given, presets)
    return built[0] if single else built


def parse_command(
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> tuple[str, tuple]:
    """`<command> [options]` -> (command name, one instance of each of its sections)."""
    parser = _Parser(prog=prog, description=description)
    sub = parser.add_subparsers(
        dest="_command", required=True, metavar="{" + ",".join(commands) + "}"
    )
    subparsers = {}
    for name, command in commands.items():
        subparsers[name] = sub.add_parser(
            name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=_Formatter,
        )
        _add_options(
            subparsers[name], _sections(command.sections), command.presets, command.config_file
        )
    given = vars(parser.parse_args(argv))
    name = given.pop("_command")
    command = commands[name]
    return name, _build(subparsers[name], _sections(command.sections), given, command.presets)
