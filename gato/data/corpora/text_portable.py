"""English prose that ships with every CPython install: the corpus source that needs no root.

The Debian packages of `text_corpus` need `apt-get` and root; a non-root user, a macOS machine or
a slim container has neither. Every CPython install does carry two bodies of English prose under
the PSF License Version 2 (permissive: use, modify and redistribute with the notice kept):

- the docstrings of the standard library's pure-Python modules, read with `ast` from the source
  files (never imported, so nothing runs and no optional module is needed): about 1.5 MB of
  clean prose on CPython 3.11;
- `pydoc_data.topics`, the language reference and library sections that `help()` shows, as
  plain text: about 0.4 MB.

The text depends only on the Python version, so the corpus is the same on every machine that runs
the same version. Readers only cut text into paragraphs; `text_cleaning` decides what is prose.
"""

from __future__ import annotations

import ast
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from gato.data.corpora.text_readers import rst_paragraphs

PSF_LICENCE = "PSF License Version 2 (CPython standard library docstrings and pydoc topics)"

STDLIB_SKIP = frozenset({"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3"})
"""Folders of the standard library left out: installed third-party packages (other licences)
and test suites and tools, whose docstrings describe test cases rather than explain."""


def stdlib_dir() -> Path:
    """The folder of the running interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(root: Path | None = None) -> list[Path]:
    """The standard library's `.py` files in sorted order, `STDLIB_SKIP` folders left out."""
    root = stdlib_dir() if root is None else Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no standard library folder (is this CPython?)")
    return [
        path
        for path in sorted(root.rglob("*.py"))
        if not STDLIB_SKIP.intersection(path.relative_to(root).parts[:-1])
    ]


def docstrings(source: str | bytes) -> Iterator[str]:
    """The docstrings of a module, its classes and functions, in source order.

    A file that does not parse (a template, a file for another Python version) yields nothing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # invalid escapes in old sources
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(tree):
        if isinstance(node, nodes):
            text = ast.get_docstring(node, clean=True)
            if text:
                yield text


def stdlib_docstring_paragraphs(root: Path | None = None) -> Iterator[str]:
    """Paragraphs of every standard-library docstring; docstrings are reStructuredText-ish, so
    they go through the same reader as the Python documentation (literal blocks dropped)."""
    for path in stdlib_sources(root):
        for text in docstrings(path.read_bytes()):
            yield from rst_paragraphs(text)


def pydoc_topic_paragraphs() -> Iterator[str]:
    """Paragraphs of `pydoc_data.topics` in sorted topic order (the text `help("if")` shows)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some distributions split it out
        raise FileNotFoundError(f"this Python has no pydoc_data.topics: {error}") from error
    for name in sorted(topics):
        yield from rst_paragraphs(topics[name])


def python_paragraphs() -> Iterator[str]:
    """The whole portable source: standard-library docstrings, then the pydoc topics."""
    yield from stdlib_docstring_paragraphs()
    yield from pydoc_topic_paragraphs()
