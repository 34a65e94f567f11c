"""The one table of token ids shared by every modality.

| range            | what                                                         |
| ---------------- | ------------------------------------------------------------ |
| [0, 32000)       | text: SentencePiece ids                                      |
| [32000, 33024)   | discrete values 0..1023                                      |
| [33024, 34048)   | continuous values: mu-law into [-1, 1], then 1024 bins       |
| 34048            | separator between a timestep's observation and its action    |
| 34049            | image patch placeholder (the patch itself travels separately) |
| 34050            | padding                                                      |
| 34051            | end of text / end of episode                                 |
| 34052            | beginning of a text sequence                                 |
| 34053            | a target hidden from the context in training (`*_dropout`)   |

Gato puts discrete values at [0, 1024), overlapping text. Giving them their own range means every
id has one meaning, and action decoding can mask logits to exactly the valid range.
"""

from __future__ import annotations

TEXT_VOCAB_SIZE = 32000
NUM_DISCRETE_VALUES = 1024
NUM_CONTINUOUS_BINS = 1024

DISCRETE_OFFSET = TEXT_VOCAB_SIZE
CONTINUOUS_OFFSET = DISCRETE_OFFSET + NUM_DISCRETE_VALUES
SEPARATOR_ID = CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS
PATCH_ID = SEPARATOR_ID + 1
PAD_ID = SEPARATOR_ID + 2
EOS_ID = SEPARATOR_ID + 3
BOS_ID = SEPARATOR_ID + 4
ACTION_MASK_ID = SEPARATOR_ID + 5
"""Stands in for a target token of the context that training hides (`mask_actions`, `mask_text`)."""

VOCAB_SIZE = ACTION_MASK_ID + 1
"""Number of ids that mean something."""

EMBEDDING_MULTIPLE = 64


def padded_vocab_size(multiple: int = EMBEDDING_MULTIPLE) -> int:
    """Size of the embedding table: the vocabulary rounded up to a multiple (fast matmuls)."""
    return -(-VOCAB_SIZE // multiple) * multiple


PADDED_VOCAB_SIZE = padded_vocab_size()

SPECIAL_TOKENS = {
    "separator": SEPARATOR_ID,
    "patch": PATCH_ID,
    "pad": PAD_ID,
    "eos": EOS_ID,
    "bos": BOS_ID,
    "action_mask": ACTION_MASK_ID,
}

NO_LOCAL_POSITION = -1
"""Local position of tokens that get no local position encoding (actions, separators, text)."""
