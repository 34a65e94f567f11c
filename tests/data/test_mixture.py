"""The mixture: recipes, weights, prompts, whole timesteps, determinism, resumption, bad input."""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import warnings

import datasets
import numpy as np
import pytest
import torch
from references import prompted_window

from gato.data import mixture as mx
from gato.data.corpora import vision_language as vl
from gato.data.corpora.text import build_text_dataset
from gato.data.mixture import (
    PROMPT_END,
    PROMPT_NONE,
    PROMPT_UNIFORM,
    Mixture,
    MixtureConfig,
    Recipe,
    SourceEntry,
)
from gato.tokens.batch import SHARED_SEGMENT
from gato.tokens.tokenizer import GatoTokenizer
from gato.tokens.windows import text_window_start
from gato.vocab import DISCRETE_OFFSET, PADDED_VOCAB_SIZE, SEPARATOR_ID

STEP = 8  # tokens per timestep of the fixture: 2 discrete + 3 continuous, separator, 2 actions


def write_control(path, lengths: list[int], seed: int = 0) -> str:
    """Episodes whose discrete observation [episode, t] says where every timestep came from."""
    rng = np.random.default_rng(seed)
    rows = {
        "discrete_observations": [
            np.stack([np.full(n, e), np.arange(n)], 1) for e, n in enumerate(lengths)
        ],
        "continuous_observations": [rng.normal(size=(n, 3)).astype(np.float32) for n in lengths],
        "continuous_actions": [rng.uniform(-1, 1, (n, 2)).astype(np.float32) for n in lengths],
        "rewards": [np.zeros(n, np.float32) for n in lengths],
    }
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(path))
    return str(path)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixture")
    lengths = [40, 25, 60, 33, 50, 70]
    out = {
        "lengths": lengths,
        "control": write_control(root / "control", lengths),
        "cache": str(root / "tokens"),
    }
    vl.build_dataset("captions", root / "captions", vl.BuildSizes(40, 5, 5))
    out["captions"] = str(root / "captions")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(f"Sentence {i} of the little corpus." for i in range(300)) + "\n")
    build_text_dataset(corpus, root / "text", validation_fraction=0.1)
    out["text"] = str(root / "text")
    return out


def recipe_of(paths, weights=(3.0, 1.0, 2.0)) -> Recipe:
    return Recipe(
        "test",
        (
            SourceEntry("reacher", weights[0], path=paths["control"], kind="control"),
            SourceEntry("captions", weights[1], path=paths["captions"]),
            SourceEntry("text", weights[2], path=paths["text"]),
        ),
    )


@pytest.fixture(scope="module")
def mixture(paths) -> Mixture:
    config = MixtureConfig(context_length=128, batch_size=16, cache_root=paths["cache"])
    return Mixture(recipe_of(paths), config, progress=False)


def episode_steps(sequence) -> list[tuple[int, int]]:
    """(episode, t) of every timestep of a control sequence."""
    starts = sequence.timestep_starts
    return [
        (int(sequence.ids[s]) - DISCRETE_OFFSET, int(sequence.ids[s + 1]) - DISCRETE_OFFSET)
        for s in starts
    ]


def within(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def test_weights_are_respected(mixture):
    sources = np.concatenate([[s.source for s in mixture.samples(step)] for step in range(300)])
    n = len(sources)
    for index, p in enumerate(mixture.probabilities):
        assert within(int((sources == index).sum()), n, p), (index, p)
    np.testing.assert_allclose(mixture.probabilities, [0.5, 1 / 6, 1 / 3])


def test_prompts_fraction_split_and_origin(mixture, paths):
    lengths = paths["lengths"]
    kinds = []
    for step in range(250):
        for sample in mixture.samples(step):
            if sample.source != 0:
                continue
            kinds.append(sample.prompt)
            seq = sample.sequence
            assert len(seq) <= 128 and len(seq) % STEP == 0  # whole timesteps only
            np.testing.assert_array_equal(seq.timestep_starts, np.arange(0, len(seq), STEP))
            assert (seq.ids[seq.timestep_starts + 5] == SEPARATOR_ID).all()
            steps = episode_steps(seq)
            episodes = [e for e, _ in steps]
            changes = sum(a != b for a, b in zip(episodes, episodes[1:], strict=False))
            assert changes == (sample.prompt != PROMPT_NONE)
            split = next(
                (i for i in range(1, len(steps)) if episodes[i] != episodes[0]), len(steps)
            )
            for part in (steps[:split], steps[split:] or steps[:1]):  # consecutive within a part
                assert [t for _, t in part] == list(range(part[0][1], part[0][1] + len(part)))
            if sample.prompt == PROMPT_END:
                prompt_episode, last_t = steps[split - 1]
                assert last_t == lengths[prompt_episode] - 1
            if sample.prompt == PROMPT_NONE:
                assert len(seq) == 128  # episodes are longer than the context: windows are full
    kinds = np.array(kinds)
    n, prompted = len(kinds), int((kinds != PROMPT_NONE).sum())
    assert within(prompted, n, 0.25)
    assert within(int((kinds == PROMPT_END).sum()), prompted, 0.5)
    assert (kinds == PROMPT_UNIFORM).any()


def test_cached_sampling_equals_in_memory_path(paths):
    config = MixtureConfig(
        context_length=96, batch_size=1, prompt_probability=1.0, cache_root=paths["cache"]
    )
    recipe = Recipe("c", (SourceEntry("reacher", 1.0, path=paths["control"], kind="control"),))
    mix = Mixture(recipe, config, progress=False)
    rows = datasets.load_from_disk(paths["control"])["train"].with_format("numpy")
    tok = GatoTokenizer()
    episodes = [tok.encode_jat_episode(rows[i]) for i in range(len(rows))]
    for seed in range(20):
        got = mix.sample(0, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        e = int(rng.integers(len(episodes)))
        assert rng.random() < 1.0
        kind = "end" if rng.random() < 0.5 else "uniform"
        other = int(rng.integers(len(episodes) - 1))
        other += other >= e
        want = prompted_window(episodes[other], episodes[e], 96, 48, kind, rng)
        np.testing.assert_array_equal(got.sequence.ids, want.ids)
        np.testing.assert_array_equal(got.sequence.loss_mask, want.loss_mask)
        np.testing.assert_array_equal(got.sequence.local_positions, want.local_positions)
        np.testing.assert_array_equal(got.sequence.timestep_starts, want.timestep_starts)


def test_short_control_windows_fill_the_row(paths):
    # Windows of at most 3 timesteps, each of a random episode drawn afresh, until the context
    # (96 tokens = 12 fixture timesteps) is full: replayed here from the definition.
    config = MixtureConfig(
        context_length=96,
        batch_size=1,
        prompt_probability=0.0,
        control_window_steps=3,
        cache_root=paths["cache"],
    )
    recipe = Recipe("c", (SourceEntry("reacher", 1.0, path=paths["control"], kind="control"),))
    mix = Mixture(recipe, config, progress=False)
    lengths = paths["lengths"]
    for seed in range(20):
        got = episode_steps(mix.sample(0, np.random.default_rng(seed)).sequence)
        rng = np.random.default_rng(seed)
        e = int(rng.integers(len(lengths)))
        rng.random()  # the prompt draw
        want: list[tuple[int, int]] = []
        while len(want) < 12:
            first = int(rng.integers(max(1, lengths[e] - 3 + 1)))
            stop = min(first + 3, lengths[e], first + 12 - len(want))
            want += [(e, t) for t in range(first, stop)]
            e = int(rng.integers(len(lengths)))
        assert got == want
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="control_window_steps must be an int >= 0"):
            MixtureConfig(control_window_steps=bad)


def test_prompt_loss_can_be_switched_off(paths):
    config = MixtureConfig(
        context_length=96, prompt_probability=1.0, prompt_loss=False, cache_root=paths["cache"]
    )
    recipe = Recipe("c", (SourceEntry("reacher", 1.0, path=paths["control"], kind="control"),))
    for sample in Mixture(recipe, config, progress=False).samples(0):
        episodes = [e for e, _ in episode_steps(sample.sequence)]
        split = sample.sequence.timestep_starts[episodes.index(episodes[-1])]
        assert (
            not sample.sequence.loss_mask[:split].any() and sample.sequence.loss_mask[split:].any()
        )


def test_vision_language_and_text_rows(mixture, paths):
    for step in range(40):
        for sample in mixture.samples(step):
            seq = sample.sequence
            if sample.source == 1:  # up to five image-text pairs, as many as fit 128 tokens
                assert 1 <= seq.num_timesteps <= 5 and len(seq) <= 128
                assert seq.patches.shape[0] == 9 * seq.num_timesteps
                assert seq.patches.dtype == np.uint8
            if sample.source == 2:
                assert len(seq) == 128 and seq.patches.shape[0] == 0


def test_batches_padding_and_validation(mixture):
    out = mixture.batch(7)
    batch = out.batch
    assert batch.input_ids.shape == (16, 128)
    assert not batch.loss_mask[batch.attention_mask == 0].any()
    batch.validate(PADDED_VOCAB_SIZE)
    assert out.source_index.shape == (16,) and out.prompt_kind.shape == (16,)
    assert out.source_names == ("reacher", "captions", "text") and out.step == 7
    assert batch.patches.dtype == torch.uint8


def assert_batches_equal(a, b):
    for name in (
        "input_ids",
        "attention_mask",
        "local_positions",
        "loss_mask",
        "patches",
        "patch_positions",
    ):
        assert torch.equal(getattr(a.batch, name), getattr(b.batch, name)), name
    assert torch.equal(a.source_index, b.source_index)
    assert torch.equal(a.prompt_kind, b.prompt_kind)


def test_same_seed_same_batches(mixture, paths):
    config = MixtureConfig(context_length=128, batch_size=16, cache_root=paths["cache"])
    twin = Mixture(recipe_of(paths), config, progress=False)
    for step in (0, 5, 123):
        assert_batches_equal(mixture.batch(step), twin.batch(step))
    other = Mixture(
        recipe_of(paths), MixtureConfig(**{**config.__dict__, "seed": 1}), progress=False
    )
    assert not torch.equal(other.batch(0).batch.input_ids, mixture.batch(0).batch.input_ids)


@pytest.mark.parametrize(("workers", "prefetch"), [(0, 0), (0, 3), (1, 2)])
def test_resume_gives_identical_next_batches(mixture, workers, prefetch):
    reference = [mixture.batch(step) for step in range(8)]
    loader = mixture.loader(num_workers=workers, prefetch=prefetch)
    for expected in reference[:3]:
        assert_batches_equal(next(loader), expected)
    state = loader.state_dict()
    assert state["step"] == 3  # batches made ahead do not count
    loader.close()
    fresh = mixture.loader(num_workers=workers, prefetch=prefetch)
    fresh.load_state_dict(state)
    for expected in reference[3:8]:
        assert_batches_equal(next(fresh), expected)
    assert fresh.state_dict()["step"] == 8
    fresh.close()


def test_loader_errors_reach_the_caller(mixture, monkeypatch):
    loader = mixture.loader(prefetch=2)

    def broken(step):
        raise RuntimeError(f"broken batch {step}")

    monkeypatch.setattr(mixture, "batch", broken)
    with pytest.raises(RuntimeError, match="broken batch 0"):
        next(loader)
    loader.close()


def test_state_from_another_mixture_is_refused(mixture, paths):
    config = MixtureConfig(context_length=128, batch_size=16, cache_root=paths["cache"])
    other = Mixture(recipe_of(paths, weights=(1.0, 1.0, 1.0)), config, progress=False)
    state = other.loader(start_step=4).state_dict()
    loader = mixture.loader()
    with pytest.raises(ValueError, match="another recipe"):
        loader.load_state_dict(state)
    loader.load_state_dict(state, strict=False)
    assert loader.step == 4


def test_text_longer_than_context_is_spread_over_windows(tmp_path):
    corpus = tmp_path / "corpus.txt"
    long = " ".join(f"word{i}" for i in range(400))
    corpus.write_text(f"{long}\nshort one\nanother short one\n")
    build_text_dataset(corpus, tmp_path / "text", validation_fraction=0.3)
    recipe = Recipe("t", (SourceEntry("text", 1.0, path=str(tmp_path / "text")),))
    config = MixtureConfig(context_length=64, batch_size=8, cache_root=str(tmp_path / "tok"))
    mix = Mixture(recipe, config, progress=False)
    total = mix.caches[0].num_tokens
    assert total > 4 * 64
    stream = mix.caches[0].read(0, total).ids
    circular = np.concatenate([stream, stream[:64]])
    seen = np.zeros(total, bool)
    for seed in range(300):
        sample = mix.sample(0, np.random.default_rng(seed))
        start = text_window_start(total, 64, np.random.default_rng(seed))
        assert len(sample.sequence) == 64
        np.testing.assert_array_equal(sample.sequence.ids, circular[start : start + 64])
        seen[np.arange(start, start + 64) % total] = True
    assert seen.all()  # no token of the long paragraph is dropped


def test_bad_recipes(paths, monkeypatch):
    with pytest.raises(ValueError, match="weight must be a number > 0"):
        SourceEntry("captions", 0.0)
    with pytest.raises(ValueError, match="weight must be a number > 0"):
        mx.parse_recipe({"sources": [{"task": "text", "weight": -1}]})
    with pytest.raises(ValueError, match=r"unknown keys \['wieght'\]"):
        mx.parse_recipe({"sources": [{"task": "text", "weight": 1, "wieght": 2}]})
    with pytest.raises(ValueError, match="more than once"):
        mx.parse_recipe({"sources": [{"task": "text", "weight": 1}] * 2})
    with pytest.raises(ValueError, match="no sources"):
        mx.parse_recipe({"sources": []})

    def unknown(task):
        raise ValueError(f"unknown task {task!r}; known tasks: ['cartpole', 'pong']")

    registry = types.ModuleType("gato.tasks.registry")
    registry.get_task = unknown
    monkeypatch.setitem(sys.modules, "gato.tasks.registry", registry)
    entry = SourceEntry("pnog", 1.0)
    with pytest.raises(ValueError, match=r"'pnog'.*captions.*known tasks: \['cartpole'"):
        mx.resolve_source(entry)


def test_registry_tasks_resolve_to_their_datasets(paths, monkeypatch, tmp_path):
    registry = pytest.importorskip("gato.tasks.registry")
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        f"""
[suites.gym]
episode_limit = 100
action = {{ kind = "continuous", shape = [2] }}

[suites.gym.observation]
discrete_observations = {{ shape = [2] }}
continuous_observations = {{ shape = [3] }}

[tasks.gym-fixture]
suite = "gym"
dataset = "{paths["control"]}"

[tasks.gym-uncollected]
suite = "gym"
dataset = "{tmp_path / "nothing-here"}"
"""
    )
    monkeypatch.setattr(registry, "DEFAULT_REGISTRY_PATH", tasks)
    recipe = mx.parse_recipe({"sources": [{"task": "gym-fixture", "weight": 1.0}]})
    config = MixtureConfig(context_length=64, batch_size=2, cache_root=paths["cache"])
    mix = Mixture(recipe, config, progress=False)
    assert mix.sources[0].kind == "control" and mix.caches[0].num_episodes == 6
    with pytest.raises(FileNotFoundError, match="collect --task gym-uncollected"):
        mx.resolve_source(SourceEntry("gym-uncollected", 1.0))
    with pytest.raises(ValueError, match=r"unknown source 'gym-fixtur'.*did you mean"):
        mx.resolve_source(SourceEntry("gym-fixtur", 1.0))


def test_missing_datasets_name_the_command(paths, monkeypatch, tmp_path):
    monkeypatch.setattr(mx.recipe, "_control_location", lambda task: (str(tmp_path / "none"), None))
    with pytest.raises(FileNotFoundError, match=r"'pong'.*python -m gato.data collect --task pong"):
        mx.resolve_source(SourceEntry("pong", 1.0))
    with pytest.raises(FileNotFoundError, match="python -m gato.data.corpora.vision_language"):
        mx.resolve_source(SourceEntry("vqa", 1.0, path=str(tmp_path / "novqa")))


def test_timestep_longer_than_context_is_an_error(paths):
    recipe = Recipe("c", (SourceEntry("reacher", 1.0, path=paths["control"], kind="control"),))
    config = MixtureConfig(context_length=STEP - 1, cache_root=paths["cache"])
    with pytest.raises(ValueError, match="'reacher': a timestep has 8 tokens"):
        Mixture(recipe, config, progress=False)


def test_caption_longer_than_context_is_cut_with_a_warning(paths):
    recipe = Recipe("v", (SourceEntry("captions", 1.0, path=paths["captions"]),))
    config = MixtureConfig(context_length=20, batch_size=4, cache_root=paths["cache"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mix = Mixture(recipe, config, progress=False)
    assert any("their text is cut" in str(w.message) for w in caught)
    for sample in mix.samples(0):
        assert len(sample.sequence) <= 20 and sample.sequence.patches.shape[0] == 9


def test_five_pairs_per_sequence(paths):
    recipe = Recipe("v", (SourceEntry("captions", 1.0, path=paths["captions"]),))
    config = MixtureConfig(context_length=1024, batch_size=8, cache_root=paths["cache"])
    for sample in Mixture(recipe, config, progress=False).samples(3):
        assert sample.sequence.num_timesteps == 5 and sample.sequence.patches.shape[0] == 45


def test_images_too_large_for_the_context_are_an_error(paths):
    recipe = Recipe("v", (SourceEntry("captions", 1.0, path=paths["captions"]),))
    config = MixtureConfig(context_length=10, cache_root=paths["cache"])
    with pytest.raises(ValueError, match="an image has 9 patches.*set image_size"):
        Mixture(recipe, config, progress=False)


def test_pairs_fill_the_context_when_asked(paths):
    recipe = Recipe("v", (SourceEntry("captions", 1.0, path=paths["captions"]),))
    config = MixtureConfig(
        context_length=400, batch_size=4, pairs_per_sequence=0, cache_root=paths["cache"]
    )
    mix = Mixture(recipe, config, progress=False)
    longest = mix.caches[0].max_step_tokens
    for sample in mix.samples(0):
        assert 400 - longest < len(sample.sequence) <= 400 and sample.sequence.num_timesteps > 5


def test_recipe_files_parse_and_name_known_tasks(monkeypatch, tmp_path):
    registry = pytest.importorskip("gato.tasks.registry")
    known = {t.id for t in registry.list_tasks()}
    demo = mx.load_recipe("demo")
    names = {s.task for s in demo.sources}
    assert set(mx.BUILTIN_SOURCES) <= names and names <= known | set(mx.BUILTIN_SOURCES)
    # The demo with Pong learnt: the demo's sources and weights, Pong in batches of its own
    # taking 6,000 of the 8,900 steps after the first lesson.
    pong = mx.load_recipe("demo_pong")
    assert [(s.task, s.from_step, s.until_step) for s in pong.sources] == [
        (s.task, s.from_step, s.until_step) for s in demo.sources
    ]
    own = {s.task for s in pong.sources if s.own_batches}
    assert own == {"atari-pong"}
    share = pong.probabilities_at(400)[[s.task for s in pong.sources].index("atari-pong")]
    assert share * 8900 == pytest.approx(6000, abs=1)
    others = {s.task: s.weight for s in pong.sources if s.task != "atari-pong"}
    assert others == {s.task: s.weight for s in demo.sources if s.task != "atari-pong"}
    with pytest.raises(FileNotFoundError, match="recipes in"):
        mx.load_recipe("nonexistent")

    # "all" takes every registry task with data on disk, sharing 85% of the weight.
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        '[suites.gym]\nepisode_limit = 10\naction = { kind = "discrete", num_values = 2 }\n'
        "observation = { continuous_observations = { shape = [4] } }\n"
        + "".join(f'[tasks.gym-{n}]\nsuite = "gym"\n' for n in ("a", "b", "c"))
    )
    monkeypatch.setattr(registry, "DEFAULT_REGISTRY_PATH", tasks)
    with pytest.raises(ValueError, match="no task of .* has data on disk.*collect --suite"):
        mx.load_recipe("all")
    for name in ("a", "c"):
        (tmp_path / "cache" / "episodes" / f"gym-{name}").mkdir(parents=True)
        (tmp_path / "cache" / "episodes" / f"gym-{name}" / "state.json").write_text("{}")
    recipe = mx.load_recipe("all")
    # The one-object captions are a curriculum's first lesson (demo.toml), not a source to mix.
    builtin = [n for n in mx.BUILTIN_SOURCES if n != "captions-single"]
    assert [s.task for s in recipe.sources] == ["gym-a", "gym-c", *builtin]
    control = sum(p for s, p in zip(recipe.sources, recipe.probabilities, strict=True)
                  if s.task.startswith("gym-"))  # fmt: skip
    assert control == pytest.approx(0.85, abs=0.005)
    assert recipe.sources[0].weight == recipe.sources[1].weight


def test_control_selection_bad_input():
    def recipe(**control):
        return {"control": control, "sources": [{"task": "text", "weight": 1}]}

    with pytest.raises(ValueError, match="select must be 'with-data'"):
        mx.parse_recipe(recipe(select="all", weight=1))
    with pytest.raises(ValueError, match="weight must be a number > 0"):
        mx.parse_recipe(recipe(select="with-data", weight=0))
    with pytest.raises(ValueError, match=r"unknown keys \['wieght'\]"):
        mx.parse_recipe(recipe(select="with-data", wieght=1))
    with pytest.raises(ValueError, match=r"unknown suites \['nes'\]"):
        mx.parse_recipe(recipe(select="with-data", weight=1, suites=["nes"]))


def test_a_standardizing_mixture_tokenizes_each_control_source_by_its_statistics(paths, tmp_path):
    from gato.tokens.statistics import ObservationStatistics

    config = MixtureConfig(context_length=128, batch_size=4, cache_root=str(tmp_path / "tokens"))
    mix = Mixture(recipe_of(paths), config, progress=False, standardize=True)
    assert set(mix.observation_statistics) == {"reacher"}  # captions and text have none
    rows = datasets.load_from_disk(paths["control"])["train"].with_format("numpy")
    episodes = [rows[i] for i in range(len(rows))]
    stats = ObservationStatistics.of_episodes(episodes)
    np.testing.assert_allclose(mix.observation_statistics["reacher"].mean, stats.mean)
    np.testing.assert_allclose(mix.observation_statistics["reacher"].std, stats.std)
    standard = GatoTokenizer().standardising(stats).encode_jat_episode(episodes[2])
    np.testing.assert_array_equal(mix.caches[0].episode(2).ids, standard.ids)
    # A cache of raw values is another cache: the two never mix.
    plain = Mixture(recipe_of(paths), config, progress=False)
    assert plain.caches[0].meta["fingerprint"] != mix.caches[0].meta["fingerprint"]
    raw = GatoTokenizer().encode_jat_episode(episodes[2])
    np.testing.assert_array_equal(plain.caches[0].episode(2).ids, raw.ids)
    # Given statistics (a pretrained model's) win over the source's own.
    given = ObservationStatistics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    again = Mixture(
        recipe_of(paths), config, progress=False, standardize=True,
        observation_statistics={"reacher": given},
    )  # fmt: skip
    assert again.observation_statistics["reacher"] is given
    expected = GatoTokenizer().standardising(given).encode_jat_episode(episodes[2])
    np.testing.assert_array_equal(again.caches[0].episode(2).ids, expected.ids)


def test_statistics_without_standardize_are_refused(paths, tmp_path):
    from gato.tokens.statistics import ObservationStatistics

    config = MixtureConfig(context_length=128, batch_size=4, cache_root=str(tmp_path / "tokens"))
    stats = ObservationStatistics(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="only used with standardize=True"):
        Mixture(recipe_of(paths), config, observation_statistics={"reacher": stats})


def test_packed_sequences_are_marked_as_segments_and_batched_when_isolated(paths):
    # Each short control window starts a segment, after the prompt, which is the row's shared
    # prefix; each image-text pair starts one; a text row is one. With isolate_packed the batch
    # carries them.
    recipe = Recipe(
        "p",
        (
            SourceEntry("reacher", 1.0, path=paths["control"], kind="control"),
            SourceEntry("captions", 1.0, path=paths["captions"]),
            SourceEntry("text", 1.0, path=paths["text"]),
        ),
    )
    config = MixtureConfig(
        context_length=128,
        batch_size=12,
        prompt_probability=0.5,
        control_window_steps=2,
        isolate_packed=True,
        cache_root=paths["cache"],
    )
    mix = Mixture(recipe, config, progress=False)
    seen = set()
    for step in range(6):
        samples = mix.samples(step)
        for sample in samples:
            seq = sample.sequence
            if sample.source == 0:
                steps = episode_steps(seq)
                # A window ends where the next timestep is not its episode's next one.
                breaks = [
                    int(seq.timestep_starts[i])
                    for i in range(1, len(steps))
                    if steps[i] != (steps[i - 1][0], steps[i - 1][1] + 1)
                ]
                prompted = sample.prompt != PROMPT_NONE
                assert seq.shared_prefix == (breaks[0] if prompted else 0)
                seen.add(prompted)
                assert seq.segment_starts.tolist() == breaks
            elif sample.source == 1:
                assert seq.segment_starts.tolist() == seq.timestep_starts[1:].tolist()
            else:
                assert seq.segment_starts.size == 0
        batch = mix.batch(step).batch
        for row, sample in enumerate(samples):
            n = len(sample.sequence)
            begins = np.zeros(n, np.int64)
            begins[sample.sequence.segment_starts] = 1
            expected = np.cumsum(begins)
            expected[: sample.sequence.shared_prefix] = SHARED_SEGMENT
            np.testing.assert_array_equal(batch.segment_ids[row, :n].numpy(), expected)
            assert (batch.segment_ids[row, n:] == -1).all()
    assert seen == {True, False}
    plain = Mixture(recipe, dataclasses.replace(config, isolate_packed=False), progress=False)
    assert plain.batch(0).batch.segment_ids is None
    assert plain.fingerprint() != mix.fingerprint()
    with pytest.raises(ValueError, match="isolate_packed must be a bool"):
        MixtureConfig(isolate_packed=1)
