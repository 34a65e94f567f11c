"""The unified tokenizer: numerics against slow references, token order, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest
from references import slow_bin, slow_mu_law

from gato.schema import ActionSpec
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.tokenizer import (
    BOS_ID,
    CONTINUOUS_OFFSET,
    DISCRETE_OFFSET,
    EOS_ID,
    PAD_ID,
    PATCH_ID,
    SEPARATOR_ID,
    TEXT_VOCAB_SIZE,
    GatoTokenizer,
    bins_to_continuous,
    continuous_to_bins,
    image_to_patches,
    mu_law_decode,
    mu_law_encode,
    normalize_patches,
    patch_position_bins,
)
from gato.vocab import NO_LOCAL_POSITION, PADDED_VOCAB_SIZE, VOCAB_SIZE


@pytest.fixture(scope="module")
def tok() -> GatoTokenizer:
    return GatoTokenizer()


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------


def test_vocabulary_table():
    assert TEXT_VOCAB_SIZE == 32000 and DISCRETE_OFFSET == 32000
    assert CONTINUOUS_OFFSET == 33024 and SEPARATOR_ID == 34048
    specials = {PATCH_ID, PAD_ID, EOS_ID, BOS_ID}
    assert len(specials) == 4 and min(specials) == 34049 and max(specials) < VOCAB_SIZE
    assert PADDED_VOCAB_SIZE % 64 == 0 and PADDED_VOCAB_SIZE >= VOCAB_SIZE


# ---------------------------------------------------------------------------------------------
# Numerics
# ---------------------------------------------------------------------------------------------


def test_mu_law_matches_scalar_reference():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.normal(0, 1, 200), rng.normal(0, 100, 200), [0.0, 1e-9, -1e-9, 256.0, -256.0, 1e6]]
    )
    expected = np.array([slow_mu_law(float(v)) for v in x])
    np.testing.assert_allclose(mu_law_encode(x), expected, rtol=0, atol=1e-12)
    # Other parameters follow the same formula.
    np.testing.assert_allclose(
        mu_law_encode(x, mu=10, M=5), [slow_mu_law(float(v), 10, 5) for v in x], atol=1e-12
    )


def test_mu_law_decode_inverts_encode_within_range():
    x = np.linspace(-256, 256, 2001)
    np.testing.assert_allclose(mu_law_decode(mu_law_encode(x)), x, rtol=1e-9, atol=1e-9)


def test_mu_law_clips_beyond_range():
    y = mu_law_encode(np.array([1e3, -1e9, np.inf]))
    np.testing.assert_array_equal(y, [1.0, -1.0, 1.0])


def test_bins_match_scalar_reference():
    rng = np.random.default_rng(1)
    y = np.concatenate([rng.uniform(-1, 1, 500), [-1.0, 1.0, 0.0, -1 + 2 / 1024, 1 - 1e-12]])
    np.testing.assert_array_equal(continuous_to_bins(y), [slow_bin(float(v)) for v in y])


def test_continuous_round_trip_within_half_a_bin_in_mu_law_space(tok):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 3, 1000), rng.uniform(-250, 250, 1000)])
    decoded = tok.decode_continuous(tok.encode_continuous(x))
    err = np.abs(mu_law_encode(decoded) - mu_law_encode(x))
    assert err.max() <= 1.0 / 1024 + 1e-9


def test_continuous_actions_bin_uniformly_without_mu_law(tok):
    x = np.linspace(-1, 1, 777)
    ids = tok.encode_continuous(x, mu_law=False)
    assert ids.min() == CONTINUOUS_OFFSET and ids.max() == CONTINUOUS_OFFSET + 1023
    decoded = tok.decode_continuous(ids, mu_law=False)
    assert np.abs(decoded - x).max() <= 1.0 / 1024 + 1e-12
    np.testing.assert_allclose(
        bins_to_continuous(np.array([0, 1023])), [-1 + 1 / 1024, 1 - 1 / 1024]
    )


def test_discrete_round_trip(tok):
    values = np.arange(1024).reshape(32, 32)
    ids = tok.encode_discrete(values)
    assert ids.shape == values.shape and ids.min() == DISCRETE_OFFSET
    np.testing.assert_array_equal(tok.decode_discrete(ids), values)


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def test_image_to_patches_matches_slow_reference():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
    patches = image_to_patches(image)
    assert patches.pixels.shape == (6, 3, 16, 16) and patches.pixels.dtype == np.uint8
    assert patches.image_size == (48, 32)
    n = 0
    for r in range(3):
        for c in range(2):
            expected = image[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16].transpose(2, 0, 1)
            np.testing.assert_array_equal(patches.pixels[n], expected)
            assert patches.intervals[n].tolist() == [r * 16, r * 16 + 16, c * 16, c * 16 + 16]
            n += 1


def test_image_resized_to_patch_multiple():
    frame = np.full((84, 84, 4), 200, dtype=np.uint8)
    patches = image_to_patches(frame)
    assert patches.image_size == (80, 80) and patches.pixels.shape == (25, 4, 16, 16)
    assert (patches.pixels == 200).all()
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        image_to_patches(frame, resize=False)


def test_patch_normalisation_range():
    pixels = np.array([0, 255, 127], dtype=np.uint8)
    np.testing.assert_allclose(normalize_patches(pixels), [-0.25, 0.25, (127 / 255 * 2 - 1) / 4])


def test_patch_position_bins():
    intervals = image_to_patches(np.zeros((80, 32, 1), np.uint8)).intervals
    bins = patch_position_bins(intervals, (80, 32), 128)
    # Rows: 5 patches over 128 bins -> edges at multiples of 25.6.
    assert bins[0].tolist() == [0, 26, 0, 64]
    assert bins[1].tolist() == [0, 26, 64, 128]
    assert bins[2].tolist() == [25, 52, 0, 64]
    assert bins[-1].tolist() == [102, 128, 64, 128]
    assert (bins[:, 1] > bins[:, 0]).all() and (bins[:, 3] > bins[:, 2]).all()


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((16, 16, 3), np.float32), "must be uint8"),
        (np.zeros((2, 16, 16, 3), np.uint8), r"\(H, W\) or \(H, W, C\)"),
        (np.zeros((16,), np.uint8), r"\(H, W\) or \(H, W, C\)"),
    ],
)
def test_bad_images_are_rejected(image, message):
    with pytest.raises(ValueError, match=message):
        image_to_patches(image)


# ---------------------------------------------------------------------------------------------
# Timesteps and episodes
# ---------------------------------------------------------------------------------------------


def test_token_order_on_a_nested_observation(tok):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    observation = {
        "continuous": {"z": np.array([0.5]), "y": {"q": np.array([1.0, -1.0])}},
        "discrete": {"b": np.array([1, 2]), "a": np.array([[3], [4]])},
        "image": image,
        "text": "go to the red ball",
    }
    seq = tok.encode_timestep(observation, {"discrete": np.array([5, 6])})

    text = tok.encode_text("go to the red ball").tolist()
    cont = lambda v: tok.encode_continuous(np.array(v)).tolist()  # noqa: E731
    expected = (
        text
        + [PATCH_ID] * 4
        + [DISCRETE_OFFSET + 3, DISCRETE_OFFSET + 4]  # discrete/a
        + [DISCRETE_OFFSET + 1, DISCRETE_OFFSET + 2]  # discrete/b
        + cont([1.0, -1.0])  # continuous/y/q
        + cont([0.5])  # continuous/z
        + [SEPARATOR_ID, DISCRETE_OFFSET + 5, DISCRETE_OFFSET + 6]
    )
    assert seq.ids.tolist() == expected
    n_obs = len(expected) - 3
    assert seq.local_positions.tolist() == list(range(n_obs)) + [NO_LOCAL_POSITION] * 3
    expected_loss = [True] * len(text) + [False] * (n_obs - len(text)) + [False, True, True]
    assert seq.loss_mask.tolist() == expected_loss
    np.testing.assert_array_equal(seq.patches[:, :3], image_to_patches(image).pixels)
    assert (seq.patches[:, 3] == 0).all()  # RGB padded to the tokenizer's 4 channels
    assert seq.timestep_starts.tolist() == [0]


def test_episode_equals_its_timesteps_concatenated(tok):
    rng = np.random.default_rng(5)
    steps = 7
    missions = ["pick up the key", "open the door"] * 3 + ["pick up the key"]
    frames = rng.integers(0, 256, (steps, 84, 84, 4), dtype=np.uint8)
    cont = {"pos": rng.normal(size=(steps, 3)), "vel": rng.normal(size=(steps, 2, 2))}
    disc = rng.integers(0, 10, (steps, 5))
    actions = rng.uniform(-1, 1, (steps, 2))
    episode = tok.encode_episode(
        {"text": missions, "image": frames, "continuous": cont, "discrete": disc},
        {"continuous": actions},
    )
    parts = [
        tok.encode_timestep(
            {
                "text": missions[t],
                "image": frames[t],
                "continuous": {k: v[t] for k, v in cont.items()},
                "discrete": disc[t],
            },
            {"continuous": actions[t]},
        )
        for t in range(steps)
    ]
    joined = TokenSequence.concatenate(parts)
    for name in ("ids", "local_positions", "loss_mask", "patches", "patch_positions"):
        np.testing.assert_array_equal(getattr(episode, name), getattr(joined, name), err_msg=name)
    np.testing.assert_array_equal(episode.timestep_starts, joined.timestep_starts)
    assert episode.num_timesteps == steps


def test_last_timestep_may_lack_an_action(tok):
    obs = {"continuous": np.zeros((3, 2))}
    seq = tok.encode_episode(obs, {"discrete": np.array([1, 2])})
    assert seq.ids[-1] == SEPARATOR_ID
    assert seq.ids.tolist().count(SEPARATOR_ID) == 3
    assert seq.loss_mask.sum() == 2


def test_jat_episode_row(tok):
    rng = np.random.default_rng(6)
    row = {
        "continuous_observations": rng.normal(size=(4, 17)).tolist(),
        "continuous_actions": rng.uniform(-1, 1, (4, 6)).tolist(),
        "rewards": [0.0, 1.0, 0.5, 0.2],
        "image_observations": None,
    }
    seq = tok.encode_jat_episode(row)
    assert len(seq) == 4 * (17 + 1 + 6)
    assert seq.loss_mask.sum() == 4 * 6
    np.testing.assert_array_equal(seq.timestep_starts, [0, 24, 48, 72])
    with pytest.raises(ValueError, match="none of the observation columns"):
        tok.encode_jat_episode({"rewards": [1.0]})


def test_decode_action_round_trip(tok):
    spec = ActionSpec("continuous", shape=(6,))
    action = np.linspace(-0.9, 0.9, 6)
    seq = tok.encode_timestep({"continuous": np.zeros(3)}, action, spec)
    decoded = tok.decode_action(seq.ids[-6:], spec)
    assert decoded.shape == (6,) and decoded.dtype == np.float32
    assert np.abs(decoded - action).max() <= 1 / 1024 + 1e-6

    discrete = ActionSpec("discrete", num_values=18)
    seq = tok.encode_timestep({"discrete": np.array([1])}, 17, discrete)
    assert tok.decode_action(seq.ids[-1:], discrete) == 17
    assert discrete.token_range() == (DISCRETE_OFFSET, DISCRETE_OFFSET + 18)
    with pytest.raises(ValueError, match="outside the valid range"):
        tok.decode_action([DISCRETE_OFFSET + 18], discrete)
    with pytest.raises(ValueError, match="expected 6 tokens"):
        tok.decode_action([CONTINUOUS_OFFSET], spec)


def test_text_encodes_and_decodes_exactly(tok):
    for text in ["Hello, world!", "tabs\tand  double  spaces\n", "emoji 🤖🎮 and 中文 CJK", ""]:
        ids = tok.encode_text(text)
        assert ids.dtype == np.int64 and (ids < TEXT_VOCAB_SIZE).all()
        assert tok.decode_text(ids) == text


def test_caption_and_text_sequences(tok):
    image = np.zeros((64, 48, 3), np.uint8)
    seq = tok.encode_caption(image, "a red square")
    text = tok.encode_text("a red square").tolist()
    assert seq.ids.tolist() == [PATCH_ID] * 12 + [BOS_ID] + text + [EOS_ID]
    assert seq.loss_mask.tolist() == [False] * 13 + [True] * (len(text) + 1)
    assert seq.local_positions.tolist()[:12] == list(range(12))
    assert (seq.local_positions[12:] == NO_LOCAL_POSITION).all()

    vqa = tok.encode_caption(image, "red", question="what colour is the square?")
    question = tok.encode_text("what colour is the square?").tolist()
    answer = tok.encode_text(" red").tolist()
    assert vqa.ids.tolist() == [PATCH_ID] * 12 + [BOS_ID] + question + answer + [EOS_ID]
    assert vqa.loss_mask.tolist() == [False] * (13 + len(question)) + [True] * (len(answer) + 1)
    assert tok.decode_text(vqa.ids[12:]) == "what colour is the square? red"

    chat = tok.encode_text_sequence("hi there")
    assert chat.ids[0] == BOS_ID and chat.ids[-1] == EOS_ID
    assert not chat.loss_mask[0] and chat.loss_mask[1:].all()
    assert tok.decode_text(chat.ids) == "hi there"


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError naming the field and the problem
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "observation, actions, message",
    [
        ({"continuous": {"pos": np.array([[np.nan]])}}, None, "continuous/pos.*finite.*nan"),
        ({"continuous_observations": np.array([[np.inf]])}, None, "continuous_observations.*inf"),
        ({"discrete": np.array([[1024]])}, None, "discrete.*\\[0, 1024\\).*1024"),
        ({"discrete": np.array([[-1]])}, None, "discrete.*-1"),
        ({"discrete": np.array([[0.5]])}, None, "discrete.*integers"),
        ({"image": np.zeros((1, 16, 16, 3), np.float32)}, None, "image.*uint8"),
        ({"image": np.zeros((1, 16), np.uint8)}, None, "image.*\\(T, H, W\\)"),
        ({"image": np.zeros((1, 16, 16, 5), np.uint8)}, None, "5 channels"),
        ({"audio": np.zeros((1, 3))}, None, "unknown observation type 'audio'"),
        ({}, None, "at least one"),
        ({"text": "one str"}, None, "list of T strings"),
        ({"text": [3]}, None, "text: expected str"),
        ({"continuous": np.zeros((2, 3)), "discrete": np.zeros((3, 1), int)}, None, "disagree"),
        ({"continuous": np.zeros((2, 3))}, {"discrete": [1, 2, 3, 4]}, "actions/discrete"),
        ({"continuous": np.zeros((2, 3))}, {"joystick": [1, 2]}, "unknown action type"),
        ({"continuous": np.zeros((1, 3))}, {"discrete": [[1024]]}, "actions/discrete.*1024"),
    ],
)
def test_bad_input_names_field_and_problem(tok, observation, actions, message):
    with pytest.raises(ValueError, match=message):
        tok.encode_episode(observation, actions)


def test_action_outside_spec_range(tok):
    spec = ActionSpec("discrete", num_values=4)
    with pytest.raises(ValueError, match=r"actions/discrete.*\[0, 4\)"):
        tok.encode_episode({"discrete": np.zeros((1, 1), int)}, {"discrete": [4]}, spec)
    with pytest.raises(ValueError, match="num_values"):
        ActionSpec("discrete", num_values=2000)
    with pytest.raises(ValueError, match="kind"):
        ActionSpec("categorical")


def test_bad_text_ids(tok):
    with pytest.raises(ValueError, match="text ids"):
        tok.decode_text([DISCRETE_OFFSET])


# ---------------------------------------------------------------------------------------------
# Sequences and batches
# ---------------------------------------------------------------------------------------------


def test_slice_keeps_patches_with_their_placeholders(tok):
    frames = np.arange(3 * 32 * 32, dtype=np.int64).reshape(3, 32, 32) % 251
    seq = tok.encode_episode({"image": frames.astype(np.uint8)}, {"discrete": [0, 1, 2]})
    per_step = 4 + 1 + 1
    window = seq.slice(per_step, 3 * per_step)
    assert len(window) == 2 * per_step and window.patches.shape[0] == 8
    np.testing.assert_array_equal(window.patches, seq.patches[4:])
    assert window.timestep_starts.tolist() == [0, per_step]
    # A cut through the middle of an image keeps exactly the patches it holds.
    part = seq.slice(2, 8)
    assert part.patches.shape[0] == int((part.ids == PATCH_ID).sum()) == 4


def test_collate_pads_and_masks(tok):
    a = tok.encode_episode({"continuous": np.zeros((2, 3))}, {"discrete": [1, 2]})
    b = tok.encode_episode({"image": np.zeros((1, 32, 16, 3), np.uint8)})
    batch = collate([a, b], pad_to_multiple_of=8)
    assert batch.input_ids.shape == (2, 16)
    assert batch.attention_mask.sum(1).tolist() == [len(a), len(b)]
    assert (batch.input_ids[1, len(b) :] == PAD_ID).all()
    assert not batch.loss_mask[1].any() and batch.loss_mask[0].sum() == 2
    assert batch.patches.shape == (2, 4, 16, 16) and batch.patch_positions.shape == (2, 4)
    batch.validate(PADDED_VOCAB_SIZE)

    left = collate([a, b], padding_side="left")
    assert left.attention_mask[1].tolist() == [0] * (len(a) - len(b)) + [1] * len(b)
    with pytest.raises(ValueError, match="max_length"):
        collate([a, b], max_length=4)


def test_batch_rows_keep_their_patches(tok):
    a = tok.encode_episode({"image": np.full((2, 32, 16, 1), 7, np.uint8)})
    b = tok.encode_episode({"continuous": np.zeros((2, 3))})
    c = tok.encode_episode({"image": np.full((1, 16, 16, 1), 9, np.uint8)})
    batch = collate([a, b, c])
    middle = batch.rows(slice(1, 3))
    assert middle.input_ids.shape[0] == 2 and middle.patches.shape[0] == 1
    assert (middle.patches[:, 0] == 9).all()
    middle.validate(PADDED_VOCAB_SIZE)
    first = batch.rows(slice(0, 1))
    assert first.patches.shape[0] == 4 and (first.patches[:, 0] == 7).all()


def test_batch_validation_names_the_problem(tok):
    seq = tok.encode_episode({"image": np.zeros((1, 16, 16, 3), np.uint8)})
    batch = collate([seq])
    batch.patches = batch.patches[:0]
    with pytest.raises(ValueError, match="1 patch placeholders"):
        batch.validate(PADDED_VOCAB_SIZE)
    batch = collate([seq])
    batch.input_ids[0, -1] = PADDED_VOCAB_SIZE
    with pytest.raises(ValueError, match="input_ids must lie in"):
        batch.validate(PADDED_VOCAB_SIZE)
    with pytest.raises(ValueError, match="placeholders but"):
        TokenSequence(
            ids=np.array([PATCH_ID]),
            local_positions=np.array([0]),
            loss_mask=np.array([False]),
        )
