"""PathNet (Fernando et al. 2017): evolved pathways through a modular network, frozen after each
task so that later tasks reuse them without changing them.

- `network`: the L x M modular network, task heads, freezing and re-initialisation.
- `evolution`: genotypes, mutation, the binary tournament (pure numpy).
- `digits`: the binary 8x8 digit tasks.
- `supervised`: task A -> task B transfer on binary digit tasks, against scratch and fine-tuning.
- `transfer`: no forgetting on a PathNet-FFN `GatoModel` (the modules: `gato.modeling.ffn`).
- `rl`: PathNet pathways as an actor-critic policy network for the IMPALA learner.
- `python -m gato.experiments.pathnet {supervised,rl,gato} ...`: the experiments (see
docs/pathnet.md).
"""

from gato.experiments.pathnet.evolution import (
    TournamentResult,
    active_modules,
    mutate,
    random_genotype,
    random_population,
    tournament,
    validate_genotype,
)
from gato.experiments.pathnet.network import PathNet, PathNetConfig

__all__ = [
    "PathNet",
    "PathNetConfig",
    "TournamentResult",
    "active_modules",
    "mutate",
    "random_genotype",
    "random_population",
    "tournament",
    "validate_genotype",
]
