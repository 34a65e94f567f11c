"""GatoPolicy with frame groups: a control frame is one position in the policy's cache too."""

from __future__ import annotations

import numpy as np
import torch
from helpers import make_config
from references import ReferencePolicy

from gato.modeling.model import GatoModel
from gato.policy import GatoPolicy, PolicyConfig
from gato.schema import ActionSpec
from gato.tokens.tokenizer import GatoTokenizer

SPEC = ActionSpec("discrete", (), num_values=6)


def frame_model(max_positions: int) -> GatoModel:
    torch.manual_seed(0)
    config = make_config(
        max_position_embeddings=max_positions, frame_group=5, initializer_range=0.2
    )
    return GatoModel(config).eval()


def frame_observation(rng: np.random.Generator) -> dict:
    frame = np.full((84, 84, 4), 87, dtype=np.uint8)
    y, x = rng.integers(0, 80, 2)
    frame[y : y + 3, x : x + 3] = 236
    return {"image_observations": frame}


def test_cached_steps_act_as_recomputing_the_context_with_one_position_a_frame():
    model = frame_model(256)
    tokenizer = GatoTokenizer.from_config(model.config)
    policy = GatoPolicy(model, tokenizer, SPEC, None, PolicyConfig(slide="recompute"))
    reference = ReferencePolicy(model, tokenizer, SPEC, None)
    rng = np.random.default_rng(3)
    actions = []
    # 8 steps of 27 tokens fit the reference's window of 256 tokens: neither slides.
    for _ in range(8):
        obs = frame_observation(rng)
        actions.append(policy.act(obs))
        assert actions[-1] == reference.act(obs)
    assert len(set(actions)) > 1  # the frames move the choice
    # Each step holds the frame, the separator and the action: 3 positions, not 27 tokens.
    assert policy.rows[0].in_cache == 8 * 3 - 1  # the last action waits to be fed


def test_the_window_slides_by_tokens_as_training_windows_are_cut():
    model = frame_model(64)
    tokenizer = GatoTokenizer.from_config(model.config)
    policy = GatoPolicy(model, tokenizer, SPEC, None, PolicyConfig(slide="recompute"))
    rng = np.random.default_rng(4)
    held = []
    for _ in range(12):
        action = policy.act(frame_observation(rng))
        assert 0 <= action < 6
        held.append(len(policy.rows[0].history))
        assert policy.rows[0].in_cache <= 2 * 3
    # Steps of 27 tokens in a window of 64: at most two timesteps are kept.
    assert max(held) == 2 and held[-1] <= 2


def test_the_positions_of_a_token_pattern_are_counted_once_and_kept_within_bounds(monkeypatch):
    import gato.policy.agent as agent
    from gato.modeling.groups import compact_length

    model = frame_model(256)
    tokenizer = GatoTokenizer.from_config(model.config)
    policy = GatoPolicy(model, tokenizer, SPEC, None, PolicyConfig())
    rng = np.random.default_rng(0)
    episode = {
        "image_observations": np.stack([frame_observation(rng)["image_observations"]] * 3),
        "discrete_actions": np.array([1, 2, 3]),
    }
    tokens = tokenizer.encode_episode(
        {"image_observations": episode["image_observations"]},
        {"discrete_actions": episode["discrete_actions"]},
        SPEC,
    )
    calls = []
    monkeypatch.setattr(agent, "compact_length", lambda *a: calls.append(1) or compact_length(*a))
    monkeypatch.setattr(agent, "SPAN_PATTERNS", 2)
    cut = [tokens.slice(0, n) for n in (26, 27, 54, 81)]  # a frame alone, then whole steps
    want = [1 + 1, 3, 6, 9]  # the frame and its separator; 3 positions a step
    assert [policy._span(t) for t in cut] == want
    assert [policy._span(t) for t in cut[-2:]] == want[-2:]  # the two newest are kept
    assert len(calls) == 4 and len(policy._spans) == 2
    assert policy._span(cut[0]) == want[0] and len(calls) == 5  # the oldest made room
