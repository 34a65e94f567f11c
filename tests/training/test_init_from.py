"""Fine-tuning: `--init_from` starts a new run from a checkpoint's weights (only), on a mixture
with tasks the checkpoint never saw; `--freeze_embedding` / `--train_last_blocks` fix parts; a
checkpoint that cannot take the new data is refused with an error naming what differs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gato.policy import CheckpointError
from gato.training import pipeline
from gato.training.config import TrainConfig
from gato.training.init_from import (
    IncompatibleCheckpointError,
    apply_freeze,
    check_compatible,
    check_model_options,
)
from gato.training.schedule import learning_rate_factor
from gato.training.trainer import Trainer, main


def _train_args(recipe: Path, out: Path, cache: Path, steps: int, *extra: str) -> list[str]:
    return [
        "--preset", "tiny", "--mixture", str(recipe), "--steps", str(steps),
        "--global_batch", "2", "--context", "128", "--output_dir", str(out),
        "--cache_dir", str(cache), "--checkpoint_every", str(steps),
        "--mixed_precision", "no", "--learning_rate", "1e-3", "--warmup_steps", "1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(small_recipe, tmp_path_factory) -> Path:
    """A tiny run of 2 steps on the small recipe (a toy control task, captions, text)."""
    root = tmp_path_factory.mktemp("pretrained")
    main(_train_args(small_recipe, root / "run", root / "cache", 2))
    return root / "run"


def _weights(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run / "checkpoints" / latest / "model" / "model.safetensors"))


def _cartpole_episodes(path: Path, episodes: int = 3, limit: int = 60) -> Path:
    """gym-cartpole episodes in the registry's columns, from a balancing rule (quicker than the
    registry's expert, whose data the job would otherwise collect)."""
    import datasets
    import gymnasium

    env = gymnasium.make("CartPole-v1")
    rows: dict[str, list] = {"continuous_observations": [], "discrete_actions": [], "rewards": []}
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        observations, actions, rewards = [], [], []
        for _ in range(limit):
            action = int(obs[2] + 0.5 * obs[3] > 0)
            observations.append(obs.astype("float32").tolist())
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        rows["continuous_observations"].append(observations)
        rows["discrete_actions"].append(actions)
        rows["rewards"].append(rewards)
    datasets.Dataset.from_dict(rows).save_to_disk(str(path))
    return path


def test_fine_tune_on_an_unseen_task_loads_trains_and_evaluates(pretrained, tmp_path):
    # gym-cartpole is not in the pretraining recipe: a task the checkpoint never saw.
    _cartpole_episodes(tmp_path / "cartpole")
    recipe = tmp_path / "unseen.toml"
    recipe.write_text(
        f'name = "unseen"\n[[sources]]\ntask = "gym-cartpole"\nweight = 1.0\n'
        f'path = "{tmp_path / "cartpole"}"\n'
    )
    out = tmp_path / "fine"
    args = _train_args(recipe, out, tmp_path / "cache", 2, "--init_from", str(pretrained))
    args += ["--train_last_blocks", "1", "--freeze_embedding", "true", "--warmup_steps", "2"]
    args += ["--eval_episodes", "1", "--eval_max_steps", "10"]
    result = pipeline.main(args)

    assert result["steps"] == 2
    assert [t["task"] for t in result["report"]["control"]["tasks"]] == ["gym-cartpole"]
    before, after = _weights(pretrained), _weights(out)
    assert before.keys() == after.keys()
    frozen = [k for k in before if k.startswith(("embedding.", "layers.0.", "layers.1."))]
    frozen += [k for k in before if k.startswith("layers.2.")]
    trained = [k for k in before if k.startswith("layers.3.")]
    assert frozen and trained
    for key in frozen:
        assert torch.equal(before[key], after[key]), f"{key} was frozen but changed"
    assert any(not torch.equal(before[k], after[k]) for k in trained), (
        "the last block did not train"
    )
    # A new run: steps count from 1, the schedule starts at its warmup, the recipe is the new one.
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    first = 1e-3 * learning_rate_factor(0, warmup=2, total=2, final_ratio=0.1)
    assert first == pytest.approx(5e-4)
    assert metrics[0]["learning_rate"] == pytest.approx(first)  # the new schedule's first step
    run = json.loads((out / "run.json").read_text())
    assert run["identity"]["init_from"] == str(pretrained)
    assert run["config"]["train_last_blocks"] == 1


def test_init_weights_equal_the_checkpoint_and_optimizer_is_fresh(
    pretrained, small_recipe, tmp_path
):
    args = _train_args(small_recipe, tmp_path / "run", tmp_path / "cache", 1)
    config = TrainConfig(**_to_fields(args), init_from=str(pretrained))
    trainer = Trainer(config)
    state = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    for key, value in _weights(pretrained).items():
        assert torch.equal(state[key], value), key
    assert trainer.step == 0 and not trainer.optimizer.state
    assert trainer.model_config.num_hidden_layers == 4


def _to_fields(args: list[str]) -> dict:
    """The `--name value` pairs of `_train_args` as TrainConfig keyword arguments."""
    fields = {f for f in TrainConfig.__dataclass_fields__}
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    out = {}
    for flag, value in pairs.items():
        name = flag[2:]
        assert name in fields, name
        kind = TrainConfig.__dataclass_fields__[name].type
        if "int" in str(kind) and "." not in value and value.lstrip("-").isdigit():
            out[name] = int(value)
        elif "float" in str(kind):
            out[name] = float(value)
        else:
            out[name] = value
    return out


def test_not_a_checkpoint_is_refused(small_recipe, tmp_path):
    empty = tmp_path / "not_a_checkpoint"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    args = _train_args(small_recipe, tmp_path / "run", tmp_path / "cache", 1)
    with pytest.raises(CheckpointError, match="not a model folder"):
        Trainer(TrainConfig(**_to_fields(args), init_from=str(empty)))
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(TrainConfig(**_to_fields(args), init_from=str(tmp_path / "absent")))


def test_a_model_of_other_ids_or_positions_is_refused(pretrained, small_recipe, tmp_path):
    from gato.modeling.config import GatoConfig
    from gato.modeling.model import GatoModel

    args = _train_args(small_recipe, tmp_path / "run", tmp_path / "cache", 1)
    # Another SentencePiece model beside the weights: text ids would change meaning.
    latest = (pretrained / "checkpoints" / "latest").read_text().strip()
    model_dir = tmp_path / "other_text"
    shutil.copytree(pretrained / "checkpoints" / latest / "model", model_dir)
    text_model = next(model_dir.glob("*.model"))
    text_model.write_bytes(text_model.read_bytes() + b"another model")
    with pytest.raises(IncompatibleCheckpointError, match="text model .* differs") as info:
        Trainer(TrainConfig(**_to_fields(args), init_from=str(model_dir)))
    assert f"GATO_TEXT_MODEL={text_model}" in str(info.value)
    # Another id table.
    config = GatoConfig.from_preset("tiny")
    config.vocab_size += 64
    with pytest.raises(IncompatibleCheckpointError, match="vocab_size"):
        check_compatible(config, None, "x")
    # Too few local positions for the toy task's observations (5 values + separator...).
    small = GatoConfig.from_preset("tiny", max_local_positions=3, num_hidden_layers=1)
    GatoModel(small).save_pretrained(tmp_path / "short")
    with pytest.raises(IncompatibleCheckpointError, match="3 local positions.*toy-control needs"):
        Trainer(TrainConfig(**_to_fields(args), init_from=str(tmp_path / "short")))


def test_model_options_other_than_the_checkpoints_are_refused(pretrained, small_recipe, tmp_path):
    """The model is the checkpoint's: an option asking for another shape is an error naming it
    and what the checkpoint has, not silently ignored; the defaults and the checkpoint's own
    choices pass."""
    from gato.modeling.config import ENCODINGS, GatoConfig

    args = _train_args(small_recipe, tmp_path / "run", tmp_path / "cache", 1)
    with pytest.raises(
        IncompatibleCheckpointError,
        match=r"--encoding values \(the checkpoint's: grouped\); --patch_encoder linear "
        r"\(the checkpoint's: resnet\)",
    ):
        Trainer(
            TrainConfig(
                **_to_fields(args), init_from=str(pretrained), encoding="values",
                patch_encoder="linear",
            )
        )  # fmt: skip
    assert TrainConfig(encoding="values", value_embedding_init="smooth").model_options_set() == {
        "encoding": "values",
        "value_embedding_init": "smooth",
    }
    assert TrainConfig(patch_encoder="resnet").model_options_set() == {}
    linear = GatoConfig.from_preset("tiny", patch_encoder="linear", **ENCODINGS["values"])
    check_model_options(linear, "x", {})
    check_model_options(linear, "x", {"encoding": "values", "patch_encoder": "linear"})
    with pytest.raises(IncompatibleCheckpointError, match="value_embedding_init smooth"):
        check_model_options(linear, "x", {"value_embedding_init": "smooth"})
    assert TrainConfig(action_head_skip=False).model_options_set() == {"action_head_skip": False}
    assert TrainConfig(action_head_skip=True).model_options_set() == {"action_head_skip": True}
    assert "action_head_skip" not in TrainConfig(encoding="values").model_options_set()
    with pytest.raises(IncompatibleCheckpointError, match="--action_head_skip True.*: False"):
        check_model_options(linear, "x", {"action_head_skip": True})
    with pytest.raises(IncompatibleCheckpointError, match="mono_resnet.*checkpoint's: linear"):
        check_model_options(linear, "x", {"patch_encoder": "mono_resnet+linear"})
    assert TrainConfig(patch_size=84, patch_encoder="nature").model_options_set() == {
        "patch_encoder": "nature",
        "patch_size": 84,
    }
    with pytest.raises(IncompatibleCheckpointError, match=r"--patch_size 84 \(the checkpoint's"):
        check_model_options(linear, "x", {"patch_size": 84})
    assert TrainConfig(frame_group=5).model_options_set() == {"frame_group": 5}
    with pytest.raises(IncompatibleCheckpointError, match=r"--frame_group 5 \(the checkpoint's: 0"):
        check_model_options(linear, "x", {"frame_group": 5})
    framed = GatoConfig.from_preset("tiny", frame_group=5, **ENCODINGS["values"])
    check_model_options(framed, "x", {"frame_group": 5})
    with pytest.raises(
        IncompatibleCheckpointError, match=r"--frame_differences True \(the checkpoint's: False"
    ):
        check_model_options(framed, "x", {"frame_group": 5, "frame_differences": True})
    moving = GatoConfig.from_preset(
        "tiny", frame_group=5, frame_differences=True, **ENCODINGS["values"]
    )
    check_model_options(moving, "x", {"frame_group": 5, "frame_differences": True})


def test_freeze_options():
    from gato.modeling.config import GatoConfig
    from gato.modeling.model import GatoModel

    model = GatoModel(GatoConfig.from_preset("tiny", num_hidden_layers=2))
    total = sum(p.numel() for p in model.parameters())
    block = sum(p.numel() for p in model.layers[0].parameters())
    assert apply_freeze(model, False, 1) == total - block
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert all(p.requires_grad for p in model.layers[1].parameters())
    with pytest.raises(ValueError, match="2 decoder blocks"):
        apply_freeze(GatoModel(GatoConfig.from_preset("tiny", num_hidden_layers=2)), False, 3)
    with pytest.raises(ValueError, match="train_last_blocks must be >= 0"):
        TrainConfig(train_last_blocks=-1)
