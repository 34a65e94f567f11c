"""`python -m gato.data.mixture RECIPE`: build missing caches and describe the mixture."""

from __future__ import annotations

from collections.abc import Sequence

from gato.data.mixture.sampler import open_mixture


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m gato.data.mixture RECIPE`: build missing caches and describe the mixture."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("recipe", help="recipe file or name in data/mixtures/")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--split", default=None)
    args = parser.parse_args(argv)
    mixture = open_mixture(args.recipe, args.context, args.batch_size, split=args.split)
    print(mixture.describe())


if __name__ == "__main__":
    main()
