"""gato: one transformer that plays Atari, controls simulated robots, captions images and chats.

Importing `gato` registers `GatoConfig` and `GatoModel` with the `transformers` Auto classes, so
`AutoModel.from_pretrained(folder)` loads a saved model without remote code.
"""

from gato.modeling.config import GatoConfig
from gato.modeling.model import GatoModel
from gato.schema import ActionSpec
from gato.tokens.batch import GatoBatch, TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer

__all__ = [
    "ActionSpec",
    "GatoBatch",
    "GatoConfig",
    "GatoModel",
    "GatoTokenizer",
    "TokenSequence",
    "collate",
]
__version__ = "0.1.0"
