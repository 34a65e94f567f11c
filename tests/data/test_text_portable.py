"""The text corpus without root: the Python install's own prose, chosen when apt cannot help."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from gato.data.corpora import text_corpus, text_portable


def test_docstrings_in_source_order_and_broken_files_skipped() -> None:
    source = '''"""Module text."""
class A:
    """Class text."""
    def f(self):
        """Method
        text."""
def g():
    return 1
'''
    assert list(text_portable.docstrings(source)) == [
        "Module text.",
        "Class text.",
        "Method\ntext.",
    ]
    assert list(text_portable.docstrings("def broken(:\n")) == []


def test_stdlib_sources_leave_out_third_party_and_tests(tmp_path: Path) -> None:
    for rel in ("os.py", "json/decoder.py", "site-packages/x/y.py", "test/test_os.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text('"""A module that says something useful here."""\n')
    names = [p.relative_to(tmp_path).as_posix() for p in text_portable.stdlib_sources(tmp_path)]
    assert names == ["json/decoder.py", "os.py"]
    with pytest.raises(FileNotFoundError, match="no standard library"):
        text_portable.stdlib_sources(tmp_path / "absent")


def _hide_debian_and_apt(monkeypatch, tmp_path: Path) -> None:
    """Debian's files absent (a probe that does not exist) and no apt-get on the PATH."""
    fake = text_corpus.Source("debian-fake", ("no-such-package",), tmp_path / "absent", "-", list)
    monkeypatch.setattr(text_corpus, "SOURCES", (fake,))
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(text_corpus.TEXT_SOURCE_ENV, raising=False)
    assert shutil.which("apt-get") is None


def test_corpus_builds_without_apt(monkeypatch, tmp_path: Path) -> None:
    _hide_debian_and_apt(monkeypatch, tmp_path)
    out = tmp_path / "text" / "corpus.txt"
    stats = text_corpus.build_corpus(out)  # auto, install allowed: must not need apt
    assert list(stats.per_source) == ["python-stdlib"]
    assert stats.bytes > 1_000_000 and stats.bytes == out.stat().st_size
    paragraphs = text_corpus.read_paragraphs(out)
    assert len(paragraphs) == stats.paragraphs > 5_000
    assert len(set(paragraphs)) == len(paragraphs)
    assert all(text_corpus.clean_paragraphs([p]) for p in paragraphs[:50])
    licences = out.with_suffix(".licences.txt").read_text(encoding="utf-8")
    assert licences.startswith("python-stdlib: PSF License Version 2")
    # the pydoc topics are part of it, e.g. the `if` statement's section
    assert any("if" in p and "suite" in p and "expression" in p for p in paragraphs)


def test_choice_of_source(monkeypatch, tmp_path: Path) -> None:
    _hide_debian_and_apt(monkeypatch, tmp_path)
    assert text_corpus.choose_sources("auto") == text_corpus.PYTHON_SOURCES
    assert text_corpus.choose_sources("python") == text_corpus.PYTHON_SOURCES
    with pytest.raises(RuntimeError, match="no-such-package.*no apt-get"):
        text_corpus.choose_sources("debian")
    with pytest.raises(FileNotFoundError, match="no-such-package"):
        text_corpus.choose_sources("debian", install=False)
    with pytest.raises(ValueError, match="one of"):
        text_corpus.choose_sources("web")
    monkeypatch.setenv(text_corpus.TEXT_SOURCE_ENV, "debian")
    with pytest.raises(RuntimeError, match="no apt-get"):
        text_corpus.choose_sources()
    # Debian files present: auto takes them and runs nothing
    present = text_corpus.Source("debian-here", ("pkg",), Path(sys.executable), "-", list)
    monkeypatch.setattr(text_corpus, "SOURCES", (present,))
    assert text_corpus.choose_sources("auto") == (present,)


def test_whitespace_and_prose_checks_match_their_character_by_character_definitions():
    """The fast paths (whole-string C checks) against the definitions written per character."""
    import random

    from gato.data.corpora.text_cleaning import MIN_WORDS, is_prose, normalize_space

    def slow_normalize(text: str) -> str:
        text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
        return " ".join(text.split())

    def slow_letters(text: str) -> int:
        return sum(ch.isalpha() or ch == " " for ch in text)

    alphabet = "ab Z\t\n\r\x00\x07\x1b\u00a0\u2028\u200b\u00e9\u0301.,;!?0123 \x0b\x0c\ufeff"
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert normalize_space(text) == slow_normalize(text), repr(text)
        words = normalize_space(text)
        expected = len(words.split()) >= MIN_WORDS and slow_letters(words) >= 0.75 * len(words)
        assert is_prose(words) == expected, repr(words)
