"""Reading the English text of Debian packages: raw paragraphs from each package's format.

One reader per format: the King James Bible through the package's `bible` program, fortune
cookie files, the reStructuredText sources of the Python documentation, HTML manuals and the
GCIDE dictionary (dictd files). Readers only cut files into paragraphs and strip markup;
`gato.data.corpora.text_cleaning` decides what is prose.
"""

from __future__ import annotations

import gzip
import html.parser
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

from gato.data.corpora.text_cleaning import normalize_space

# --------------------------------------------------------------------------------------
# King James Bible

_VERSE = re.compile(r"^(\S+?)(\d+):(\d+) (.*)$")
BIBLE_PARAGRAPH_CHARS = 1000
"""Verses of one chapter are packed into paragraphs about this long."""


def bible_paragraphs() -> Iterator[str]:
    """The whole King James Bible, consecutive verses of a chapter packed into paragraphs.

    The package stores the text compressed for its `bible` reader; `-f` switches that reader
    to one verse per line ("Ge1:1 In the beginning ..."), which is simple to parse.
    """
    exe = shutil.which("bible") or "/usr/bin/bible"
    result = subprocess.run(
        [exe, "-f", "Gen1:1-Rev22:21"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    chapter: tuple[str, str] | None = None
    current = ""
    for line in result.stdout.splitlines():
        match = _VERSE.match(line.strip())
        if match is None:
            continue
        book, chap, _verse, text = match.groups()
        if (book, chap) != chapter or len(current) + len(text) > BIBLE_PARAGRAPH_CHARS:
            if current:
                yield current
            chapter, current = (book, chap), text
        else:
            current = f"{current} {text}"
    if current:
        yield current


# --------------------------------------------------------------------------------------
# fortunes

FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_SKIP = frozenset({"ascii-art", "translate-me"})
"""Pictures made of characters, and jokes in Latin, French and German."""


def fortune_paragraphs(directory: Path = FORTUNE_DIR) -> Iterator[str]:
    """Every fortune cookie is one paragraph; `%` lines separate them in the files."""
    for path in sorted(directory.iterdir()):
        if path.suffix in {".dat", ".u8"} or path.is_symlink() or path.name in FORTUNE_SKIP:
            continue
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        yield from re.split(r"^%\s*$", text, flags=re.MULTILINE)


# --------------------------------------------------------------------------------------
# reStructuredText (the Python documentation)

PYTHON_DOC_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")

_RST_PROSE_DIRECTIVES = frozenset(
    """note warning seealso versionadded versionchanged deprecated deprecated-removed important
    tip attention caution danger hint admonition impl-detail topic sidebar rubric glossary
    function method class attribute data exception decorator decoratormethod classmethod
    staticmethod describe opcode cmdoption option envvar module abstractmethod
    coroutinefunction coroutinemethod awaitablefunction pdbcommand 2to3fixer""".split()
)
"""Directives whose indented body is prose; every other directive's body is skipped."""
_RST_DIRECTIVE = re.compile(r"^\.\.\s+([\w:-]+)::(.*)$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'*#+`:.<>_])\1{2,}\s*$")
_RST_BULLET = re.compile(r"^(?:[*+\-•]|#\.|\d+\.|\(?[a-z0-9]\)|[a-z]\.)\s+")
_RST_ROLE = re.compile(r":[\w:+.-]+:`([^`]*)`")
_RST_LITERAL = re.compile(r"``(.+?)``")
_RST_REFERENCE = re.compile(r"`([^`]+?)`_{1,2}")
_RST_INTERPRETED = re.compile(r"`([^`]+)`")
_RST_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_RST_EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")
_RST_FOOTNOTE = re.compile(r"\s*\[(?:#\w*|\*|\d+)\]_")
_RST_SUBSTITUTION = re.compile(r"\|(\w[\w -]*)\|")
_RST_NAMED_REFERENCE = re.compile(r"(?<=[A-Za-z0-9])_(?=[\s.,;:)]|$)")
_RST_LINE_BLOCK = re.compile(r"^\|\s+")


def _link_text(text: str) -> str:
    """`title <target>` -> title; `~a.b.c` -> c; `!name` -> name."""
    match = re.match(r"^(.*?)\s*<[^<>]*>$", text, flags=re.DOTALL)
    if match and match.group(1):
        text = match.group(1)
    elif match:
        text = text.strip("<>")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return text.lstrip("!")


def rst_inline(text: str) -> str:
    """Replace reStructuredText inline markup by the words it shows."""
    text = _RST_FOOTNOTE.sub("", text)
    text = _RST_ROLE.sub(lambda m: _link_text(m.group(1)), text)
    text = _RST_LITERAL.sub(r"\1", text)
    text = _RST_REFERENCE.sub(lambda m: _link_text(m.group(1)), text)
    text = _RST_INTERPRETED.sub(lambda m: _link_text(m.group(1)), text)
    text = _RST_STRONG.sub(r"\1", text)
    text = _RST_EMPHASIS.sub(r"\1", text)
    text = _RST_NAMED_REFERENCE.sub("", text)
    text = _RST_LINE_BLOCK.sub("", text)
    return _RST_SUBSTITUTION.sub(r"\1", text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rst_paragraphs(text: str) -> Iterator[str]:
    """Prose paragraphs of one reStructuredText document.

    A small block-level reading, not a full parser: literal blocks (after `::`), doctest
    blocks, tables, comments, targets and non-prose directives are dropped; admonitions and
    API descriptions keep their body; section titles lose their underlines; list items
    become paragraphs of their own. What slips through is caught by `is_prose`.
    """
    lines = text.expandtabs(8).splitlines()
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in lines + [""]:
        if current and (not line.strip() or line.lstrip().startswith(".. ")):
            # An explicit markup line starts a construct even without a blank line before it.
            blocks.append(current)
            current = []
        if line.strip():
            current.append(line.rstrip())

    skip_deeper_than: int | None = None
    for block in blocks:
        indent = _indent(block[0])
        if skip_deeper_than is not None:
            if indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        first = block[0].strip()
        directive = _RST_DIRECTIVE.match(first)
        if first.startswith(".."):
            if directive and directive.group(1).split(":")[-1] in _RST_PROSE_DIRECTIVES:
                body = [ln for ln in block[1:] if not ln.strip().startswith(":")]
                if directive.group(1) in {"versionadded", "versionchanged", "deprecated"}:
                    body = block[1:]
                block = body
                if not block:
                    continue
            else:
                skip_deeper_than = indent
                continue
        if first.startswith((">>>", "+-", "+=", "$ ")) or re.match(r"^=+(\s+=+)+$", first):
            continue
        kept = [ln for ln in block if not _RST_UNDERLINE.match(ln.strip())]
        if not kept:
            continue
        items: list[list[str]] = [[]]
        for line in kept:
            if _RST_BULLET.match(line.strip()) and items[-1]:
                items.append([])
            items[-1].append(_RST_BULLET.sub("", line.strip(), count=1))
        literal_follows = kept[-1].rstrip().endswith("::")
        for item in items:
            paragraph = " ".join(item)
            if paragraph.endswith("::"):
                paragraph = paragraph[:-2].rstrip()
                paragraph = paragraph + ":" if paragraph and paragraph[-1].isalnum() else paragraph
            yield rst_inline(paragraph)
        if literal_follows:
            skip_deeper_than = indent


def python_doc_paragraphs(root: Path = PYTHON_DOC_SOURCES) -> Iterator[str]:
    """Prose of the Python documentation, from its reStructuredText sources."""
    for path in sorted(root.rglob("*.txt")):
        yield from rst_paragraphs(path.read_text(encoding="utf-8", errors="replace"))


# --------------------------------------------------------------------------------------
# HTML manuals


class _ProseExtractor(html.parser.HTMLParser):
    """Collect the text of block elements, leaving out code, tables and navigation."""

    BLOCK_TAGS = frozenset(
        "p div li dd dt td th tr h1 h2 h3 h4 h5 h6 blockquote ul ol dl section table br "
        "caption figure body".split()
    )
    SKIP_TAGS = frozenset("head script style pre table".split())
    SKIP_CLASSES = frozenset(
        "toc list-of-tables list-of-examples list-of-figures navheader navfooter nav-panel "
        "contents shortcontents header footer screen programlisting synopsis cmdsynopsis "
        "literallayout index indexterm docnav".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._buffer: list[str] = []
        self._skip_tag: str | None = None
        self._skip_depth = 0

    def _flush(self) -> None:
        if self._buffer:
            self.paragraphs.append("".join(self._buffer))
            self._buffer = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            self._skip_depth += tag == self._skip_tag
            return
        classes = set((dict(attrs).get("class") or "").split())
        if tag in self.SKIP_TAGS:
            self._flush()
            self._skip_tag, self._skip_depth = tag, 1
        elif classes & self.SKIP_CLASSES:
            self._flush()
            self._skip_tag, self._skip_depth = tag, 1
        elif tag in self.BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag in self.BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip_tag is None:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_paragraphs(text: str) -> list[str]:
    """Prose paragraphs of one HTML page (uncleaned; `clean_paragraphs` filters them)."""
    parser = _ProseExtractor()
    parser.feed(text)
    parser.close()
    return parser.paragraphs


def html_file_paragraphs(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        yield from html_paragraphs(path.read_text(encoding="utf-8", errors="replace"))


DEBIAN_REFERENCE_DIR = Path("/usr/share/debian-reference")
DEBIAN_HANDBOOK_DIR = Path("/usr/share/doc/debian-handbook/html/en-US")
GNU_STANDARDS_DIR = Path("/usr/share/doc/gnu-standards")


def debian_reference_paragraphs() -> Iterator[str]:
    return html_file_paragraphs(sorted(DEBIAN_REFERENCE_DIR.glob("*.en.html")))


def debian_handbook_paragraphs() -> Iterator[str]:
    return html_file_paragraphs(sorted(DEBIAN_HANDBOOK_DIR.glob("*.html")))


def gnu_standards_paragraphs() -> Iterator[str]:
    return html_file_paragraphs(sorted(GNU_STANDARDS_DIR.glob("*.html")))


# --------------------------------------------------------------------------------------
# GCIDE (the dictionary)

GCIDE_DICT = Path("/usr/share/dictd/gcide.dict.dz")
GCIDE_INDEX = Path("/usr/share/dictd/gcide.index")

_B64_DIGITS = {
    ch: i for i, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}
_GCIDE_ACCENTS = {
    "'": "\u0301",  # acute: ['e] -> é
    "`": "\u0300",  # grave
    '"': "\u0308",  # diaeresis
    "^": "\u0302",  # circumflex (when written before the letter)
    "~": "\u0303",  # tilde
    ",": "\u0327",  # cedilla
}
"""Combining marks for GCIDE's ASCII accent codes; other codes are pronunciation marks."""
_GCIDE_LIGATURES = {"ae": "ae", "oe": "oe", "AE": "Ae", "OE": "Oe"}
_GCIDE_PRONUNCIATION = re.compile(r"\\[^\\\n]{0,120}\\(?:\s*\([^()]{0,120}\))?")
_GCIDE_ENTITY = re.compile(r"\[([=.\-`'\"^~,*]?)([a-zA-Z]{1,2})(\^?)\]")
_GCIDE_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GCIDE_STRAY_HEADWORD = re.compile(r"^(\s*\[[^\]\n]*\])[ \t]+\S+[ \t]*$", flags=re.MULTILINE)
"""The dictd conversion leaves the next headword after some source tags: '[1913 Webster] Abatis'."""
_GCIDE_SYLLABLES = re.compile(r"(?<=[^\W\d_])[*`\"](?=[^\W\d_])")
"""Syllable and stress marks inside run-in headwords: 'An`thro*po*nom"ic*al'."""


def _dictd_number(text: str) -> int:
    """dictd index numbers are base 64, most significant digit first."""
    value = 0
    for ch in text:
        value = value * 64 + _B64_DIGITS[ch]
    return value


def _gcide_entity(match: re.Match[str]) -> str:
    mark, letters, suffix = match.groups()
    if not mark and not suffix:
        # "[ae]" is a ligature; "[It]"-like things are tags, removed with the brackets later.
        return _GCIDE_LIGATURES.get(letters, match.group(0))
    if mark in _GCIDE_ACCENTS and len(letters) == 1:
        return unicodedata.normalize("NFC", letters + _GCIDE_ACCENTS[mark])
    return letters  # pronunciation marks (macron, breve, dots) on ordinary words


def gcide_entry_text(entry: str) -> str:
    """One dictionary entry as plain text: 'Lamina, n. A thin plate or scale; ...'.

    Pronunciations, etymologies (in brackets), source tags such as [1913 Webster] and
    cross-reference braces are removed; accented letters written as '[\\'e]' become 'é'.
    """
    text = _GCIDE_STRAY_HEADWORD.sub(r"\1", entry)
    text = _GCIDE_PRONUNCIATION.sub("", text)
    text = _GCIDE_ENTITY.sub(_gcide_entity, text)
    while True:
        stripped = _GCIDE_BRACKETS.sub("", text)
        if stripped == text:
            break
        text = stripped
    text = text.replace("{", "").replace("}", "").replace("[", "").replace("]", "")
    text = _GCIDE_SYLLABLES.sub("", text)
    text = re.sub(r"\s+([,.;:])", r"\1", normalize_space(text))
    return re.sub(r"^([^,]*?)\s*,", r"\1,", text)


def gcide_paragraphs(dict_path: Path = GCIDE_DICT, index_path: Path = GCIDE_INDEX) -> Iterator[str]:
    """Every entry of the dictionary, in the dictionary's order, as one paragraph.

    The `.dict.dz` file is gzip-compatible; the index gives each entry's byte offset and
    length (several headwords may share one entry, so offsets are deduplicated).
    """
    with gzip.open(dict_path, "rb") as handle:
        data = handle.read()
    spans: set[tuple[int, int]] = set()
    for line in index_path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00-database"):
            continue
        spans.add((_dictd_number(parts[1]), _dictd_number(parts[2])))
    for offset, length in sorted(spans):
        entry = data[offset : offset + length].decode("utf-8", errors="replace")
        yield gcide_entry_text(entry)
