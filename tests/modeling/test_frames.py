"""Frame groups: a control observation's image enters as one position, pictures keep patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_config, pong_like_steps, run_in_chunks

from gato.codecs import image_to_patches, patch_grid
from gato.modeling.embedding import FRAME_EPS
from gato.modeling.frames import frame_pixels, frames_left_as_patches, with_differences
from gato.modeling.groups import (
    FRAME_GROUP,
    PLAIN,
    compact_length,
    control_frames,
    group_layout,
)
from gato.modeling.model import GatoModel
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import BOS_ID, PATCH_ID, SEPARATOR_ID

GRID = 5  # 84x84 frames are resized to 80x80: 5 x 5 patches of 16 pixels


def scene(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)


def frame_model(seed: int = 0, **overrides) -> GatoModel:
    torch.manual_seed(seed)
    config = make_config(max_position_embeddings=256, frame_group=GRID, **overrides)
    return GatoModel(config).eval()


def mixed_sequences(tokenizer: GatoTokenizer, steps: int = 3) -> list[TokenSequence]:
    rng = np.random.default_rng(0)
    return [
        tokenizer.encode_jat_episode(pong_like_steps(rng, steps)),
        tokenizer.encode_caption(scene(rng), "a red circle"),
    ]


def test_frame_pixels_undo_the_tokenizers_cut():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(80, 80, 4), dtype=np.uint8)
    cut = image_to_patches(image, 16).pixels  # (25, 4, 16, 16)
    got = frame_pixels(torch.from_numpy(cut)[None], GRID)[0].numpy()
    np.testing.assert_array_equal(got, image.transpose(2, 0, 1))
    # A slow reference written from the layout: patch k holds rows r*P.., columns c*P...
    patches = torch.randn(2, 9, 3, 4, 4)
    want = torch.zeros(2, 3, 12, 12)
    for k in range(9):
        r, c = divmod(k, 3)
        want[:, :, r * 4 : r * 4 + 4, c * 4 : c * 4 + 4] = patches[:, k]
    torch.testing.assert_close(frame_pixels(patches, 3), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\(M, 25, C, P, P\) for a 5x5 grid"):
        frame_pixels(patches, GRID)


def as_rows(seq: TokenSequence) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(seq.ids)[None], torch.from_numpy(seq.local_positions)[None]


def test_control_frames_are_the_images_an_observation_ends_with_a_separator():
    tokenizer = GatoTokenizer.from_config(make_config())
    episode, caption = mixed_sequences(tokenizer, steps=2)
    ids, local = as_rows(episode)
    frames = control_frames(ids, local, GRID)[0]
    assert torch.equal(frames, (ids[0] == PATCH_ID))  # every patch of the episode
    assert int(frames.sum()) == 2 * GRID * GRID
    # A caption's image is followed by BOS: its patches stay patches.
    ids, local = as_rows(caption)
    assert (ids[0] == PATCH_ID).sum() == 9 and (ids[0] == BOS_ID).any()
    assert not control_frames(ids, local, GRID).any()
    # A window cut inside an image leaves its part of a frame as patches.
    part = episode.slice(10, len(episode))
    ids, local = as_rows(part)
    frames = control_frames(ids, local, GRID)[0]
    assert not frames[: 25 - 10].any() and int(frames.sum()) == GRID * GRID
    # Off, or without local positions (nothing marks an observation), there are none.
    assert not control_frames(ids, local, 0).any()
    assert not control_frames(ids, None, GRID).any()
    # Grid 3 does not divide a run of 25: left as patches.
    assert not control_frames(ids, local, 3).any()


@pytest.mark.parametrize("keep_separator", [True, False])
def test_compact_length_counts_the_layouts_positions(keep_separator):
    tokenizer = GatoTokenizer.from_config(make_config())
    episode, caption = mixed_sequences(tokenizer, steps=3)
    for seq in (episode, caption, episode.slice(7, len(episode)), episode.slice(0, 40)):
        ids = torch.from_numpy(seq.ids)[None]
        local = torch.from_numpy(seq.local_positions)[None]
        layout = group_layout(ids, local, None, 0, 0, False, keep_separator, GRID)
        got = compact_length(seq.ids, seq.local_positions, 0, 0, keep_separator, GRID)
        assert got == layout.length
    ids = torch.from_numpy(episode.ids)[None]
    local = torch.from_numpy(episode.local_positions)[None]
    layout = group_layout(ids, local, None, 0, 0, False, keep_separator, GRID)
    # A timestep: the frame, [the separator,] the action.
    assert layout.length == 3 * (3 if keep_separator else 2)
    assert layout.compact_kind[0].tolist()[:2] == [FRAME_GROUP, PLAIN]
    assert layout.offset[0, :25].tolist() == list(range(25))


def test_a_frame_position_is_the_nature_stack_on_the_frame_and_a_picture_keeps_its_patches():
    model = frame_model()
    tokenizer = GatoTokenizer.from_config(model.config)
    episode, caption = mixed_sequences(tokenizer, steps=2)
    batch = collate([episode, caption])
    with torch.no_grad():
        x, layout = model.embed(
            batch.input_ids,
            batch.local_positions,
            batch.patches,
            batch.patch_positions,
            batch.attention_mask,
        )
        rows, local = model.embedding.local_positions, 0
        frames = pong_like_steps(np.random.default_rng(0), 2)["image_observations"]
        for t in range(2):
            # The tokenizer's frame: 84x84 resized to 80x80, then read whole.
            patches = image_to_patches(frames[t], 16).pixels
            frame = torch.from_numpy(frame_pixels(torch.from_numpy(patches)[None], GRID).numpy())
            want = model.frames.encoder(frame) + rows.weight[local]
            torch.testing.assert_close(x[0, 3 * t], want[0], rtol=1e-5, atol=1e-5)
        # The caption's row: what the embedding alone gives its tokens (no frame among them).
        n = len(caption)
        start = int((batch.input_ids[0] == PATCH_ID).sum())
        plain = model.embedding(
            batch.input_ids[1:, :n],
            batch.local_positions[1:, :n],
            batch.patches[start:],
            batch.patch_positions[start:],
        )
        torch.testing.assert_close(x[1, :n], plain[0], rtol=1e-5, atol=1e-5)
    assert (layout.compact_kind[1] != FRAME_GROUP).all()


def test_with_differences_appends_each_frame_minus_the_one_before():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2) ** 2
    got = with_differences(x)
    assert got.shape == (2, 5, 2, 2)
    torch.testing.assert_close(got[:, :3], x, rtol=0, atol=0)
    for k in range(2):
        torch.testing.assert_close(got[:, 3 + k], x[:, k + 1] - x[:, k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="2 or more frames"):
        with_differences(x[:, :1])
    with pytest.raises(ValueError, match=r"\(M, C, H, W\)"):
        with_differences(x[0])


def test_a_frame_with_differences_reads_its_standardised_stack_then_the_differences():
    model = frame_model(frame_differences=True)
    assert model.frames.encoder.conv[0].in_channels == 2 * 4 - 1
    tokenizer = GatoTokenizer.from_config(model.config)
    episode = mixed_sequences(tokenizer, steps=2)[0]
    batch = collate([episode])
    with torch.no_grad():
        x, _ = model.embed(batch.input_ids, batch.local_positions, batch.patches)
        frames = pong_like_steps(np.random.default_rng(0), 2)["image_observations"]
        for t in range(2):
            # A slow reference: the resized frame as float64, standardised over all its pixels,
            # then the differences of consecutive frames, channel by channel.
            patches = torch.from_numpy(image_to_patches(frames[t], 16).pixels)[None]
            frame = frame_pixels(patches, GRID)[0].double().numpy() / 255.0  # (4, 80, 80)
            z = (frame - frame.mean()) / (frame.std() + FRAME_EPS)
            channels = [z[k] for k in range(4)] + [z[k + 1] - z[k] for k in range(3)]
            reference = torch.from_numpy(np.stack(channels)[None]).float()
            want = model.frames.encoder.read(reference) + model.embedding.local_positions.weight[0]
            torch.testing.assert_close(x[0, 3 * t], want[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("differences", [False, True])
def test_a_frame_model_trains_both_encoders_decodes_with_a_cache_and_round_trips(
    tmp_path, differences
):
    model = frame_model(frame_differences=differences)
    tokenizer = GatoTokenizer.from_config(model.config)
    episode, caption = mixed_sequences(tokenizer, steps=4)
    batch = collate([episode, caption])
    model.train()
    model(**batch.as_dict()).loss.backward()
    assert model.frames.encoder.conv[0].weight.grad.abs().sum() > 0
    assert model.embedding.patches.stem.weight.grad.abs().sum() > 0
    model.eval()
    full = model(**collate([episode]).as_dict(), return_logits=True).logits  # (1, L', V)
    # Pieces that end after a separator, so each piece's frames are whole and marked.
    got = run_in_chunks(model, episode, [27, 54, 81])
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.frame_group == GRID
    assert loaded.config.frame_differences is differences
    again = loaded(**collate([episode]).as_dict(), return_logits=True).logits
    torch.testing.assert_close(again, full, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(frame_group=-1), "frame_group must be a non-negative integer"),
        (dict(frame_group=True), "frame_group must be a non-negative integer"),
        (dict(frame_group=2), "frames of 32 pixels"),
        (dict(frame_differences=True), "frame_differences needs frame_group > 0"),
        (dict(frame_group=5, frame_differences=1), "frame_differences must be a bool"),
        (
            dict(frame_group=5, frame_differences=True, image_channels=1),
            "stacks of 2 or more frames",
        ),
    ],
)
def test_config_refuses_bad_frame_groups(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_config(**overrides)


def test_an_observation_without_its_separator_has_no_frames():
    # The rule reads the token after an observation: the policy's observation chunk always
    # carries its separator; without it the patches are a picture's.
    tokenizer = GatoTokenizer.from_config(make_config())
    episode = tokenizer.encode_jat_episode(pong_like_steps(np.random.default_rng(1), 1))
    assert episode.ids[25] == SEPARATOR_ID
    ids = torch.from_numpy(episode.ids[:25])[None]
    local = torch.from_numpy(episode.local_positions[:25])[None]
    assert not control_frames(ids, local, GRID).any()


def test_patches_without_their_positions_are_refused_by_name():
    model = frame_model()
    tokenizer = GatoTokenizer.from_config(model.config)
    caption = mixed_sequences(tokenizer)[1]  # a picture: its patches stay patch tokens
    batch = collate([caption])
    with pytest.raises(ValueError, match=r"patches need their \(N, 4\) patch_positions, got None"):
        model.embed(batch.input_ids, batch.local_positions, batch.patches)


@pytest.mark.parametrize(("height", "width"), [(84, 84), (64, 64), (50, 30), (7, 7)])
def test_patch_grid_is_the_tokenizers_cut(height, width):
    image = np.zeros((height, width, 3), dtype=np.uint8)
    rows, cols = patch_grid(height, width, 16)
    assert len(image_to_patches(image, 16).pixels) == rows * cols
    assert patch_grid(84, 84, 16) == (5, 5) and patch_grid(50, 30, 16) == (3, 2)


def test_patch_grid_refuses_empty_sides():
    with pytest.raises(ValueError, match=r"positive sides and patch size, got 0x84 at 16"):
        patch_grid(0, 84, 16)


def test_frames_left_as_patches_names_the_tasks_whose_grid_is_not_the_groups():
    sides = {"atari-pong": (84, 84), "dmc-cartpole-swingup-pixels": (64, 64), "wide": (84, 160)}
    got = frames_left_as_patches(sides, 16, GRID)
    assert got == {"dmc-cartpole-swingup-pixels": (4, 4), "wide": (5, 10)}
    assert frames_left_as_patches(sides, 16, 4) == {"atari-pong": (5, 5), "wide": (5, 10)}
