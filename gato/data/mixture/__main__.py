"""`python -m gato.data.mixture RECIPE`: build missing caches and describe the mixture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gato.cli import parse
from gato.data.mixture.sampler import open_mixture


@dataclass
class Options:
    recipe: str = field(metadata={"positional": True})
    """Recipe file or name in data/mixtures/."""
    context: int = 1024
    """Tokens per sequence."""
    batch_size: int = 8
    """Sequences per batch."""
    split: str | None = None
    """Dataset split of every source (default: each source's own, from the recipe)."""


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m gato.data.mixture RECIPE`: build missing caches and describe the mixture."""
    args = parse(Options, argv, prog="python -m gato.data.mixture", description=main.__doc__)
    mixture = open_mixture(args.recipe, args.context, args.batch_size, split=args.split)
    print(mixture.describe())


if __name__ == "__main__":
    main()
