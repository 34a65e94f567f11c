"""The training mixture: a recipe of weighted sources, sampled into fixed-length batches.

- `recipe`: the recipe TOML (`data/mixtures/*.toml`) and its resolution into sources, once a run.
- `sampler`: `Mixture`, weighted sampling of the sources' token caches into sequences.
- `loader`: `MixtureBatch` and `MixtureLoader`, deterministic resumable batches.
- `streaming`: `StreamingMixture`, control sources streamed (hub configs too large to download,
  local Parquet shards) and tokenized in the loader's workers; resumable where it stopped.

The sources themselves, one class per kind, are `gato.data.sources`.
"""

from gato.data.mixture.loader import MixtureBatch, MixtureLoader
from gato.data.mixture.recipe import (
    MIXTURES_DIR,
    Recipe,
    ResolvedRecipe,
    SourceEntry,
    load_recipe,
    parse_recipe,
    resolve_entry,
    resolve_recipe,
    resolve_source,
)
from gato.data.mixture.sampler import Mixture, MixtureConfig, Sample, open_mixture
from gato.data.mixture.streaming import StreamingLoader, StreamingMixture
from gato.data.sources import (
    BUILTIN_SOURCES,
    COLLECT_COMMAND,
    PROMPT_END,
    PROMPT_NONE,
    PROMPT_UNIFORM,
)

__all__ = [
    "BUILTIN_SOURCES",
    "COLLECT_COMMAND",
    "MIXTURES_DIR",
    "PROMPT_END",
    "PROMPT_NONE",
    "PROMPT_UNIFORM",
    "Mixture",
    "MixtureBatch",
    "MixtureConfig",
    "MixtureLoader",
    "Recipe",
    "ResolvedRecipe",
    "Sample",
    "SourceEntry",
    "StreamingLoader",
    "StreamingMixture",
    "load_recipe",
    "open_mixture",
    "parse_recipe",
    "resolve_entry",
    "resolve_recipe",
    "resolve_source",
]
