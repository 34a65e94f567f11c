"""Shared fixtures: small generated datasets in the project's schemas, and a recipe over them."""

from __future__ import annotations

import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest


def write_control_dataset(path: Path, lengths: list[int], seed: int = 0) -> Path:
    """Control episodes (2 discrete + 3 continuous observations, 2 continuous actions per step)
    in the JAT column schema, as a DatasetDict with a train split."""
    rng = np.random.default_rng(seed)
    rows = {
        "discrete_observations": [
            np.stack([np.full(n, e), np.arange(n) % 1024], 1) for e, n in enumerate(lengths)
        ],
        "continuous_observations": [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths],
        "continuous_actions": [rng.uniform(-1, 1, (n, 2)).astype(np.float32) for n in lengths],
        "rewards": [np.zeros(n, np.float32) for n in lengths],
    }
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(path))
    return path


@pytest.fixture(scope="session")
def small_recipe(tmp_path_factory) -> Path:
    """A recipe TOML over a generated control task, procedural captions and a tiny text corpus."""
    from gato.data.corpora import vision_language as vl
    from gato.data.corpora.text import build_text_dataset

    root = tmp_path_factory.mktemp("recipe")
    control = write_control_dataset(root / "control", [30, 45, 25, 60])
    vl.build_dataset("captions", root / "captions", vl.BuildSizes(40, 5, 5))
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(f"Sentence {i} of a little corpus." for i in range(200)) + "\n")
    build_text_dataset(corpus, root / "text", validation_fraction=0.1)
    recipe = root / "small.toml"
    recipe.write_text(
        'name = "small"\n'
        f'[[sources]]\ntask = "toy-control"\nweight = 2.0\nkind = "control"\npath = "{control}"\n'
        f'[[sources]]\ntask = "captions"\nweight = 1.0\npath = "{root / "captions"}"\n'
        f'[[sources]]\ntask = "text"\nweight = 1.0\npath = "{root / "text"}"\n'
    )
    return recipe


@pytest.fixture
def quiet_datasets():
    """No progress bars, and no warning for the empty episodes JAT-shaped fixtures hold."""
    datasets.disable_progress_bars()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*empty episodes")
        yield
    datasets.enable_progress_bars()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Test models are tiny: a second thread gains nothing, and on a busy 2-core machine two
    OpenMP threads can run many times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
