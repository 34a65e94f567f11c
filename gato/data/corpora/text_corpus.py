"""An English text corpus built offline from Debian packages.

Gato learns text from a web-scale corpus; we cannot download one, but Debian ships a good
deal of freely licensed English prose as ordinary packages, reachable through `apt` from
the package mirror. This module installs those packages when their files are missing,
cleans their markup away, and writes one paragraph per line, the form SentencePiece
trains on and the form the chat data is later cut from.

Sources, each a `Source` below (the licences are summarised from /usr/share/doc/PKG/copyright):

- `bible-kjv` + `bible-kjv-text`: the King James Bible (public domain text), read with the
  package's own `bible` program because the data file is compressed.
- `fortunes`, `fortunes-min`: the fortune-mod quotation files (BSD-style), minus the
  ASCII-art and foreign-language files.
- `python3.11-doc`: the reStructuredText sources of the Python documentation (PSF licence).
- `debian-reference-en`, `debian-handbook`, `gnu-standards`: English HTML manuals
  (GPL-2+; GPL-2+ or CC-BY-SA-3.0; GFDL without invariant sections).
- `dict-gcide`: the GNU Collaborative International Dictionary of English, mostly the 1913
  Webster with its literary quotations (GPL-2+).

CLI: ``python -m gato.data.corpora.text_corpus --out data/cache/text/corpus.txt``
"""

from __future__ import annotations

import gzip
import hashlib
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from gato.files import REPO_ROOT

DEFAULT_CORPUS_PATH = REPO_ROOT / "data" / "cache" / "text" / "corpus.txt"

MIN_WORDS = 4
"""Shorter fragments are mostly headings, table cells and list debris, not prose."""
MIN_LETTER_FRACTION = 0.75
"""Letters and spaces over all characters; below this a paragraph is code, a table or art."""
MAX_PARAGRAPH_CHARS = 2000
"""Longer paragraphs are cut at sentence ends: SentencePiece skips lines over its
`max_sentence_length` (4192 bytes by default) rather than truncating them."""


# --------------------------------------------------------------------------------------
# cleaning shared by every source


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace (newlines and tabs included) to one space.

    One paragraph per line is the corpus format, so layout inside a paragraph has to go;
    control characters go too, since they are never prose.
    """
    text = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
    return " ".join(text.split())


def is_prose(text: str) -> bool:
    """Whether a whitespace-normalized paragraph looks like natural language."""
    if len(text.split()) < MIN_WORDS:
        return False
    letters = sum(ch.isalpha() or ch == " " for ch in text)
    return letters >= MIN_LETTER_FRACTION * len(text)


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def chunk_paragraph(text: str, max_chars: int = MAX_PARAGRAPH_CHARS) -> list[str]:
    """Split an over-long paragraph at sentence ends (or, failing that, at spaces).

    Pieces are packed greedily so each chunk stays as long as allowed.
    """
    if len(text) <= max_chars:
        return [text]
    units: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            units.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        if sentence:
            units.append(sentence)
    chunks: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + 1 + len(unit) > max_chars:
            chunks.append(current)
            current = unit
        else:
            current = f"{current} {unit}" if current else unit
    if current:
        chunks.append(current)
    return chunks


def clean_paragraphs(raw: Iterable[str]) -> Iterator[str]:
    """Normalize, filter and chunk raw paragraphs from any source."""
    for text in raw:
        text = normalize_space(unicodedata.normalize("NFC", text))
        if is_prose(text):
            yield from chunk_paragraph(text)


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


# --------------------------------------------------------------------------------------
# sources, installation, the corpus file


@dataclass(frozen=True)
class Source:
    """One Debian package (or pair) of English text and how to read it."""

    name: str
    """Short name used in statistics."""
    packages: tuple[str, ...]
    """Debian packages that provide the files."""
    probe: Path
    """A file that exists exactly when the packages are installed."""
    licence: str
    """Summary of /usr/share/doc/PKG/copyright, recorded next to the model."""
    paragraphs: Callable[[], Iterable[str]]
    """Raw paragraphs; `clean_paragraphs` normalizes and filters them."""


SOURCES: tuple[Source, ...] = (
    Source(
        "bible-kjv",
        ("bible-kjv", "bible-kjv-text"),
        Path("/usr/lib/bible.data"),
        "King James Version text: public domain; bible program GPL-2+",
        bible_paragraphs,
    ),
    Source(
        "fortunes",
        ("fortunes", "fortunes-min"),
        FORTUNE_DIR / "literature",
        "BSD (fortune-mod, Regents of the University of California; notes per cookie file)",
        fortune_paragraphs,
    ),
    Source(
        "python-doc",
        ("python3.11-doc",),
        PYTHON_DOC_SOURCES / "tutorial" / "index.rst.txt",
        "PSF License Version 2 (Python documentation)",
        python_doc_paragraphs,
    ),
    Source(
        "debian-reference",
        ("debian-reference-en",),
        DEBIAN_REFERENCE_DIR / "index.en.html",
        "GPL-2+",
        debian_reference_paragraphs,
    ),
    Source(
        "debian-handbook",
        ("debian-handbook",),
        DEBIAN_HANDBOOK_DIR / "index.html",
        "GPL-2+ or CC-BY-SA-3.0",
        debian_handbook_paragraphs,
    ),
    Source(
        "gnu-standards",
        ("gnu-standards",),
        GNU_STANDARDS_DIR / "standards.html",
        "GFDL-1.3+ with no invariant sections",
        gnu_standards_paragraphs,
    ),
    Source(
        "gcide",
        ("dict-gcide",),
        GCIDE_DICT,
        "GPL-2+ (GCIDE; from Webster's 1913, public domain, and WordNet)",
        gcide_paragraphs,
    ),
)


def ensure_packages(sources: Sequence[Source] = SOURCES, install: bool = True) -> None:
    """Install the Debian packages whose files are missing, or say which ones are.

    `apt-get install` is the only network access the corpus needs; it is skipped entirely
    when every probe file is already there. A failed install runs `apt-get update` and
    tries once more, because a fresh container often has no package lists yet.
    """
    missing = [pkg for src in sources if not src.probe.exists() for pkg in src.packages]
    if not missing:
        return
    hint = f"install them with: apt-get update && apt-get install -y {' '.join(missing)}"
    if not install:
        raise FileNotFoundError(f"missing Debian packages {', '.join(missing)}; {hint}")
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError(f"missing Debian packages {', '.join(missing)} and no apt-get; {hint}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = [apt, "install", "-y", "--no-install-recommends", *missing]
    print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
    if subprocess.run(command, env=env, check=False).returncode != 0:
        subprocess.run([apt, "update"], env=env, check=False)
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise RuntimeError(f"apt-get could not install {', '.join(missing)}; {hint}")
    still = [pkg for src in sources if not src.probe.exists() for pkg in src.packages]
    if still:
        raise RuntimeError(f"after apt-get, files of {', '.join(still)} are still missing")


def iter_corpus(
    sources: Sequence[Source] = SOURCES,
    install: bool = True,
    counts: Counter[str] | None = None,
    sizes: Counter[str] | None = None,
) -> Iterator[str]:
    """Clean paragraphs of every source in a fixed order, exact duplicates removed.

    `counts` and `sizes`, when given, receive the paragraphs and UTF-8 bytes (newlines
    included) kept per source.
    """
    ensure_packages(sources, install=install)
    seen: set[bytes] = set()
    for source in sources:
        for paragraph in clean_paragraphs(source.paragraphs()):
            key = hashlib.blake2b(paragraph.encode("utf-8"), digest_size=16).digest()
            if key in seen:
                continue
            seen.add(key)
            if counts is not None:
                counts[source.name] += 1
            if sizes is not None:
                sizes[source.name] += len(paragraph.encode("utf-8")) + 1
            yield paragraph


def write_lines_atomically(lines: Iterable[str], out_path: str | Path) -> int:
    """Write one line per item to `out_path` via a temporary file and `os.replace`.

    A reader never sees a half-written corpus, and an interrupted run leaves the old one.
    Returns the number of bytes written.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="\n", dir=out_path.parent, suffix=".tmp", delete=False
    )
    try:
        with handle:
            for line in lines:
                data = line + "\n"
                handle.write(data)
                size += len(data.encode("utf-8"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)  # temporary files are private; the corpus is not
        os.replace(handle.name, out_path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return size


class CorpusStats(NamedTuple):
    path: Path
    paragraphs: int
    bytes: int
    per_source: dict[str, tuple[int, int]]
    """Source name -> (paragraphs, bytes)."""


def build_corpus(
    out_path: str | Path = DEFAULT_CORPUS_PATH,
    sources: Sequence[Source] = SOURCES,
    install: bool = True,
) -> CorpusStats:
    """Gather, clean and write the corpus; one paragraph per line, UTF-8."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    lines = iter_corpus(sources, install=install, counts=counts, sizes=sizes)
    size = write_lines_atomically(lines, out_path)
    per_source = {name: (counts[name], sizes[name]) for name in counts}
    return CorpusStats(Path(out_path), sum(counts.values()), size, per_source)


def read_paragraphs(path: str | Path = DEFAULT_CORPUS_PATH) -> list[str]:
    """The paragraphs of a written corpus file, in file order."""
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


class CorpusSplit(NamedTuple):
    train: list[str]
    validation: list[str]


def split_corpus(
    paragraphs: Sequence[str], validation_fraction: float = 0.01, seed: int = 0
) -> CorpusSplit:
    """Deterministic train/validation split that depends only on the text and the seed.

    Each distinct paragraph is ranked by a keyed hash of (seed, text); the lowest
    round(fraction * distinct) ones (at least one when the fraction is positive and there
    are two or more distinct paragraphs) are validation. Ranking by content rather than
    position means that copies of a paragraph never straddle the split, and that adding
    paragraphs to the corpus moves few existing ones across it. Both lists keep input order.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    distinct = list(dict.fromkeys(paragraphs))
    n_val = round(validation_fraction * len(distinct))
    if validation_fraction > 0 and n_val == 0 and len(distinct) >= 2:
        n_val = 1
    salt = seed.to_bytes(8, "little", signed=True)

    def rank(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16, key=salt).digest()

    held_out = set(sorted(distinct, key=rank)[:n_val])
    train = [p for p in paragraphs if p not in held_out]
    validation = [p for p in paragraphs if p in held_out]
    return CorpusSplit(train, validation)


@dataclass
class CorpusOptions:
    """Where the corpus goes, and whether missing sources may be installed."""

    out: Path = DEFAULT_CORPUS_PATH
    """Corpus file."""
    install: bool = True
    """Install missing sources with apt-get (--no_install: fail instead)."""


def main(argv: Sequence[str] | None = None) -> None:
    from gato.cli import parse

    args = parse(
        CorpusOptions,
        argv,
        prog="python -m gato.data.corpora.text_corpus",
        description=__doc__.split("\n\n")[0],
    )
    start = time.perf_counter()
    stats = build_corpus(args.out, install=args.install)
    for name, (count, size) in stats.per_source.items():
        print(f"{name:18s} {count:9,d} paragraphs {size / 1e6:7.2f} MB")
    print(
        f"wrote {stats.paragraphs:,d} paragraphs, {stats.bytes / 1e6:.1f} MB to {stats.path} "
        f"in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
