"""The model as an agent (`GatoPolicy`), its KV cache, and loading checkpoints for deployment.

- `agent`: `GatoPolicy` (prompting, batched lockstep decoding, the sliding context),
  `PolicyConfig`, sampling, demonstration prompts.
- `cache`: `KVCache` (ragged rows in preallocated buffers) and `StaticDecoder` (fixed-shape steps
  for CUDA graphs).
- `checkpoint`: `load_pretrained` from a model, checkpoint or run folder; `CheckpointError`.
"""

from gato.inference.cache import KVCache, StaticDecoder
from gato.policy.agent import (
    GatoPolicy,
    PolicyConfig,
    demonstration_episode,
    demonstration_prompt,
    prompt_budget,
    sample_tokens,
)
from gato.policy.loading import CheckpointError, load_pretrained, resolve_model_dir

__all__ = [
    "CheckpointError",
    "GatoPolicy",
    "KVCache",
    "PolicyConfig",
    "StaticDecoder",
    "demonstration_episode",
    "demonstration_prompt",
    "load_pretrained",
    "prompt_budget",
    "resolve_model_dir",
    "sample_tokens",
]
