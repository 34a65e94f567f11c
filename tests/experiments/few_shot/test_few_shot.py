"""The few-shot experiment's protocol pieces: its split, its statistics and its report."""

from __future__ import annotations

import math

import pytest

from gato.experiments.few_shot.experiment import (
    ML45_HELDOUT,
    ML45_TRAIN,
    FewShotConfig,
    results_markdown,
    summarize,
    t_interval,
)
from gato.tasks.registry import load_registry


def test_ml45_split_is_the_registrys_metaworld_tasks():
    assert len(ML45_TRAIN) == 45 and len(ML45_HELDOUT) == 5
    assert not set(ML45_TRAIN) & set(ML45_HELDOUT)
    registry = load_registry()
    config = FewShotConfig()
    for task in [*config.pretrain_tasks, *config.heldout_tasks]:
        assert registry[task].suite == "metaworld"
        assert registry[task].has_offline_expert, task


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="must not be pretrained on"):
        FewShotConfig(pretrain_tasks=["metaworld-reach"], heldout_tasks=["metaworld-reach"])
    with pytest.raises(ValueError, match="positive counts"):
        FewShotConfig(demos=[0, 10])
    with pytest.raises(ValueError, match="finetune_steps"):
        FewShotConfig(finetune_steps=0)


def test_t_interval_known_answers():
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3))
    mean, half = t_interval([0.5])
    assert mean == 0.5 and math.isnan(half)
    with pytest.raises(ValueError):
        t_interval([])


def test_summary_says_when_intervals_separate():
    records = []
    for seed, (p, s) in enumerate([(0.80, 0.10), (0.82, 0.12), (0.81, 0.11)]):
        records += [
            {"task": "a", "demos": 10, "seed": seed, "arm": "pretrained", "normalized_score": p},
            {"task": "a", "demos": 10, "seed": seed, "arm": "scratch", "normalized_score": s},
        ]
    for seed, (p, s) in enumerate([(0.5, 0.1), (0.1, 0.5)]):
        records += [
            {"task": "b", "demos": 1, "seed": seed, "arm": "pretrained", "normalized_score": p},
            {"task": "b", "demos": 1, "seed": seed, "arm": "scratch", "normalized_score": s},
        ]
    summary = summarize(records)
    wins = {(w["task"], w["demos"]): w for w in summary["wins"]}
    assert wins[("a", 10)]["pretrained_better"] and wins[("a", 10)]["intervals_separate"]
    assert not wins[("b", 1)]["pretrained_better"] and not wins[("b", 1)]["intervals_separate"]
    table = results_markdown(summary)
    assert "| a | 10 | 81.0% +- 2.5 (n=3) | 11.0% +- 2.5 (n=3) | yes | yes |" in table
