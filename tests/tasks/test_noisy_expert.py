"""NoisyExpert: what it plays, what it records, and what it tells the expert it wraps."""

from __future__ import annotations

import numpy as np

from gato.tasks.experts import NoisyExpert
from gato.tasks.experts.atari import PongRAM
from gato.tasks.experts.base import Expert
from gato.tasks.registry import get_task


class _Counting(Expert):
    """Always chooses action 1; remembers what `played` was told."""

    def __init__(self, task):
        super().__init__(task)
        self.told: list[tuple[int, int]] = []

    def act(self, observation, env):
        return 1

    def played(self, action, chosen):
        self.told.append((action, chosen))


class _Env:
    def sample_action(self, rng):
        return int(rng.integers(2))


def test_discrete_dart_plays_random_actions_records_the_expert_and_tells_it():
    inner = _Counting(get_task("gym-cartpole"))
    noisy = NoisyExpert(inner, 0.5, seed=1, record="expert")
    pairs = [noisy.act_and_label({}, _Env()) for _ in range(2000)]
    played = np.array([p for p, _ in pairs])
    assert all(label == 1 for _, label in pairs)
    # A replacement draws either action: half of the 50% replacements change it.
    assert abs((played == 0).mean() - 0.25) < 0.04
    # The expert hears of exactly the steps where something else was played.
    assert inner.told == [(0, 1)] * int((played == 0).sum())
    assert noisy.name.endswith("+dart0.5")
    recorded = NoisyExpert(_Counting(get_task("gym-cartpole")), 0.5, seed=1)
    assert [recorded.act_and_label({}, _Env())[1] for _ in range(50)] == list(played[:50])


def test_pong_planner_drops_its_plan_when_another_action_is_played():
    expert = PongRAM(get_task("atari-pong"))
    expert._plan = [2, 2, 3]
    expert.played(0, 2)
    assert expert._plan == []
