"""Streaming: episodes split without overlap, tokenized windows, and resuming where it stopped."""

from __future__ import annotations

import warnings

import datasets
import numpy as np
import pytest
from jat_fixtures import write_config

from gato.data import EpisodeSchemaError, load_episodes
from gato.data.mixture import MixtureConfig
from gato.data.mixture.streaming import StreamingMixture, cut_windows
from gato.data.sources import ControlSource
from gato.tokens.tokenizer import GatoTokenizer
from gato.tokens.windows import sequence_bounds

EPISODES = 12


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", message=".*empty episodes")
    yield
    datasets.enable_progress_bars()


def _marked_rows(count: int = EPISODES) -> dict[str, list]:
    """Hopper episodes (v4 widths) whose first observation value names the episode; the fifth
    is empty, as JAT's data has such rows."""
    rng = np.random.default_rng(0)
    lengths = [0 if k == 4 else 3 + k % 4 for k in range(count)]
    observations = []
    for k, t in enumerate(lengths):
        obs = rng.uniform(-0.5, 0.5, (t, 11))
        obs[:, 0] = 10.0 + k  # far from the others' values: its own token
        observations.append(obs.tolist())
    return {
        "continuous_observations": observations,
        "continuous_actions": [rng.uniform(-0.4, 0.4, (t, 3)).tolist() for t in lengths],
        "rewards": [[1.0] * t for t in lengths],
    }


@pytest.fixture
def hopper(tmp_path):
    write_config(tmp_path, "mujoco-hopper", "uploaded", splits=("train",), shards=4,
                 rows=_marked_rows())  # fmt: skip
    return tmp_path


def _marks(rows) -> list[int]:
    return [int(round(r["continuous_observations"][0, 0])) - 10 for r in rows]


def test_parts_of_a_stream_do_not_overlap_and_cover_it(hopper):
    stream = load_episodes(hopper, task="gym-hopper", streaming=True)
    assert stream.num_shards == 4
    everything = _marks(stream)
    assert sorted(everything) == [k for k in range(EPISODES) if k != 4]
    for parts in (2, 3, 4, 8):  # whole files (2, 4), then every n-th episode (3, 8)
        seen = [_marks(stream.shard(i, parts)) for i in range(parts)]
        flat = [k for part in seen for k in part]
        assert sorted(flat) == sorted(everything), parts


def test_a_stream_resumes_at_the_next_episode(hopper):
    stream = load_episodes(hopper, task="gym-hopper", streaming=True)
    rows = iter(stream)
    first = [next(rows) for _ in range(5)]
    state = stream.state_dict()
    rest = _marks(rows)
    again = load_episodes(hopper, task="gym-hopper", streaming=True)
    again.load_state_dict(state)
    assert _marks(again) == rest
    assert _marks(first) + rest == _marks(load_episodes(hopper, task="gym-hopper",
                                                        streaming=True))  # fmt: skip


def test_windows_are_whole_timesteps_that_rebuild_the_episode():
    tokenizer = GatoTokenizer()
    rng = np.random.default_rng(1)
    episode = tokenizer.encode_jat_episode(
        {
            "continuous_observations": rng.normal(size=(9, 11)),
            "continuous_actions": rng.uniform(-1, 1, (9, 3)),
        }  # fmt: skip
    )
    windows = cut_windows(episode, 40, "hopper")  # 15 tokens a step: 2 steps a window
    assert [w.num_timesteps for w in windows] == [2, 2, 2, 2, 1]
    assert all(len(w) <= 40 for w in windows)
    np.testing.assert_array_equal(np.concatenate([w.ids for w in windows]), episode.ids)
    assert (np.diff(sequence_bounds(windows[0])) == 15).all()
    with pytest.raises(ValueError, match="hopper: a timestep has 15 tokens, more than the "
                       "context of 10"):  # fmt: skip
        cut_windows(episode, 10, "hopper")


def _mixture(hopper, workers=0, rank=0, world=1, batch=3):
    source = ControlSource("gym-hopper", str(hopper))
    config = MixtureConfig(context_length=32, batch_size=batch, seed=3)
    return StreamingMixture([source], [1.0], config, workers=workers, rank=rank, world_size=world)


def _episode_marks(batch) -> set[int]:
    """Episodes a batch's windows came from (the first value of each timestep)."""
    tokenizer = GatoTokenizer()
    marks = set()
    for row, ids in enumerate(batch.batch.input_ids):
        for start in range(0, int(batch.batch.attention_mask[row].sum()), 15):
            value = tokenizer.decode_continuous(ids[start : start + 1].numpy())[0]
            marks.add(int(round(value)) - 10)
    return marks


def _same(a, b) -> bool:
    return all(
        torch_equal(getattr(a.batch, f), getattr(b.batch, f))
        for f in ("input_ids", "loss_mask", "attention_mask")
    ) and torch_equal(a.source_index, b.source_index)


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_loader_continues_the_stream(hopper, workers):
    mixture = _mixture(hopper, workers)
    loader = mixture.loader()
    straight = [next(loader) for _ in range(9)]
    loader.close()
    stopped = mixture.loader()
    for _ in range(5):
        next(stopped)
    state = stopped.state_dict()
    stopped.close()
    resumed = _mixture(hopper, workers).loader(state)
    for expected in straight[5:]:
        got = next(resumed)
        assert got.step == expected.step and _same(got, expected)
    resumed.close()
    with pytest.raises(ValueError, match="saved stream state belongs to other"):
        _mixture(hopper, workers, batch=4).loader(state)


def test_processes_read_disjoint_parts(hopper):
    seen = []
    for rank in range(2):
        loader = _mixture(hopper, rank=rank, world=2, batch=1).loader()
        marks = set()
        for _ in range(30):  # more windows than the part holds: a pass at least
            marks |= _episode_marks(next(loader))
        seen.append(marks)
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {k for k in range(EPISODES) if k != 4}


def test_a_streamed_cache_keeps_to_its_budget_and_matches_the_whole_cache(hopper, tmp_path):
    from gato.data.token_cache import build_cache, build_streamed_cache

    tokenizer = GatoTokenizer()
    source = ControlSource("gym-hopper", str(hopper))
    whole = build_cache(source, tokenizer, tmp_path / "whole")
    streamed = build_streamed_cache(source, tokenizer, tmp_path / "streamed", budget_bytes=10**6)
    assert streamed.meta["streamed"]["complete"] and streamed.num_episodes == EPISODES - 1
    for index in range(whole.num_episodes):
        np.testing.assert_array_equal(streamed.episode(index).ids, whole.episode(index).ids)
    # 15 tokens a step: 75 bytes, and 16 bytes of offsets; episodes of 3 to 6 steps.
    small = build_streamed_cache(source, tokenizer, tmp_path / "small", budget_bytes=1200)
    meta = small.meta["streamed"]
    assert not meta["complete"] and meta["bytes"] <= 1200 and 0 < small.num_episodes < 11
    on_disk = sum(f.stat().st_size for f in small.path.glob("*.bin"))
    assert on_disk == meta["bytes"]
    with pytest.raises(ValueError, match="more than the budget of 100"):
        build_streamed_cache(source, tokenizer, tmp_path / "tiny", budget_bytes=100)
    assert not list((tmp_path / "tiny").rglob("meta.json"))


def test_an_interrupted_streamed_build_leaves_the_previous_cache(hopper, tmp_path, monkeypatch):
    from gato.data.token_cache import TokenCache, build_streamed_cache

    tokenizer = GatoTokenizer()
    source = ControlSource("gym-hopper", str(hopper))
    first = build_streamed_cache(source, tokenizer, tmp_path, budget_bytes=10**6)
    calls = []
    real = tokenizer.encode_jat_episode

    def crash_on_the_fourth(row, *encoding):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(row, *encoding)

    monkeypatch.setattr(tokenizer, "encode_jat_episode", crash_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        build_streamed_cache(source, tokenizer, tmp_path, budget_bytes=2 * 10**6)
    caches = [p for p in (tmp_path / "gym-hopper").iterdir()]
    assert caches == [first.path]  # no temporary folder, the old cache whole
    assert TokenCache(first.path).num_episodes == EPISODES - 1


def test_a_bad_stream_fails_when_the_mixture_opens(tmp_path):
    from jat_fixtures import config_rows

    rows = config_rows("mujoco-humanoid", np.random.default_rng(0))
    write_config(tmp_path, "mujoco-humanoid", rows=rows, splits=("train",))
    config = MixtureConfig(context_length=1024, batch_size=2)
    wrong = ControlSource("gym-humanoid", str(tmp_path), hub_name="mujoco-humanoid")
    expected = (
        r"config mujoco-humanoid, split train\]: episode 0: column 'continuous_observations' has "
        r"376 values per step but task 'gym-humanoid' \(Humanoid-v5\) expects shape \(348,\)"
    )
    with pytest.raises(EpisodeSchemaError, match=expected):
        StreamingMixture([wrong], [1.0], config)
    short = MixtureConfig(context_length=64, batch_size=2)
    with pytest.raises(ValueError, match="a timestep has 394 tokens, more than the context of 64"):
        StreamingMixture([ControlSource("gym-humanoid-v4", str(tmp_path))], [1.0], short)


def test_a_recipe_of_jat_configs_streams(tmp_path):
    from gato.data.mixture import parse_recipe

    write_config(tmp_path, "mujoco-hopper", "uploaded", splits=("train",))
    write_config(tmp_path, "mujoco-humanoid", splits=("train",))
    recipe = parse_recipe(
        {
            "name": "jat",
            "sources": [
                {"task": "gym-hopper", "weight": 3.0, "path": str(tmp_path)},
                {"task": "gym-humanoid-v4", "weight": 1.0, "path": str(tmp_path)},
            ],
        }
    )
    config = MixtureConfig(context_length=512, batch_size=4, seed=0)
    mixture = StreamingMixture.from_recipe(recipe, config)
    assert mixture.source_names == ("gym-hopper", "gym-humanoid-v4")
    np.testing.assert_allclose(mixture.probabilities, [0.75, 0.25])
    loader = mixture.loader()
    drawn = np.concatenate([next(loader).source_index.numpy() for _ in range(25)])
    assert set(drawn.tolist()) == {0, 1} and 0.55 < (drawn == 0).mean() < 0.95
    batch = next(loader).batch
    assert batch.input_ids.shape == (4, 512) and batch.loss_mask.any()


def test_a_part_without_episodes_is_a_clear_error(tmp_path):
    rows = _marked_rows(3)  # episodes 0, 1, 2: more parts than episodes below
    write_config(tmp_path, "mujoco-hopper", splits=("train",), rows=rows)
    mixture = _mixture(tmp_path, rank=3, world=4, batch=1)
    with pytest.raises(ValueError, match=r"part 3/4: this part of the stream holds no episode"):
        next(mixture.loader())


def test_a_streamed_cache_puts_raw_actions_on_the_tasks_scale_as_the_whole_cache(tmp_path):
    """gym-pendulum's torque is in [-2, 2]: a dataset of raw actions (JAT's convention for data
    made elsewhere) is mapped by the task's bounds in both caches, not clipped to [-1, 1]."""
    from gato.data.token_cache import build_cache, build_streamed_cache

    rng = np.random.default_rng(1)
    lengths = [5, 7, 6]
    rows = {
        "continuous_observations": [rng.uniform(-1, 1, (t, 3)).tolist() for t in lengths],
        "continuous_actions": [rng.uniform(-2, 2, (t, 1)).tolist() for t in lengths],
        "rewards": [[-1.0] * t for t in lengths],
    }
    folder = tmp_path / "pendulum"
    folder.mkdir()
    datasets.Dataset.from_dict(rows).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    tokenizer = GatoTokenizer()
    source = ControlSource("gym-pendulum", str(folder))
    whole = build_cache(source, tokenizer, tmp_path / "whole")
    streamed = build_streamed_cache(source, tokenizer, tmp_path / "streamed", budget_bytes=10**6)
    assert streamed.num_episodes == whole.num_episodes == 3
    for index in range(whole.num_episodes):
        np.testing.assert_array_equal(streamed.episode(index).ids, whole.episode(index).ids)
    # Actions beyond +-1 raw keep distinct tokens: the cache did not clip them together.
    first = whole.episode(0)
    actions = first.ids[first.loss_mask.astype(bool)]
    assert len(set(actions.tolist())) == len(actions) == lengths[0]
