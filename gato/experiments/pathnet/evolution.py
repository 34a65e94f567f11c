"""Pathway genotypes and the binary tournament (pure functions over numpy arrays).

A genotype is the paper's N x L matrix of module indices, stored layer-major as an int64 array of
shape (L, N): row l holds the N module indices (in [0, M)) that the pathway uses in layer l.
Repeated indices in a row name the same module once, so a pathway uses *at most* N modules per
layer, as in the paper.

Mutation (the paper): every element independently, with probability 1 / (N L), is shifted by an
integer drawn uniformly from [-2, 2]. The paper does not say what happens at the ends of [0, M);
we wrap around (modulo M), which keeps every index valid and every shift equally likely, so a
mutated genotype is always a valid one.

Binary tournament: two distinct pathways of the population are trained for T steps each (the
fitness callback does the training and returns the fitness); the loser's genotype is overwritten
by a mutated copy of the winner's. Ties go to the first of the two drawn.

`validate_genotype` and `active_modules` live with the PathNet layer (`gato.modeling.ffn`, which
the model uses) and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gato.modeling.ffn import active_modules, validate_genotype

__all__ = [
    "MAX_SHIFT",
    "TournamentResult",
    "active_modules",
    "mutate",
    "random_genotype",
    "random_population",
    "tournament",
    "validate_genotype",
]

MAX_SHIFT = 2
"""Mutations shift an index by an integer in [-MAX_SHIFT, MAX_SHIFT] (the paper: 2)."""


def random_genotype(layers: int, active: int, modules: int, rng: np.random.Generator) -> np.ndarray:
    """(L, N) indices drawn uniformly from [0, M) (repeats allowed: at most N distinct)."""
    if active > modules:
        raise ValueError(f"N={active} active modules per layer exceeds the M={modules} modules")
    return rng.integers(0, modules, size=(layers, active), dtype=np.int64)


def random_population(
    size: int, layers: int, active: int, modules: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """`size` random genotypes (the paper: 64)."""
    if size < 2:
        raise ValueError(f"a binary tournament needs a population of at least 2, got {size}")
    return [random_genotype(layers, active, modules, rng) for _ in range(size)]


def mutate(
    genotype: np.ndarray,
    modules: int,
    rng: np.random.Generator,
    probability: float | None = None,
    max_shift: int = MAX_SHIFT,
) -> np.ndarray:
    """A mutated copy: each element, with probability 1/(N L) by default, shifted by an integer
    uniform in [-max_shift, max_shift], wrapped into [0, M). The input is left unchanged."""
    genotype = np.asarray(genotype, dtype=np.int64)
    if probability is None:
        probability = 1.0 / genotype.size
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"mutation probability must lie in [0, 1], got {probability}")
    hit = rng.random(genotype.shape) < probability
    shift = rng.integers(-max_shift, max_shift + 1, size=genotype.shape)
    return np.where(hit, (genotype + shift) % modules, genotype)


@dataclass(frozen=True)
class TournamentResult:
    """What one binary tournament did."""

    winner: int
    """Population index of the winner (its genotype is unchanged)."""
    loser: int
    """Population index of the loser (now a mutated copy of the winner)."""
    winner_fitness: float
    loser_fitness: float
    winner_genotype: np.ndarray
    """(L, N) the winner's genotype (a copy)."""


def tournament(
    population: list[np.ndarray],
    fitness: Callable[[np.ndarray], float],
    modules: int,
    rng: np.random.Generator,
    probability: float | None = None,
) -> TournamentResult:
    """One binary tournament; the population is changed in place (the loser's entry replaced).

    Args:
        population: genotypes, each (L, N).
        fitness: genotype -> fitness (higher is better); in PathNet it trains the pathway for
            T steps and returns, e.g., its training accuracy over those steps.
        modules: M, for wrapping mutated indices.
        rng: draws the two contestants and the mutation.
        probability: per-element mutation probability (default 1 / (N L)).
    """
    if len(population) < 2:
        raise ValueError(f"a binary tournament needs a population of at least 2, got {population}")
    a, b = (int(i) for i in rng.choice(len(population), size=2, replace=False))
    fitness_a = float(fitness(population[a]))
    fitness_b = float(fitness(population[b]))
    if fitness_b > fitness_a:
        a, b, fitness_a, fitness_b = b, a, fitness_b, fitness_a
    winner_genotype = population[a].copy()
    population[b] = mutate(winner_genotype, modules, rng, probability)
    return TournamentResult(a, b, fitness_a, fitness_b, winner_genotype)
