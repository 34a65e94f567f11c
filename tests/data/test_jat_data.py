"""JAT's hub data as it is: both layouts, both splits, empty episodes, names and versions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from jat_fixtures import FAMILY_CONFIGS, JAT_CONFIGS, MUJOCO_V4_WIDTHS, family, write_config

from gato.data import EpisodeSchemaError, load_episodes
from gato.data.corpora.text import load_texts
from gato.data.corpora.vision_language import iter_captions, load_captions
from gato.tasks.registry import get_task, list_tasks

CONTROL = [c for c in FAMILY_CONFIGS if family(c) not in ("captions", "text")]


# ---------------------------------------------------------------------------------------------
# Names and versions
# ---------------------------------------------------------------------------------------------


def test_the_config_list_is_jats():
    assert len([c for c, env in JAT_CONFIGS.items() if env]) == 157
    assert JAT_CONFIGS["babyai-put-next"] == "BabyAI-PutNextS7N4-v0"
    assert "babyai-key-in-box" not in JAT_CONFIGS
    assert JAT_CONFIGS["mujoco-humanoid"] == "Humanoid-v4"


def test_every_claimed_config_is_named_exactly_with_its_recording_environment():
    claims = [t for t in list_tasks() if t.dataset_config is not None]
    assert len(claims) >= 60
    for task in claims:
        assert task.dataset_config in JAT_CONFIGS, (task.id, task.dataset_config)
        assert task.dataset_env == JAT_CONFIGS[task.dataset_config], task.id


def test_tasks_named_after_a_jat_config_run_jats_environment():
    named = [t for t in list_tasks() if t.id in JAT_CONFIGS]
    assert sum(t.suite == "babyai" for t in named) == 39
    assert sum(t.suite == "metaworld" for t in named) == 50
    for task in named:
        recorded = JAT_CONFIGS[task.id]
        if task.suite == "babyai":
            assert task.env["level"] == recorded, task.id
        elif task.suite == "metaworld":  # JAT recorded v2, we run v3: same task, same widths
            assert task.env["name"].rsplit("-", 1)[0] == recorded.rsplit("-", 1)[0], task.id
        elif task.suite == "atari":
            assert recorded == f"ALE/{task.env['game']}-v5", task.id
    assert get_task("babyai-put-next").env["level"] == "BabyAI-PutNextS7N4-v0"
    assert get_task("babyai-key-in-box").dataset_config is None


def test_mujoco_tasks_that_read_jat_data_have_v4_widths():
    for task in list_tasks():
        if task.dataset_config in MUJOCO_V4_WIDTHS:
            obs, act = MUJOCO_V4_WIDTHS[task.dataset_config]
            assert task.observation["continuous_observations"].shape == (obs,), task.id
            assert task.action.shape == (act,), task.id
    assert get_task("gym-humanoid-v4").env["id"] == "Humanoid-v4"
    assert get_task("gym-humanoid").dataset_config is None  # v5: 348 wide, cannot read them


# ---------------------------------------------------------------------------------------------
# Loading every family, in both layouts and both splits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["converted", "uploaded"])
@pytest.mark.parametrize("config", CONTROL)
def test_control_configs_load_with_empty_episodes_dropped(tmp_path, config, layout):
    write_config(tmp_path, config, layout, shards=2 if layout == "uploaded" else 1)
    for split in ("train", "test"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            episodes = load_episodes(tmp_path, split=split, name=config)
        dropped = [w for w in caught if "empty episodes" in str(w.message)]
        assert len(dropped) == 1 and "dropped 1 empty episodes (no steps) of 3" in str(
            dropped[0].message
        )
        assert len(episodes) == 2
        assert [len(r) for r in episodes["rewards"]] == [6, 4]
    row = episodes[0]
    if config.startswith("atari"):
        assert row["image_observations"].shape == (6, 84, 84, 4)
        assert row["image_observations"].dtype == np.uint8
    elif config.startswith("babyai"):
        assert row["discrete_observations"].shape == (6, 148)
        assert row["text_observations"][0] == "go to the red ball"
    else:
        width = 39 if config.startswith("metaworld") else MUJOCO_V4_WIDTHS[config][0]
        assert row["continuous_observations"].shape == (6, width)
    if config.startswith("metaworld"):  # raw actions, as JAT stores them
        assert np.abs(row["continuous_actions"]).max() > 1.0


def test_the_task_names_its_config_and_checks_its_widths(tmp_path):
    write_config(tmp_path, "mujoco-humanoid")
    write_config(tmp_path, "mujoco-hopper", layout="uploaded")
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        episodes = load_episodes(tmp_path, task="gym-humanoid-v4", split="test")
    assert episodes[0]["continuous_observations"].shape == (6, 376)
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        assert len(load_episodes(tmp_path, task="gym-hopper")) == 2
    # The v5 task cannot read v4 data: the error names both widths and the way out.
    with pytest.raises(EpisodeSchemaError) as err:
        load_episodes(tmp_path, task="gym-humanoid", name="mujoco-humanoid")
    message = str(err.value)
    for part in ("config mujoco-humanoid", "split train", "'continuous_observations'",
                 "376 values", "(348,)", "Humanoid-v5", "recorded with Humanoid-v4",
                 "'gym-humanoid-v4'"):  # fmt: skip
        assert part in message, (part, message)


def test_the_hub_id_streams_or_loads_the_named_config_and_split(tmp_path, monkeypatch):
    import datasets

    write_config(tmp_path, "mujoco-hopper")
    calls = []
    real = datasets.load_dataset

    def fake_load_dataset(path, name=None, split=None, streaming=False, **kwargs):
        calls.append((path, name, split, streaming))
        files = sorted(str(p) for p in (tmp_path / name / split).glob("*.parquet"))
        return real("parquet", data_files=files, split="train", streaming=streaming)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        loaded = load_episodes("jat-project/jat-dataset", task="gym-hopper", split="test")
    assert len(loaded) == 2
    stream = load_episodes("jat-project/jat-dataset", task="gym-hopper", streaming=True)
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        rows = list(stream)
    assert [len(r["rewards"]) for r in rows] == [6, 4]
    assert calls == [
        ("jat-project/jat-dataset", "mujoco-hopper", "test", False),
        ("jat-project/jat-dataset", "mujoco-hopper", "train", True),
    ]


@pytest.mark.parametrize("layout", ["converted", "uploaded"])
def test_caption_and_text_configs_load(tmp_path, layout):
    for config in ("conceptual-captions", "ok-vqa", "oscar"):
        write_config(tmp_path, config, layout)
    for split in ("train", "test"):
        for config in ("conceptual-captions", "ok-vqa"):
            examples = list(iter_captions(load_captions(tmp_path, split, config)))
            assert [max(e.image.shape[:2]) for e in examples] == [352, 352, 352]
            assert all(e.image.shape[2] == 3 for e in examples)
        texts = load_texts(tmp_path, split, "oscar")["text"]
        assert texts[1] == "" and len(texts) == 3
    vqa = load_captions(tmp_path, "train", "ok-vqa")["text"]
    assert vqa[0].startswith("Q: ") and " A: " in vqa[0]


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_an_unknown_config_names_the_ones_there_are(tmp_path):
    write_config(tmp_path, "atari-pong")
    write_config(tmp_path, "mujoco-hopper")
    expected = (
        r"unknown config 'atari-png'; did you mean 'atari-pong'\? the folder holds configs "
        r"\['atari-pong', 'mujoco-hopper'\]"
    )
    with pytest.raises(EpisodeSchemaError, match=expected):
        load_episodes(tmp_path, name="atari-png")
    with pytest.raises(EpisodeSchemaError, match=r"no split 'validation'; splits: \['test', 'tr"):
        load_episodes(tmp_path, name="atari-pong", split="validation")


def test_a_wrong_column_type_names_config_column_and_the_expected_type(tmp_path):
    import datasets

    rows = {
        "continuous_observations": [[[0.0] * 11] * 2],
        "continuous_actions": [[[0.0] * 3] * 2],
        "rewards": [["a", "b"]],
    }
    features = datasets.Features(
        {
            "continuous_observations": datasets.Sequence(
                datasets.Sequence(datasets.Value("float32"))
            ),
            "continuous_actions": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
            "rewards": datasets.Sequence(datasets.Value("string")),
        }
    )
    write_config(tmp_path, "mujoco-hopper", rows=rows, features=features)
    with pytest.raises(EpisodeSchemaError) as err:
        load_episodes(tmp_path, task="gym-hopper")
    assert "config mujoco-hopper" in str(err.value)
    assert "'rewards' has the wrong type" in str(err.value)
    assert "Value('float32')" in str(err.value)


def test_ragged_steps_and_widths_name_the_episode(tmp_path):
    rows = {
        "continuous_observations": [[[0.0] * 11] * 2, [[0.0] * 11] * 3],
        "continuous_actions": [[[0.0] * 3] * 2, [[0.0] * 3] * 2],
        "rewards": [[0.0] * 2, [0.0] * 3],
    }
    write_config(tmp_path, "mujoco-hopper", rows=rows, features=None)
    expected = (
        r"config mujoco-hopper, split train\]: episode 1: ragged steps: 'continuous_actions' "
        r"has 2 steps but 'rewards' has 3"
    )
    with pytest.raises(EpisodeSchemaError, match=expected):
        load_episodes(tmp_path, task="gym-hopper")
    rows = {
        "continuous_observations": [[[0.0] * 11] * 2, [[0.0] * 11, [0.0] * 12]],
        "continuous_actions": [[[0.0] * 3] * 2] * 2,
        "rewards": [[0.0] * 2] * 2,
    }
    write_config(tmp_path / "b", "mujoco-hopper", rows=rows)
    with pytest.raises(EpisodeSchemaError, match=r"episode 1: ragged 'continuous_observations': "
                       r"steps have 12 values where earlier ones have 11"):  # fmt: skip
        load_episodes(tmp_path / "b", task="gym-hopper")


def test_the_token_cache_refuses_a_width_mismatch_before_writing(tmp_path):
    from gato.data.sources import ControlSource
    from gato.data.token_cache import build_cache
    from gato.tokens.tokenizer import GatoTokenizer

    write_config(tmp_path / "jat", "mujoco-humanoid", splits=("train",))
    tokenizer = GatoTokenizer()
    wrong = ControlSource("gym-humanoid", str(tmp_path / "jat"), hub_name="mujoco-humanoid")
    with pytest.raises(EpisodeSchemaError, match=r"376 values per step but task 'gym-humanoid'"):
        build_cache(wrong, tokenizer, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("meta.json"))
    right = ControlSource("gym-humanoid-v4", str(tmp_path / "jat"))  # the task names its config
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        cache = build_cache(right, tokenizer, tmp_path / "cache")
    assert cache.num_episodes == 2 and cache.meta["num_steps"] == 10


def test_split_names_in_every_hub_file_layout(tmp_path):
    from pathlib import Path

    from gato.data.io import file_split

    root = Path("/hub/atari-pong")
    cases = {
        "train/0000.parquet": "train",
        "partial-test/0003.parquet": "test",
        "test-00001-of-00004-0a1b2c3d4e5f6a7b.parquet": "test",
        "data/train-00000-of-00001.parquet": "train",
        "validation.parquet": "validation",
        "episodes.parquet": None,
    }
    for name, split in cases.items():
        assert file_split(root / name, root) == split, name


def test_a_mirror_of_many_configs_needs_a_config_and_the_old_positional_split_still_works(
    tmp_path,
):
    write_config(tmp_path, "mujoco-hopper")
    write_config(tmp_path, "mujoco-swimmer")
    with pytest.raises(EpisodeSchemaError, match=r"holds configs \['mujoco-hopper', 'mujoco-swim"):
        load_episodes(tmp_path)
    with pytest.warns(UserWarning, match="dropped 1 empty"):
        episodes = load_episodes(tmp_path / "mujoco-hopper", "test")  # load_episodes(src, split)
    assert len(episodes) == 2


def test_an_interrupted_cache_build_leaves_the_previous_cache(tmp_path, monkeypatch):
    from gato.data.sources import ControlSource
    from gato.data.token_cache import TokenCache, build_cache
    from gato.tokens.tokenizer import GatoTokenizer

    write_config(tmp_path / "jat", "mujoco-hopper", splits=("train",))
    tokenizer = GatoTokenizer()
    source = ControlSource("gym-hopper", str(tmp_path / "jat"))
    with pytest.warns(UserWarning):
        first = build_cache(source, tokenizer, tmp_path / "cache")
    write_config(tmp_path / "jat", "mujoco-hopper", splits=("train",), seed=5)  # new data
    real = tokenizer.encode_jat_episode
    calls = []

    def crash_on_the_second(row, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(row, *args)

    monkeypatch.setattr(tokenizer, "encode_jat_episode", crash_on_the_second)
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning):
        build_cache(source, tokenizer, tmp_path / "cache")
    assert list((tmp_path / "cache" / "gym-hopper").iterdir()) == [first.path]
    assert TokenCache(first.path).num_episodes == 2
