"""The token cache: equal to tokenizing on the fly, atomic, invalidated when inputs change."""

from __future__ import annotations

import pickle

import datasets
import numpy as np
import pytest

from gato.data.corpora import vision_language as vl
from gato.data.corpora.text import build_text_dataset
from gato.data.sources import ControlSource, make_source
from gato.data.token_cache import TokenCache, build_cache
from gato.tokens.tokenizer import GatoTokenizer
from gato.tokens.windows import take_steps


def control_rows(episodes: int, images: bool, seed: int = 0) -> dict[str, list]:
    """JAT-schema episodes; discrete observation [episode, t] tells where a token came from."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {
        "discrete_observations": [],
        "continuous_observations": [],
        "rewards": [],
    }
    rows["image_observations" if images else "continuous_actions"] = []
    if images:
        rows["discrete_actions"] = []
    for e in range(episodes):
        steps = int(rng.integers(5, 30))
        rows["discrete_observations"].append(np.stack([np.full(steps, e), np.arange(steps)], 1))
        rows["continuous_observations"].append(rng.normal(size=(steps, 3)).astype(np.float32))
        rows["rewards"].append(rng.normal(size=steps).astype(np.float32))
        if images:
            frames = rng.integers(0, 256, (steps, 16, 32, 3), dtype=np.uint8)
            rows["image_observations"].append([vl._encode_png(f) for f in frames])
            rows["discrete_actions"].append(rng.integers(0, 4, steps))
        else:
            rows["continuous_actions"].append(rng.uniform(-1, 1, (steps, 2)).astype(np.float32))
    return rows


def control_dataset(path, episodes: int = 6, images: bool = False, seed: int = 0):
    features = {
        "discrete_observations": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
        "continuous_observations": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
        "rewards": datasets.Sequence(datasets.Value("float32")),
    }
    if images:
        features["image_observations"] = datasets.Sequence(datasets.Image())
        features["discrete_actions"] = datasets.Sequence(datasets.Value("int64"))
    else:
        features["continuous_actions"] = datasets.Sequence(
            datasets.Sequence(datasets.Value("float32"))
        )
    rows = control_rows(episodes, images, seed)
    dataset = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def tok() -> GatoTokenizer:
    return GatoTokenizer()


@pytest.fixture(scope="module")
def image_control(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("cache")
    path = control_dataset(root / "atari", episodes=5, images=True)
    source = make_source("control", "atari", str(path))
    return source, build_cache(source, tok, root / "tokens")


def assert_same(a, b):
    for name in ("ids", "local_positions", "loss_mask", "patches", "patch_positions"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    np.testing.assert_array_equal(a.timestep_starts, b.timestep_starts)
    np.testing.assert_array_equal(a.segment_starts, b.segment_starts)


def test_control_cache_equals_tokenizer(image_control, tok):
    source, cache = image_control
    rows = source.load().with_format("numpy")
    assert cache.num_episodes == 5
    for i in range(cache.num_episodes):
        expected = tok.encode_jat_episode(rows[i])
        assert_same(cache.episode(i), expected)
        bounds = cache.bounds(i)
        assert len(bounds) == expected.num_timesteps + 1
        for first, stop in [(0, 1), (2, 5), (1, expected.num_timesteps), (3, 3)]:
            assert_same(cache.read_steps(i, first, stop), take_steps(expected, first, stop))


def test_arbitrary_reads_equal_slices_of_the_stream(image_control):
    _, cache = image_control
    from gato.tokens.batch import TokenSequence

    stream = TokenSequence.concatenate([cache.episode(i) for i in range(cache.num_episodes)])
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = int(rng.integers(cache.num_tokens))
        stop = int(rng.integers(start, cache.num_tokens + 1))
        assert_same(cache.read(start, stop), stream.slice(start, stop))


def test_gathering_episodes_equals_packing_them(image_control, tmp_path, tok):
    from gato.tokens.batch import TokenSequence

    vl.build_dataset("captions", tmp_path / "c", vl.BuildSizes(10, 1, 1))
    captions = build_cache(make_source("captions", "c", str(tmp_path / "c")), tok, tmp_path / "t")
    for cache in (image_control[1], captions):
        for indices in ([0], [3, 1, 3], [4, 0, 2, 1]):
            expected = TokenSequence.pack([cache.episode(i) for i in indices])
            assert_same(cache.read_episodes(np.array(indices)), expected)
            lengths = np.cumsum([len(cache.episode(i)) for i in indices])[:-1]
            np.testing.assert_array_equal(expected.segment_starts, lengths)


def test_gathering_windows_equals_packing_their_reads(image_control, tmp_path, tok):
    from gato.tokens.batch import TokenSequence

    path = control_dataset(tmp_path / "pendulum", episodes=4)
    values = build_cache(make_source("control", "pendulum", str(path)), tok, tmp_path / "t")
    rng = np.random.default_rng(0)
    for cache in (image_control[1], values):
        steps = np.diff(cache.episode_steps)
        cases = [[(0, 0, 1)], [(1, 0, 0)], [(2, 1, int(steps[2]))], [(0, 2, 4), (0, 2, 4)]]
        for _ in range(20):  # random windows, to an episode's end too
            episodes = rng.integers(cache.num_episodes, size=int(rng.integers(1, 9)))
            firsts = [int(rng.integers(steps[e] + 1)) for e in episodes]
            pairs = zip(episodes, firsts, strict=True)
            stops = [int(rng.integers(f, steps[e] + 1)) for e, f in pairs]
            cases.append(list(zip(episodes.tolist(), firsts, stops, strict=True)))
        for windows in cases:
            expected = TokenSequence.pack([cache.read_steps(*w) for w in windows])
            assert_same(cache.read_windows(*np.array(windows).T), expected)
    cache = image_control[1]
    last = int(np.diff(cache.episode_steps)[0])
    for first, stop in [(0, last + 1), (3, 2), (-1, 1)]:
        with pytest.raises(ValueError, match="must lie within their episodes' timesteps"):
            cache.read_windows(np.array([0]), np.array([first]), np.array([stop]))


def test_continuous_control_and_stats(tmp_path, tok):
    path = control_dataset(tmp_path / "pendulum", episodes=4)
    cache = build_cache(make_source("control", "pendulum", str(path)), tok, tmp_path / "t")
    rows = make_source("control", "p", str(path)).load().with_format("numpy")
    assert cache.max_step_tokens == 2 + 3 + 1 + 2
    for i in range(4):
        assert_same(cache.episode(i), tok.encode_jat_episode(rows[i]))
    assert cache.num_patches == 0 and cache.read(0, 5).patches.shape == (0, 4, 16, 16)


def test_captions_and_text_equal_tokenizer(tmp_path, tok):
    vl.build_dataset("vqa", tmp_path / "vqa", vl.BuildSizes(8, 2, 2))
    cache = build_cache(make_source("captions", "vqa", str(tmp_path / "vqa")), tok, tmp_path / "t")
    for i, row in enumerate(vl.generate_rows("vqa", "train", 8)):
        assert_same(
            cache.episode(i), tok.encode_caption(row["images"], row["text"], row["question"])
        )
    corpus = tmp_path / "corpus.txt"
    lines = ["Short.", "A somewhat longer line of text, with punctuation!", "", "Ünïcode ✓"]
    corpus.write_text("\n".join(lines) + "\nfinal line\n")
    build_text_dataset(corpus, tmp_path / "text", validation_fraction=0.2)
    source = make_source("text", "text", str(tmp_path / "text"))
    cache = build_cache(source, tok, tmp_path / "t")
    texts = list(source.load()["text"])
    assert cache.num_episodes == len(texts)
    for i, text in enumerate(texts):
        assert_same(cache.episode(i), tok.encode_text_sequence(text))


def test_caption_image_size_option(tmp_path, tok):
    vl.build_dataset("captions", tmp_path / "c", vl.BuildSizes(3, 1, 1))
    source = make_source("captions", "c", str(tmp_path / "c"), image_size=32)
    cache = build_cache(source, tok, tmp_path / "t")
    assert cache.episode(0).patches.shape[0] == 4


def test_reuse_and_invalidation(tmp_path, tok):
    root = tmp_path / "tokens"
    path = control_dataset(tmp_path / "ds", episodes=3)
    source = make_source("control", "task", str(path))
    first = build_cache(source, tok, root)
    again = build_cache(source, tok, root)
    assert again.path == first.path
    # Other tokenizer settings: a new cache, the old one removed.
    other = build_cache(source, GatoTokenizer(num_position_bins=64), root)
    assert other.path != first.path and not first.path.exists()
    # New dataset content under the same path: a new cache.
    control_dataset(tmp_path / "ds", episodes=4, seed=1)
    newer = build_cache(source, GatoTokenizer(num_position_bins=64), root)
    assert newer.path != other.path and newer.num_episodes == 4
    assert sorted(p.name for p in (root / "task").iterdir()) == [newer.path.name]


def test_another_dataset_of_the_same_task_keeps_the_first_cache(tmp_path, tok):
    # Two versions of a task's data (say clean and noisy collections) train side by side: the
    # second's cache must not remove the first's.
    root = tmp_path / "tokens"
    first = build_cache(
        make_source("control", "task", str(control_dataset(tmp_path / "a", episodes=2))), tok, root
    )
    second = build_cache(
        make_source("control", "task", str(control_dataset(tmp_path / "b", episodes=3, seed=1))),
        tok,
        root,
    )
    assert first.path != second.path
    assert first.path.exists() and second.path.exists()
    assert TokenCache(first.path).num_episodes == 2 and second.num_episodes == 3


def test_failed_build_leaves_nothing(tmp_path, tok):
    good = vl._encode_png(np.zeros((16, 16, 3), np.uint8))
    bad = {"bytes": b"garbage", "path": None}
    features = datasets.Features({"images": datasets.Image(), "text": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"images": [good, bad], "text": ["a", "b"]}, features=features)
    ds.save_to_disk(str(tmp_path / "broken"))
    root = tmp_path / "tokens"
    with pytest.raises(ValueError, match="row 1: the image cannot be decoded"):
        build_cache(make_source("captions", "broken", str(tmp_path / "broken")), tok, root)
    assert list((root / "broken").iterdir()) == []


def test_bad_sources(tmp_path, tok):
    ds = datasets.Dataset.from_dict({"continuous_observations": [[[0.0]]], "rewards": [[0.0]]})
    ds.save_to_disk(str(tmp_path / "noact"))
    with pytest.raises(ValueError, match="exactly one action column"):
        make_source("control", "noact", str(tmp_path / "noact")).load()
    features = datasets.Features({"text": datasets.Value("string")})
    empty = datasets.Dataset.from_dict({"text": []}, features=features)
    empty.to_parquet(str(tmp_path / "empty.parquet"))  # (datasets cannot reload 0-row folders)
    with pytest.raises(ValueError, match="has no rows|corresponds to no data"):
        make_source("text", "empty", str(tmp_path / "empty.parquet")).load()
    with pytest.raises(ValueError, match="kind must be one of"):
        make_source("audio", "x", "somewhere")


def test_source_records_keep_the_format_of_older_caches():
    # meta.json and the cache fingerprint hold this dict: a new key or name would orphan every
    # cache already built.
    assert ControlSource("t", "/p", hub_name="h").record() == {
        "name": "t",
        "kind": "control",
        "path": "/p",
        "split": "train",
        "hub_name": "h",
        "image_size": None,
    }
    assert make_source("captions", "c", "/q", image_size=32).record()["image_size"] == 32
    assert make_source("text", "t", "/r").record()["kind"] == "text"


def test_pickle_reopens_maps(image_control):
    _, cache = image_control
    _ = cache.maps
    data = pickle.dumps(cache)
    assert len(data) < 10_000  # no array data travels to DataLoader workers
    clone = pickle.loads(data)
    assert_same(clone.episode(2), cache.episode(2))
    assert isinstance(clone, TokenCache)


def test_broken_frame_in_an_episode_names_the_episode(tmp_path, tok):
    good = vl._encode_png(np.zeros((16, 16, 3), np.uint8))
    bad = {"bytes": b"garbage", "path": None}
    features = datasets.Features(
        {
            "image_observations": datasets.Sequence(datasets.Image()),
            "discrete_actions": datasets.Sequence(datasets.Value("int64")),
            "rewards": datasets.Sequence(datasets.Value("float32")),
        }
    )
    rows = {
        "image_observations": [[good, good], [good, bad]],
        "discrete_actions": [[0, 1], [1, 0]],
        "rewards": [[0.0, 0.0], [0.0, 1.0]],
    }
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "frames"))
    source = make_source("control", "frames", str(tmp_path / "frames"))
    with pytest.raises(ValueError, match=r"frames .* episode 1: cannot be read or decoded"):
        build_cache(source, tok, tmp_path / "tokens")
