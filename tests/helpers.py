"""Shapes shared by the tests: a model small enough that a forward pass takes milliseconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gato.modeling.config import GatoConfig

if TYPE_CHECKING:
    import numpy as np
    import torch

    from gato.modeling.model import GatoModel
    from gato.tokens.batch import TokenSequence

TEST_SHAPE = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    head_dim=16,
    intermediate_size=128,
    resnet_channels=16,
    resnet_groups=4,
    max_local_positions=64,
    max_position_embeddings=128,
)


def make_config(**overrides) -> GatoConfig:
    """A `GatoConfig` of `TEST_SHAPE`, with `overrides` applied."""
    return GatoConfig(**{**TEST_SHAPE, **overrides})


def tensorboard_scalars(directory) -> dict[str, dict[int, float]]:
    """Every scalar of the event files in `directory`, read back: {tag: {step: value}}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def count_departures(policy, reference, other, observations, check_context: bool = False) -> int:
    """Feed each observation to all three policies: `policy` must act as `reference` does (and,
    with `check_context`, hold the same context); returns how many of its actions differ from
    `other`'s (a test asserts some do, so that it can tell the two settings apart)."""
    import numpy as np

    differ = 0
    for obs in observations:
        action = policy.act(obs)
        np.testing.assert_array_equal(action, reference.act(obs))
        differ += not np.array_equal(action, other.act(obs))
        if check_context:
            np.testing.assert_array_equal(policy.context().ids, reference.context().ids)
    return differ


def run_in_chunks(
    model: GatoModel, seq: TokenSequence, cuts: list[int], device: str = "cpu"
) -> torch.Tensor:
    """Logits of `seq` fed in pieces [0, c0), [c0, c1), ... through one KV cache."""
    import torch

    from gato.modeling.groups import compact_length
    from gato.tokens.batch import collate

    cache, logits = None, []
    bounds = [0, *cuts, len(seq)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        piece = collate([seq.slice(start, stop)]).to(device)
        out = model(
            input_ids=piece.input_ids,
            local_positions=piece.local_positions,
            patches=piece.patches,
            patch_positions=piece.patch_positions,
            past_key_values=cache,
            use_cache=True,
            return_logits=True,
        )
        cache = out.past_key_values
        logits.append(out.logits)
    cfg = model.config
    positions = compact_length(
        seq.ids,
        seq.local_positions,
        cfg.continuous_observation_group,
        cfg.continuous_action_group,
        cfg.keep_separator,
        cfg.frame_group,
    )
    assert cache.get_seq_length() == positions
    return torch.cat(logits, dim=1)


def pong_like_steps(rng, steps: int) -> dict:
    """A grey 84x84x4 background, a bright ball and a paddle that move, discrete actions."""
    import numpy as np

    frames = np.full((steps, 84, 84, 4), 87, dtype=np.uint8)
    for t in range(steps):
        y, x = rng.integers(0, 80, 2)
        frames[t, y : y + 2, x : x + 2, :] = 236
        frames[t, 30 + t : 46 + t, 76:78, -1] = 92
    return {
        "image_observations": frames,
        "discrete_actions": rng.integers(0, 6, steps),
        "rewards": np.zeros(steps, np.float32),
    }


def shifting_frame_stacks(steps: int, seed: int = 0) -> np.ndarray:
    """(steps, 84, 84, 4) stacks of a moving dot on a still background, newest frame last,
    the first stack the first frame four times (as an Atari reset's)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    background = np.full((84, 84), 90, np.uint8)
    background[:6] = 236
    frames = []
    for _ in range(steps):
        frame = background.copy()
        row, col = rng.integers(8, 80, 2)
        frame[row : row + 2, col : col + 2] = 255
        frames.append(frame)
    frames = [frames[0]] * 3 + frames
    return np.stack([np.stack(frames[t : t + 4], axis=-1) for t in range(steps)])


def write_atari_dataset(path, episodes: int = 3, steps: int = 12):
    """Atari-like episodes (frame stacks, six discrete actions) saved in the project's
    schema under `path` (split train)."""
    import datasets
    import numpy as np

    from gato.data.episodes import encode_png

    features = datasets.Features(
        {
            "image_observations": datasets.Sequence(datasets.Image()),
            "discrete_actions": datasets.Sequence(datasets.Value("int64")),
            "rewards": datasets.Sequence(datasets.Value("float32")),
        }
    )
    rows = {
        "image_observations": [
            [encode_png(stack) for stack in shifting_frame_stacks(steps, seed=e)]
            for e in range(episodes)
        ],
        "discrete_actions": [np.arange(steps) % 6 for _ in range(episodes)],
        "rewards": [np.zeros(steps, np.float32) for _ in range(episodes)],
    }
    dataset = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(path))
    return path
