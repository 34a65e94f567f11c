"""Sources with batches of their own (`own_batches`): whole batches of one source, each source
keeping its share of rows, recipes without the key drawn as before."""

from __future__ import annotations

import numpy as np
import pytest

from gato.data.corpora import vision_language as vl
from gato.data.mixture import Mixture, MixtureConfig, Recipe, SourceEntry, parse_recipe


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    sizes = vl.BuildSizes(train=20, validation=5, heldout=5)
    vl.build_dataset("captions", root / "captions", sizes)
    vl.build_dataset("vqa", root / "vqa", sizes)
    return root


def recipe(pairs, own: bool, until: int | None = None, rows: int | None = None) -> Recipe:
    return Recipe(
        "own",
        (
            SourceEntry("captions", 1.0, path=str(pairs / "captions")),
            SourceEntry(
                "alone",
                2.0,
                path=str(pairs / "vqa"),
                kind="captions",
                own_batches=own,
                until_step=until,
                batch_rows=rows,
            ),  # fmt: skip
            SourceEntry("shared", 1.0, path=str(pairs / "vqa"), kind="captions"),
        ),
    )


def config(tmp_path, batch_size: int = 8) -> MixtureConfig:
    return MixtureConfig(
        context_length=128, batch_size=batch_size, cache_root=str(tmp_path / "t"), seed=3
    )


def test_an_own_batch_source_fills_whole_batches_and_keeps_its_share(pairs, tmp_path):
    mixture = Mixture(recipe(pairs, own=True), config(tmp_path), progress=False)
    own_steps, rows = 0, np.zeros(3)
    steps = 400
    for step in range(steps):
        sources = [s.source for s in mixture.samples(step)]
        np.add.at(rows, sources, 1)
        if 1 in sources:
            assert set(sources) == {1}  # never shared with another source
            own_steps += 1
    # Half of the weight: about half the steps, and so about half the rows (binomial, 400 draws).
    assert abs(own_steps / steps - 0.5) < 0.1
    np.testing.assert_allclose(rows / rows.sum(), [0.25, 0.5, 0.25], atol=0.06)
    # A batch is still a pure function of (seed, step).
    again = Mixture(recipe(pairs, own=True), config(tmp_path), progress=False)
    for step in (0, 7, 123):
        a, b = mixture.batch(step).batch, again.batch(step).batch
        np.testing.assert_array_equal(a.input_ids.numpy(), b.input_ids.numpy())
    assert mixture.fingerprint() != Mixture(recipe(pairs, own=False), config(tmp_path),
                                            progress=False).fingerprint()  # fmt: skip
    assert "alone" in mixture.describe() and "own batches" in mixture.describe()


def test_without_own_batches_the_draws_are_unchanged(pairs, tmp_path):
    shared = Mixture(recipe(pairs, own=False), config(tmp_path), progress=False)
    for step in range(5):
        rng = np.random.default_rng([3, step])
        expected = rng.choice(3, size=8, p=[0.25, 0.5, 0.25])
        assert [s.source for s in shared.samples(step)] == list(expected)


def test_own_batches_end_with_their_steps(pairs, tmp_path):
    mixture = Mixture(recipe(pairs, own=True, until=50), config(tmp_path), progress=False)
    late = {s.source for step in range(50, 120) for s in mixture.samples(step)}
    assert late == {0, 2}


def test_the_key_is_read_and_checked():
    entry = {"task": "captions", "weight": 1.0, "own_batches": True}
    assert parse_recipe({"sources": [entry]}).sources[0].own_batches
    with pytest.raises(ValueError, match="own_batches must be true or false, got 'yes'"):
        parse_recipe({"sources": [{**entry, "own_batches": "yes"}]})


def test_an_own_batch_source_may_size_its_batches(pairs, tmp_path):
    mixture = Mixture(recipe(pairs, own=True, rows=16), config(tmp_path), progress=False)
    sizes = {}
    for step in range(60):
        samples = mixture.samples(step)
        sizes.setdefault(samples[0].source == 1, set()).add(len(samples))
        assert len(mixture.batch(step).batch.input_ids) == len(samples)
    assert sizes == {True: {16}, False: {8}}  # its own 16 rows; the others the run's 8
    # The same steps are its as without the size: only its batches grow.
    plain = Mixture(recipe(pairs, own=True), config(tmp_path), progress=False)
    for step in range(60):
        own = mixture.samples(step)[0].source == 1
        assert own == (plain.samples(step)[0].source == 1)
    assert plain.fingerprint() != mixture.fingerprint()
    assert "own batches of 16 rows" in mixture.describe()


def test_batch_rows_is_checked():
    entry = {"task": "captions", "weight": 1.0, "own_batches": True, "batch_rows": 32}
    assert parse_recipe({"sources": [entry]}).sources[0].batch_rows == 32
    for bad in (0, 2.5, True, "32"):
        with pytest.raises(ValueError, match="batch_rows must be an integer >= 1"):
            parse_recipe({"sources": [{**entry, "batch_rows": bad}]})
    with pytest.raises(ValueError, match="batch_rows needs own_batches = true"):
        parse_recipe({"sources": [{**entry, "own_batches": False}]})


def test_streaming_refuses_own_batches(pairs):
    from gato.data.mixture.streaming import StreamingMixture

    with pytest.raises(ValueError, match=r"own_batches \(alone\) needs the token-cache mixture"):
        StreamingMixture.from_recipe(recipe(pairs, own=True), MixtureConfig(context_length=64))
