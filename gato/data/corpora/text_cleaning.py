"""Cleaning raw paragraphs of any corpus source into one-line prose paragraphs.

Whitespace is collapsed (one paragraph per line is the corpus format), fragments that are not
prose (headings, table cells, code, ASCII art) are dropped, and over-long paragraphs are cut at
sentence ends so SentencePiece does not skip them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

MIN_WORDS = 4
"""Shorter fragments are mostly headings, table cells and list debris, not prose."""
MIN_LETTER_FRACTION = 0.75
"""Letters and spaces over all characters; below this a paragraph is code, a table or art."""
MAX_PARAGRAPH_CHARS = 2000
"""Longer paragraphs are cut at sentence ends: SentencePiece skips lines over its
`max_sentence_length` (4192 bytes by default) rather than truncating them."""


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace (newlines and tabs included) to one space.

    One paragraph per line is the corpus format, so layout inside a paragraph has to go;
    control characters go too, since they are never prose.
    """
    text = " ".join(text.split())
    if text.isprintable():  # the common case, checked in C: no character-by-character pass
        return text
    # What is left unprintable is neither space nor prose; dropping it can leave two spaces.
    return " ".join("".join(ch for ch in text if ch.isprintable()).split())


def is_prose(text: str) -> bool:
    """Whether a whitespace-normalized paragraph looks like natural language."""
    if len(text.split()) < MIN_WORDS:
        return False
    letters = sum(map(str.isalpha, text)) + text.count(" ")
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
