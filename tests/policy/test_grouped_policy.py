"""GatoPolicy with grouped continuous values: cached decoding against recomputing the whole
context (`GroupedReferencePolicy`), batched ragged rows, bad configurations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import count_departures, make_config
from references import GroupedReferencePolicy

from gato.modeling.model import GatoModel
from gato.policy import GatoPolicy, PolicyConfig
from gato.schema import ActionSpec
from gato.tokens.tokenizer import GatoTokenizer

SPEC = ActionSpec("continuous", (3,))


def grouped_model(
    ko: int,
    ka: int,
    seed: int = 0,
    keep_separator: bool = True,
    bins: int = 1024,
    features: str = "fourier",
    skip: bool = False,
) -> GatoModel:
    torch.manual_seed(seed)
    config = make_config(
        action_group_bins=bins,
        max_position_embeddings=48,
        initializer_range=0.2,
        continuous_observation_group=ko,
        continuous_action_group=ka,
        keep_separator=keep_separator,
        group_value_features=features,
        action_head_skip=skip,
    )
    return GatoModel(config).eval()


def demo_prompt(tokenizer, steps, seed=0, width=5):
    rng = np.random.default_rng(seed)
    return tokenizer.encode_episode(
        {"continuous": rng.normal(size=(steps, width))},
        {"continuous": rng.uniform(-1, 1, (steps, 3))},
    )


def observation(rng, width=5, image=False):
    obs = {"continuous_observations": rng.normal(size=width).astype(np.float32)}
    if image:
        obs["image_observations"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return obs


@pytest.mark.parametrize(
    ("ko", "ka", "keep_separator", "skip"),
    [(4, 2, True, False), (8, 8, True, False), (2, 3, True, False), (8, 8, False, False),
     (4, 2, False, False), (4, 2, False, True), (2, 2, True, True)],
)  # fmt: skip
def test_cached_decoding_gives_the_actions_of_recomputing_the_context(ko, ka, keep_separator, skip):
    # (2, 2, skip): a 3-dimensional action in two chunks, the second read at the first's group.
    tokenizer = GatoTokenizer()
    model = grouped_model(
        ko, ka, keep_separator=keep_separator, bins=256 if ko == 8 else 1024, skip=skip
    )
    prompt = demo_prompt(tokenizer, 2)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(slide="recompute"))
    reference = GroupedReferencePolicy(model, tokenizer, SPEC, prompt)
    rng = np.random.default_rng(1)
    slides = 0
    for step in range(30):
        if step == 19:
            policy.reset()
            reference.reset()
        obs = observation(rng)
        before = len(policy.rows[0].history)
        np.testing.assert_array_equal(policy.act(obs), reference.act(obs))
        slides += len(policy.rows[0].history) <= before  # a step was added, others dropped
        np.testing.assert_array_equal(policy.context().ids, reference.context().ids)
        assert policy.rows[0].in_cache < model.config.max_position_embeddings
    assert slides >= 2


@pytest.mark.parametrize("decoding", ["mode", "mean"])
def test_mode_and_mean_decoding_give_the_actions_of_the_slow_reference(decoding):
    # The default, the median, is what every other test here compares.
    tokenizer = GatoTokenizer()
    model = grouped_model(4, 2, seed=5, bins=64)
    prompt = demo_prompt(tokenizer, 2)
    config = PolicyConfig(slide="recompute", action_decoding=decoding)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, config)
    reference = GroupedReferencePolicy(model, tokenizer, SPEC, prompt)
    reference.decoding = decoding
    median = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(slide="recompute"))
    rng = np.random.default_rng(6)
    observations = [observation(rng) for _ in range(12)]
    # The decoding reads another class than the median somewhere.
    assert count_departures(policy, reference, median, observations)


def test_median_and_mean_classes_on_known_distributions():
    from gato.inference.sampling import mean_classes, median_classes

    # A spike at class 0 (p 0.3) beside mass spread evenly over classes 10-19 (0.07 each).
    probs = torch.zeros(20)
    probs[0] = 0.3
    probs[10:20] = 0.07
    logits = probs.clamp_min(1e-12).log()[None]
    assert logits.argmax(-1).item() == 0
    assert median_classes(logits).item() == 12  # 0.3 + 0.07 x 3 (classes 10-12) = 0.51
    assert mean_classes(logits).item() == 10  # 0.07 x (10 + ... + 19) = 10.15
    # Batched rows, each on its own; a certain class is its own median and mean.
    certain = torch.full((2, 6), -1e9)
    certain[0, 4] = certain[1, 1] = 0.0
    assert median_classes(certain).tolist() == [4, 1]
    assert mean_classes(certain).tolist() == [4, 1]
    with pytest.raises(ValueError, match="action_decoding must be mode, median or mean"):
        PolicyConfig(action_decoding="max")
    from gato.inference.sampling import ordered_classes

    with pytest.raises(ValueError, match=r"decoding must be one of .*got 'max'"):
        ordered_classes(logits, 0.0, "max")
    # Sampling (temperature > 0) ignores the greedy reading: a draw from the softmax.
    draws = ordered_classes(
        logits.expand(2000, -1), 1.0, "median", torch.Generator().manual_seed(0)
    )
    assert set(draws.tolist()) <= {0, *range(10, 20)} and (draws == 0).float().mean() > 0.2


def act_alike(policy, reference, rng, steps: int = 24, reset_at: int = 15) -> None:
    """The cached policy and the recomputing reference act and hold contexts alike, through an
    episode reset."""
    for step in range(steps):
        if step == reset_at:
            policy.reset()
            reference.reset()
        obs = observation(rng)
        np.testing.assert_array_equal(policy.act(obs), reference.act(obs))
        np.testing.assert_array_equal(policy.context().ids, reference.context().ids)


def test_standardised_value_encoder_decodes_as_the_full_forward():
    """`lowfreq_mlp` over a standardising tokenizer (the `grouped_z` encoding): the cached
    policy acts as recomputing the whole context does."""
    from gato.tokens.statistics import ObservationStatistics

    stats = ObservationStatistics(np.array([0.5, -1.0, 2.0, 0.0, 3.0]), np.full(5, 0.7))
    tokenizer = GatoTokenizer().standardising(stats)
    model = grouped_model(8, 8, keep_separator=False, bins=256, features="lowfreq_mlp", skip=True)
    prompt = demo_prompt(tokenizer, 2)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(slide="recompute"))
    reference = GroupedReferencePolicy(model, tokenizer, SPEC, prompt)
    act_alike(policy, reference, np.random.default_rng(4))


@pytest.mark.parametrize(("ko", "ka"), [(4, 2), (8, 8)])
def test_hidden_actions_keep_their_groups_and_decode_as_the_full_forward(ko, ka):
    # A hidden action still belongs to its group (the layout reads the true ids), as in
    # training with action_dropout=1; its slots read as empty.
    tokenizer = GatoTokenizer()
    model = grouped_model(ko, ka, seed=2)
    prompt = demo_prompt(tokenizer, 2)
    config = PolicyConfig(slide="recompute", hide_actions=True)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, config)
    reference = GroupedReferencePolicy(model, tokenizer, SPEC, prompt, hide_actions=True)
    act_alike(policy, reference, np.random.default_rng(3))


def test_a_shifted_context_counts_its_positions_as_the_cache_holds_them():
    """Shifting keeps the old keys (not equal to recomputing), but the bookkeeping in positions
    must match the cache and the window rule."""
    tokenizer = GatoTokenizer()
    model = grouped_model(4, 2)
    policy = GatoPolicy(model, tokenizer, SPEC, demo_prompt(tokenizer, 2), PolicyConfig())
    rng = np.random.default_rng(3)
    for _ in range(30):
        policy.act(observation(rng))
        row = policy.rows[0]
        assert policy.cache.length == row.in_cache
        pending = policy._span(row.pending)
        assert row.in_cache + pending == policy._span(policy.context())
        assert len(policy.context()) <= model.config.max_position_embeddings  # tokens


@pytest.mark.parametrize("keep_separator", [True, False])
def test_batched_ragged_rows_match_rows_decoded_alone(keep_separator):
    tokenizer = GatoTokenizer()
    model = grouped_model(4, 2, seed=1, keep_separator=keep_separator)
    prompts = [demo_prompt(tokenizer, 1, seed=0), None, demo_prompt(tokenizer, 1, seed=5)]
    widths = [5, 3, 7]
    batched = GatoPolicy(model, tokenizer, SPEC, None, PolicyConfig(slide="recompute"), 3)
    for i, p in enumerate(prompts):
        if p is not None:
            batched.reset_env(i, p)
    singles = [GroupedReferencePolicy(model, tokenizer, SPEC, p) for p in prompts]
    rng = np.random.default_rng(2)
    rows = [0, 1, 2]
    for step in range(10):
        if step == 4:
            batched.reset_env(1, prompts[1])
            singles[1].reset()
        if step == 7:
            batched.remove_envs([1, 2])
            rows = [1, 2]
        observations = [observation(rng, widths[r], image=step % 3 == 0) for r in rows]
        actions = batched.act_batch(observations)
        for k, r in enumerate(rows):
            np.testing.assert_array_equal(actions[k], singles[r].act(observations[k]))


def test_discrete_actions_decode_token_by_token_beside_grouped_observations():
    tokenizer = GatoTokenizer()
    model = grouped_model(4, 2)
    spec = ActionSpec("discrete", (), num_values=4)
    policy = GatoPolicy(model, tokenizer, spec, None)
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = policy.act(observation(rng))
        assert isinstance(action, int) and 0 <= action < 4
    assert policy.action_units == 1


def test_static_cache_with_groups_falls_back_to_the_eager_cache_with_a_warning():
    tokenizer = GatoTokenizer()
    model = grouped_model(4, 2)
    with pytest.warns(UserWarning, match="static_cache does not support grouped"):
        policy = GatoPolicy(model, tokenizer, SPEC, None, PolicyConfig(static_cache=True))
    assert policy.decoder is None and not policy.config.static_cache
    reference = GroupedReferencePolicy(model, tokenizer, SPEC, None)
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs = observation(rng)
        np.testing.assert_array_equal(policy.act(obs), reference.act(obs))


def test_a_task_without_statistics_is_warned_about_and_one_with_them_is_standardised():
    from gato.policy import task_tokenizer

    record = {"gym-pendulum": {"mean": [0.5, 0.0, 0.0], "std": [0.4, 0.3, 1.5]}}
    config = make_config(standardize_observations=True, observation_statistics=record)
    tokenizer = GatoTokenizer()
    standard = task_tokenizer(tokenizer, config, "gym-pendulum")
    np.testing.assert_array_equal(standard.observation_statistics.std, [0.4, 0.3, 1.5])
    with pytest.warns(UserWarning, match="no statistics for 'gym-cartpole'"):
        plain = task_tokenizer(tokenizer, config, "gym-cartpole")
    assert plain.observation_statistics is None
    # A model trained on raw values reads every task raw, silently.
    assert task_tokenizer(tokenizer, make_config(), "gym-cartpole").observation_statistics is None
    # So does a game of frames alone: there is nothing to standardise; an unknown task may have.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert task_tokenizer(tokenizer, config, "atari-pong").observation_statistics is None
    with pytest.warns(UserWarning, match="no statistics for 'my-task'"):
        task_tokenizer(tokenizer, config, "my-task")
    # A spec is read as it is, registered or not: frames alone need no statistics.
    import dataclasses

    from gato.tasks.registry import get_task

    frames = dataclasses.replace(get_task("atari-pong"), id="my-game")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert task_tokenizer(tokenizer, config, frames).observation_statistics is None
    values = dataclasses.replace(get_task("gym-cartpole"), id="my-cartpole")
    with pytest.warns(UserWarning, match="no statistics for 'my-cartpole'"):
        task_tokenizer(tokenizer, config, values)
