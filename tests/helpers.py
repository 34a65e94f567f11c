"""Shapes shared by the tests: a model small enough that a forward pass takes milliseconds."""

from __future__ import annotations

from gato.modeling.config import GatoConfig

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
