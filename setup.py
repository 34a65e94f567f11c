"""Packaging beyond what pyproject.toml can say: the assets as package data.

The task registry, mixture recipes and expert policies (`data/`) and the SentencePiece model
(`tokenizers/`) live at the top of the repository, outside the `gato` package, and `tokenizers/`
must never hold an `__init__.py` (a package of that name would shadow Hugging Face's). An installed
copy still needs them, so they are mapped into the wheel as `gato/_assets/data/` and
`gato/_assets/tokenizers/` (folders without `__init__.py`); `gato.files.ASSETS_DIR` finds them
there when the package does not run from a checkout. pyproject.toml's `[tool.setuptools]` table
cannot add mapped folders to discovered packages, hence this file; everything else is in
pyproject.toml.
"""

from setuptools import find_packages, setup

ASSETS = {"gato._assets.data": "data", "gato._assets.tokenizers": "tokenizers"}

setup(
    packages=[*find_packages(include=["gato", "gato.*"]), *ASSETS],
    package_dir=ASSETS,
    package_data={
        "gato._assets.data": [
            "*.toml",
            "*.md",
            "tasks/*.toml",
            "mixtures/*.toml",
            "experts/*/*.toml",
            "experts/*/*/*.json",
            "experts/*/*/*.pt",
        ],
        "gato._assets.tokenizers": ["*.model", "*.md"],
        "gato.experiments.pathnet": ["tasks.toml"],
    },
)
