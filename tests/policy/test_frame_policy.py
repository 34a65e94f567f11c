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
