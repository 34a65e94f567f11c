"""The model as an agent (`GatoPolicy`), its prompts, and loading checkpoints for deployment.

- `agent`: `GatoPolicy` (batched lockstep decoding, the sliding context), `PolicyConfig`.
- `prompts`: `demonstration_prompt` (a task's best dataset episode), `prompt_budget`.
- `loading`: `load_pretrained` from a model, checkpoint or run folder; `CheckpointError`.
- `environment`: the policy in a user's own loop (the environment's observations and actions;
  `GatoPolicy.for_env(env)`, a gymnasium wrapper).

The decoding machinery lives in `gato.inference` (`KVCache`, `StaticDecoder`, `sample_tokens`);
it is re-exported here, where a policy's users look for it.
"""

from gato.inference.cache import KVCache
from gato.inference.sampling import sample_tokens
from gato.inference.static import StaticDecoder
from gato.policy.agent import GatoPolicy, PolicyConfig, prompt_budget
from gato.policy.loading import (
    CheckpointError,
    load_pretrained,
    resolve_model_dir,
    task_tokenizer,
)
from gato.policy.prompts import demonstration_episode, demonstration_prompt

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
    "task_tokenizer",
]
