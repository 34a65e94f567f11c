"""gato: one transformer that plays Atari, controls simulated robots, captions images and chats."""

from gato.batch import GatoBatch, TokenSequence, collate
from gato.tokenizer import ActionSpec, GatoTokenizer

__all__ = ["ActionSpec", "GatoBatch", "GatoTokenizer", "TokenSequence", "collate"]
__version__ = "0.1.0"
