"""An English text corpus built offline, from Debian packages or from the Python install.

Gato learns text from a web-scale corpus; we cannot download one, but Debian ships a good
deal of freely licensed English prose as ordinary packages, reachable through `apt` from
the package mirror, and every CPython install carries some (`text_portable`). This module
picks a source (`choose_sources`), installs the Debian packages when asked and possible,
cleans the markup away, and writes one paragraph per line, the form SentencePiece trains on
and the form the chat data is later cut from.

Which source (`--source`, or the environment variable `GATO_TEXT_SOURCE` for the main job):

- `auto` (default): the Debian packages when their files are all there; else, when running as
  root with `apt-get` on the PATH, install them; else (not root, no apt, or the install fails)
  the Python install's own text. apt is an option, never a requirement.
- `debian`: the Debian packages, installed with apt-get if missing; an error if that fails.
- `python`: the Python install's text only (about 1.8 MB; PSF License Version 2).

Sources, each a `Source` below (the licences are summarised from /usr/share/doc/PKG/copyright);
their readers are in `text_readers`, the cleaning in `text_cleaning`:

- `bible-kjv` + `bible-kjv-text`: the King James Bible (public domain text), read with the
  package's own `bible` program because the data file is compressed.
- `fortunes`, `fortunes-min`: the fortune-mod quotation files (BSD-style), minus the
  ASCII-art and foreign-language files.
- `python3.11-doc`: the reStructuredText sources of the Python documentation (PSF licence).
- `debian-reference-en`, `debian-handbook`, `gnu-standards`: English HTML manuals
  (GPL-2+; GPL-2+ or CC-BY-SA-3.0; GFDL without invariant sections).
- `dict-gcide`: the GNU Collaborative International Dictionary of English, mostly the 1913
  Webster with its literary quotations (GPL-2+).
- `python-stdlib` (the portable source, no package): the docstrings of CPython's standard
  library and its `pydoc_data` topics (PSF License Version 2).

CLI: ``python -m gato.data.corpora.text_corpus --out data/cache/text/corpus.txt``
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from gato.data.corpora import text_portable
from gato.data.corpora.text_cleaning import clean_paragraphs
from gato.data.corpora.text_readers import (
    DEBIAN_HANDBOOK_DIR,
    DEBIAN_REFERENCE_DIR,
    FORTUNE_DIR,
    GCIDE_DICT,
    GNU_STANDARDS_DIR,
    PYTHON_DOC_SOURCES,
    bible_paragraphs,
    debian_handbook_paragraphs,
    debian_reference_paragraphs,
    fortune_paragraphs,
    gcide_paragraphs,
    gnu_standards_paragraphs,
    python_doc_paragraphs,
)
from gato.files import cache_dir

DEFAULT_CORPUS_PATH = cache_dir() / "text" / "corpus.txt"


# --------------------------------------------------------------------------------------
# sources, installation, the corpus file


@dataclass(frozen=True)
class Source:
    """One Debian package (or pair) of English text, or the Python install's, and how to read
    it."""

    name: str
    """Short name used in statistics."""
    packages: tuple[str, ...]
    """Debian packages that provide the files (none for the Python install's text)."""
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


PYTHON_SOURCES: tuple[Source, ...] = (
    Source(
        "python-stdlib",
        (),
        text_portable.stdlib_dir() / "os.py",
        text_portable.PSF_LICENCE,
        text_portable.python_paragraphs,
    ),
)
"""The source that needs neither root nor apt: it comes with the interpreter."""

TextSourceKind = Literal["auto", "debian", "python"]
TEXT_SOURCE_KINDS: tuple[str, ...] = ("auto", "debian", "python")
TEXT_SOURCE_ENV = "GATO_TEXT_SOURCE"
"""Environment variable naming the source kind when no `--source` is given (the main job)."""


def default_source_kind() -> str:
    """`$GATO_TEXT_SOURCE`, or `auto` when it is unset."""
    return os.environ.get(TEXT_SOURCE_ENV, "") or "auto"


def _can_install() -> bool:
    """Whether `apt-get install` can work here: apt-get on the PATH and root privileges."""
    geteuid = getattr(os, "geteuid", None)
    return shutil.which("apt-get") is not None and geteuid is not None and geteuid() == 0


def choose_sources(kind: str | None = None, install: bool = True) -> tuple[Source, ...]:
    """The sources of the corpus for a source kind (see the module docstring).

    `kind` None means `default_source_kind()`. `install=False` never runs apt-get: `auto` then
    takes the Debian packages only when they are already there, and `debian` fails when they
    are not.
    """
    kind = default_source_kind() if kind is None else kind
    if kind not in TEXT_SOURCE_KINDS:
        raise ValueError(f"text source must be one of {TEXT_SOURCE_KINDS}, got {kind!r}")
    if kind == "python":
        return PYTHON_SOURCES
    if kind == "debian":
        ensure_packages(SOURCES, install=install)
        return SOURCES
    if all(source.probe.exists() for source in SOURCES):
        return SOURCES
    if install and _can_install():
        try:
            ensure_packages(SOURCES, install=True)
            return SOURCES
        except RuntimeError as error:
            print(f"{error}; using the Python install's text instead", file=sys.stderr)
    else:
        print(
            "Debian text packages missing and apt-get unavailable (not root, or no apt): "
            "using the Python install's text (PSF licence)",
            file=sys.stderr,
        )
    return PYTHON_SOURCES


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
    sources: Sequence[Source] | None = None,
    install: bool = True,
    counts: Counter[str] | None = None,
    sizes: Counter[str] | None = None,
) -> Iterator[str]:
    """Clean paragraphs of every source in a fixed order, exact duplicates removed.

    `sources` None means `choose_sources(install=install)`. `counts` and `sizes`, when given,
    receive the paragraphs and UTF-8 bytes (newlines included) kept per source.
    """
    if sources is None:
        sources = choose_sources(install=install)
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
    sources: Sequence[Source] | None = None,
    install: bool = True,
    kind: str | None = None,
) -> CorpusStats:
    """Gather, clean and write the corpus; one paragraph per line, UTF-8.

    `sources` None means `choose_sources(kind, install)`; the licences of the sources used are
    written beside the corpus (`<name>.licences.txt`).
    """
    if sources is None:
        sources = choose_sources(kind, install=install)
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    lines = iter_corpus(sources, install=install, counts=counts, sizes=sizes)
    size = write_lines_atomically(lines, out_path)
    licences = [f"{source.name}: {source.licence}" for source in sources]
    write_lines_atomically(licences, Path(out_path).with_suffix(".licences.txt"))
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
    """Install missing Debian sources with apt-get when possible (--no_install: never)."""
    source: TextSourceKind = field(default_factory=default_source_kind)  # type: ignore[assignment]
    """Text source: auto (Debian packages if present or installable, else the Python
    install's text), debian, or python (default: $GATO_TEXT_SOURCE, else auto)."""


def main(argv: Sequence[str] | None = None) -> None:
    from gato.cli import parse

    args = parse(
        CorpusOptions,
        argv,
        prog="python -m gato.data.corpora.text_corpus",
        description=__doc__.split("\n\n")[0],
    )
    start = time.perf_counter()
    stats = build_corpus(args.out, install=args.install, kind=args.source)
    for name, (count, size) in stats.per_source.items():
        print(f"{name:18s} {count:9,d} paragraphs {size / 1e6:7.2f} MB")
    print(
        f"wrote {stats.paragraphs:,d} paragraphs, {stats.bytes / 1e6:.1f} MB to {stats.path} "
        f"in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
