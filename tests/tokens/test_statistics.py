"""Observation statistics and the standardising tokenizer: statistics against numpy's, tokens
against tokenizing the standardised values by hand, round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from gato.tokens.statistics import ObservationStatistics
from gato.tokens.tokenizer import GatoTokenizer


def episodes(seed: int = 0, width: int = 3, lengths=(5, 7)):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.01, 50.0, 2.0][:width])
    return [
        {
            "continuous_observations": (rng.normal(size=(n, width)) * scale + 3.0).tolist(),
            "continuous_actions": rng.uniform(-1, 1, (n, 2)).tolist(),
        }
        for n in lengths
    ]


def test_statistics_are_those_of_every_timestep_of_every_episode():
    rows = episodes()
    stats = ObservationStatistics.of_episodes(rows)
    values = np.concatenate([np.asarray(r["continuous_observations"]) for r in rows])
    np.testing.assert_allclose(stats.mean, values.mean(axis=0))
    np.testing.assert_allclose(stats.std, values.std(axis=0))
    z = stats.standardise(values)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0)


def test_episodes_without_steps_are_passed_over():
    rows = episodes()
    with_empty = [rows[0], {"continuous_observations": []}, rows[1]]
    a = ObservationStatistics.of_episodes(rows)
    b = ObservationStatistics.of_episodes(with_empty)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)


def test_a_constant_dimension_is_only_shifted():
    values = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    stats = ObservationStatistics.of_values(values)
    assert stats.std[1] == 1.0
    np.testing.assert_allclose(stats.standardise(np.array([[2.0, 7.0]])), [[0.0, 2.0]])


def test_statistics_round_trip_through_their_record():
    stats = ObservationStatistics.of_episodes(episodes())
    again = ObservationStatistics.from_dict(stats.to_dict())
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.std, stats.std)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no episodes"),
        ([{"continuous_observations": []}], "no episodes with steps"),
        ([{"continuous_actions": [[0.0]]}], "no 'continuous_observations'"),
        (episodes(width=3)[:1] + episodes(width=2)[:1], "disagree on the observation size"),
        ([{"continuous_observations": [[0.0, float("nan")]]}], "non-finite"),
    ],
)
def test_bad_episodes_are_refused_by_name(rows, message):
    with pytest.raises(ValueError, match=message):
        ObservationStatistics.of_episodes(rows)


@pytest.mark.parametrize(
    "record",
    [{"mean": [0.0]}, {"mean": [0.0, 1.0], "std": [1.0]}, {"mean": [0.0], "std": [-1.0]}, [1, 2]],
)
def test_bad_records_are_refused(record):
    with pytest.raises(ValueError, match="observation statistics"):
        ObservationStatistics.from_dict(record)


def test_standardising_wrong_widths_is_refused():
    stats = ObservationStatistics.of_episodes(episodes())
    with pytest.raises(ValueError, match="of 3 continuous values a timestep"):
        stats.standardise(np.zeros((2, 4)))


def test_the_standardising_tokenizer_tokenizes_z_and_leaves_the_original_alone():
    rows = episodes()
    stats = ObservationStatistics.of_episodes(rows)
    plain = GatoTokenizer()
    standard = plain.standardising(stats)
    assert plain.observation_statistics is None
    for row in rows:
        z = stats.standardise(np.asarray(row["continuous_observations"]))
        by_hand = plain.encode_jat_episode({**row, "continuous_observations": z})
        got = standard.encode_jat_episode(row)
        np.testing.assert_array_equal(got.ids, by_hand.ids)
        np.testing.assert_array_equal(got.local_positions, by_hand.local_positions)
        # The values read back from the tokens are z, to a bin's precision.
        observation = got.local_positions >= 0
        back = plain.decode_continuous(got.ids[observation]).reshape(z.shape)
        np.testing.assert_allclose(back, z, atol=0.03 * np.abs(z).max())
        # Separators and actions are not observations: untouched.
        raw = plain.encode_jat_episode(row).ids
        np.testing.assert_array_equal(got.ids[~observation], raw[~observation])
        assert (got.ids[observation] != raw[observation]).any()
    assert standard.standardising(None).observation_statistics is None


def test_nested_continuous_leaves_share_one_vector_in_the_tokenizers_order():
    """Leaves {"b": (T, 3), "a": (T, 2)} are read a-then-b (lexicographic), so the statistics'
    first two values are a's."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 2)) * 10, rng.normal(size=(4, 3)) + 5
    stats = ObservationStatistics.of_values(np.concatenate([a, b], axis=1))
    tokenizer = GatoTokenizer()
    got = tokenizer.standardising(stats).encode_episode({"continuous": {"b": b, "a": a}})
    z = stats.standardise(np.concatenate([a, b], axis=1))
    expected = tokenizer.encode_episode({"continuous": {"a": z[:, :2], "b": z[:, 2:]}})
    np.testing.assert_array_equal(got.ids, expected.ids)


def test_a_timestep_of_the_wrong_width_names_its_field():
    tokenizer = GatoTokenizer().standardising(ObservationStatistics.of_episodes(episodes()))
    with pytest.raises(ValueError, match="continuous_observations: .*of 3 continuous values"):
        tokenizer.encode_timestep({"continuous_observations": np.zeros(4)})


def test_standardising_takes_statistics_only():
    with pytest.raises(TypeError, match="ObservationStatistics"):
        GatoTokenizer().standardising({"mean": [0.0], "std": [1.0]})
