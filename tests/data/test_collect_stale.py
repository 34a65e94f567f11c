"""Collected episodes record how they were played; the registry's own folder is collected again
when the registry has changed its expert settings since, and anything else is left alone."""

from __future__ import annotations

import dataclasses
import json

import datasets
import pytest

from gato.data.collect import (
    CollectConfig,
    changed_settings,
    collect,
    recorded_collection,
    registry_collection,
)
from gato.data.sources import BuildPlan, ControlSource
from gato.tasks.registry import get_task


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def test_changed_settings_names_what_differs_and_skips_what_is_not_recorded():
    task = get_task("atari-pong")
    today = registry_collection(task)
    assert today["policy"] == "pong-frames" and today["expert_params"] == {}
    assert today["dart"] == 0.05 and today["filter"] is False
    assert changed_settings(task, today) == []
    assert changed_settings(task, {**today, "expert_params": {"horizon": 4}}) == ["expert_params"]
    assert changed_settings(task, {**today, "dart": 0.1, "policy": "random"}) == [
        "dart",
        "policy",
    ]
    # The planner's games of the previous registry are stale now (pong-ram, filtered).
    before = {**today, "policy": "pong-ram", "expert_params": {"dead_zone": 8.0}, "dart": 0.0,
              "filter": True}  # fmt: skip
    assert changed_settings(task, before) == ["dart", "expert_params", "filter", "policy"]
    sticky = {**today, "env": {**task.env, "repeat_action_probability": 0.25}}
    assert changed_settings(task, sticky) == ["env"]
    # Written before the parameters (or the env) were recorded: only what is recorded is judged.
    older = {k: v for k, v in today.items() if k not in ("expert_params", "env")}
    assert changed_settings(task, older) == []
    # A JSON round trip (how the info is stored) changes nothing.
    assert changed_settings(task, json.loads(json.dumps(today))) == []
    swingup = get_task("dmc-cartpole-swingup")
    assert registry_collection(swingup)["dart"] == swingup.dart > 0
    assert registry_collection(swingup)["action_noise"] == 0.0


def test_a_collection_records_its_settings(tmp_path):
    out = tmp_path / "pendulum"
    result = collect(
        CollectConfig("gym-pendulum", 1, output=str(out), seed=3, progress=False, dart=0.2,
                      filter=False)
    )  # fmt: skip
    recorded = recorded_collection(out)
    assert recorded == json.loads(json.dumps(result.metadata))
    assert recorded["dart"] == 0.2 and recorded["expert_params"] == {}
    # Unfiltered where the registry filters: both settings differ from the registry's.
    assert recorded["filter"] is False
    assert changed_settings(get_task("gym-pendulum"), recorded) == ["dart", "filter"]
    assert recorded_collection(tmp_path / "nothing") is None
    plain = tmp_path / "plain"
    datasets.Dataset.from_dict({"rewards": [[0.0]]}).save_to_disk(str(plain))
    assert recorded_collection(plain) is None  # not collected here


def test_stale_episodes_are_collected_again_and_other_folders_left_alone(tmp_path, monkeypatch):
    task = get_task("gym-pendulum")
    default = tmp_path / "default"
    monkeypatch.setattr(
        ControlSource, "task", lambda self: dataclasses.replace(task, dataset=str(default))
    )
    collect(
        CollectConfig(task.id, 1, output=str(default), seed=0, progress=False, dart=0.3,
                      filter=False)
    )  # fmt: skip
    source = ControlSource(task.id, str(default), buildable=True)
    assert source.stale() == "it was collected with other settings (dart, filter)"
    assert source.is_missing()
    with pytest.warns(UserWarning, match=r"other settings \(dart, filter\); rebuild it with"):
        source.load()
    source.build(BuildPlan(episodes=1, workers=1))
    assert source.stale() is None and not source.is_missing()
    assert recorded_collection(default)["dart"] == 0.0
    # Another folder collected with other settings is the user's: read as it is.
    elsewhere = tmp_path / "elsewhere"
    collect(
        CollectConfig(task.id, 1, output=str(elsewhere), seed=0, progress=False, dart=0.3,
                      filter=False)
    )  # fmt: skip
    assert ControlSource(task.id, str(elsewhere), buildable=True).stale() is None
    # Not buildable (a hub or user dataset in the registry's place): never judged.
    collect(
        CollectConfig(task.id, 1, output=str(default), seed=0, progress=False, dart=0.3,
                      filter=False)
    )  # fmt: skip
    assert ControlSource(task.id, str(default)).stale() is None
    assert ControlSource(task.id, str(tmp_path / "missing"), buildable=True).stale() is None
