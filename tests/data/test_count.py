"""`python -m gato.data count`: exact counts of local data, labelled estimates of a hub's."""

from __future__ import annotations

import json
from types import SimpleNamespace

import datasets
import pytest
from jat_fixtures import write_config

from gato.data.__main__ import main
from gato.data.count import count_config


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def test_local_counts_are_exact_and_known(tmp_path, capsys):
    write_config(tmp_path, "mujoco-hopper", layout="uploaded")
    write_config(tmp_path, "atari-pong")
    write_config(tmp_path, "oscar")
    assert main(["count", str(tmp_path), "--json", "true"]) == 0
    counts = {(c["config"], c["split"]): c for c in json.loads(capsys.readouterr().out)}
    assert len(counts) == 6
    hopper = counts["mujoco-hopper", "test"]
    # Two non-empty episodes of 6 and 4 steps; a step is 11 observation values, the separator
    # and 3 action values: 15 tokens.
    assert (hopper["rows"], hopper["episodes"], hopper["timesteps"]) == (3, 2, 10)
    assert hopper["tokens"] == 10 * 15 and not hopper["estimated"]
    pong = counts["atari-pong", "train"]
    # 84x84 frames: 5x5 patches of 16 pixels once cut to 80x80, the separator, one action.
    assert pong["tokens"] == 10 * (25 + 1 + 1)
    assert counts["oscar", "train"]["kind"] == "text" and counts["oscar", "train"]["episodes"] == 3
    assert main(["count", str(tmp_path), "--name", "mujoco-hopper", "--split", "train"]) == 0
    table = capsys.readouterr().out
    assert "mujoco-hopper" in table and "exact" in table and "ESTIMATE" not in table


def test_a_hub_dataset_is_estimated_from_a_sample_and_labelled(tmp_path, monkeypatch, capsys):
    rows = {
        "continuous_observations": [[[0.0] * 11] * 4] * 10,
        "continuous_actions": [[[0.0] * 3] * 4] * 10,
        "rewards": [[1.0] * 4] * 10,
    }
    write_config(tmp_path, "mujoco-hopper", rows=rows, splits=("train",))
    real = datasets.load_dataset

    def fake_load_dataset(path, name=None, split=None, streaming=False, **kwargs):
        assert streaming, "a hub dataset must be streamed, never downloaded whole"
        files = sorted(str(p) for p in (tmp_path / name / split).glob("*.parquet"))
        return real("parquet", data_files=files, split="train", streaming=True)

    published = {"train": SimpleNamespace(num_examples=1000)}
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(
        datasets,
        "load_dataset_builder",
        lambda path, name: SimpleNamespace(info=SimpleNamespace(splits=published)),  # fmt: skip
    )
    count = count_config("jat-project/jat-dataset", "mujoco-hopper", "train", sample=5)
    assert count.estimated and count.sampled == 5 and count.rows == 1000
    assert (count.episodes, count.timesteps, count.tokens) == (1000, 4000, 4000 * 15)
    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda path: ["mujoco-hopper"])
    assert main(["count", "jat-project/jat-dataset", "--split", "train", "--sample", "5"]) == 0
    assert "ESTIMATE from 5 of 1,000 rows" in capsys.readouterr().out


def test_bad_sources_are_clear(tmp_path, capsys):
    assert main(["count", str(tmp_path / "missing" / "folder")]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    write_config(tmp_path, "mujoco-hopper")
    assert main(["count", str(tmp_path), "--name", "mujoco-hoper"]) == 2
    assert "unknown config 'mujoco-hoper'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sample must be a positive"):
        count_config(tmp_path, "mujoco-hopper", sample=0)
