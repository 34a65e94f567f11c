"""Gato's score formulas against hand-computed cases and a slow reference."""

from __future__ import annotations

import numpy as np
import pytest
from references import slow_expert_score

from gato.tasks.scores import (
    expert_score,
    filter_threshold,
    keep_mask,
    normalized_score,
    random_score,
    window_size,
)


def test_window_size_is_a_tenth_capped_at_1000():
    assert window_size(1) == 1
    assert window_size(9) == 1  # 0.9 rounds down, but a window holds at least one episode
    assert window_size(20) == 2
    assert window_size(100) == 10
    assert window_size(10_000) == 1000
    assert window_size(50_000) == 1000
    with pytest.raises(ValueError):
        window_size(0)


def test_expert_score_hand_computed():
    # 20 episodes -> window 2; the best consecutive pair is (9, 11): mean 10.
    returns = [0.0] * 10 + [9.0, 11.0] + [1.0] * 8
    assert expert_score(returns) == pytest.approx(10.0)
    # Few episodes -> window 1 -> the best single episode.
    assert expert_score([3.0, -1.0, 7.0]) == pytest.approx(7.0)
    # An explicit window.
    assert expert_score([1.0, 2.0, 3.0, 4.0], window=4) == pytest.approx(2.5)
    # Negative returns (costs): the least negative window wins.
    assert expert_score([-200.0, -150.0, -120.0, -300.0], window=2) == pytest.approx(-135.0)


def test_expert_score_matches_the_slow_reference():
    rng = np.random.default_rng(0)
    for n in (1, 7, 10, 33, 250, 2500):
        returns = rng.normal(size=n).tolist()
        assert expert_score(returns) == pytest.approx(slow_expert_score(returns), abs=1e-9)


def test_expert_score_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        expert_score([])
    with pytest.raises(ValueError, match="finite"):
        expert_score([1.0, float("nan")])
    with pytest.raises(ValueError, match="window"):
        expert_score([1.0, 2.0], window=3)


def test_random_score_is_the_mean():
    assert random_score([-21.0, -20.0, -19.0]) == pytest.approx(-20.0)
    with pytest.raises(ValueError):
        random_score([])


def test_filter_threshold_is_gatos_80_percent():
    # Positive expert: 80% of it (Pong's 21 -> 16.8), whatever the random score.
    assert filter_threshold(21.0, -20.5) == pytest.approx(16.8)
    assert filter_threshold(1000.0, 0.0) == pytest.approx(800.0)
    # Costs (expert <= 0): 80% of the way from random to expert.
    assert filter_threshold(-150.0, -1200.0) == pytest.approx(-360.0)
    assert filter_threshold(-100.0, -200.0) == pytest.approx(-120.0)
    mask = keep_mask([20.0, 16.8, 16.7, -21.0], 21.0, -20.5)
    assert mask.tolist() == [True, True, False, False]


def test_normalized_score():
    assert normalized_score(-20.5, 21.0, -20.5) == pytest.approx(0.0)
    assert normalized_score(21.0, 21.0, -20.5) == pytest.approx(1.0)
    np.testing.assert_allclose(normalized_score([-150.0, -675.0], -150.0, -1200.0), [1.0, 0.5])
    with pytest.raises(ValueError):
        normalized_score(1.0, 2.0, 2.0)
