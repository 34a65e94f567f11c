"""Training: checkpoints that load, exact resumption after a kill, one vs two processes, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gato.checkpoints import verify_checkpoint
from gato.training.config import TrainConfig
from gato.training.schedule import learning_rate_factor
from gato.training.trainer import main

ROOT = Path(__file__).resolve().parents[2]


def _args(recipe: Path, out: Path, cache: Path, steps: int, *extra: str) -> list[str]:
    return [
        "--preset", "tiny", "--mixture", str(recipe), "--steps", str(steps),
        "--global_batch", "4", "--context", "128", "--output_dir", str(out),
        "--cache_dir", str(cache), "--log_every", "1", "--checkpoint_every", "1",
        "--seed", "0", "--learning_rate", "1e-3", "--warmup_steps", "2",
        # fp32: the equivalence tests compare losses across batch splits to 1e-4.
        "--mixed_precision", "no",
        # Hidden context actions and words: resuming and splitting the batch must hide the same
        # tokens.
        "--action_dropout", "0.2", "--text_dropout", "0.2", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _train(args: list[str], launcher: list[str] | None = None, timeout: int = 300):
    """train.py without the main job's data building and evaluation: training alone."""
    args = [*args, "--build_data", "false", "--evaluate", "false"]
    command = (launcher or [sys.executable]) + [str(ROOT / "train.py"), *args]
    out = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _losses(out: Path) -> dict[int, float]:
    """Step -> loss, the last record of each step (a resumed run rewrites the steps it redoes)."""
    losses = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        losses[record["step"]] = record["loss"]
    return losses


@pytest.fixture(scope="module")
def reference_run(small_recipe, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    _train(_args(small_recipe, root / "run", root / "cache", 6))
    return root / "run"


def test_schedule_warms_up_then_decays_tenfold():
    factors = [learning_rate_factor(s, 10, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)


def test_tiny_run_writes_a_checkpoint_that_loads(reference_run):
    from transformers import AutoModel

    from gato.modeling.model import GatoModel
    from gato.tokens.text_model import TEXT_MODEL_PIECES

    losses = _losses(reference_run)
    assert sorted(losses) == list(range(1, 7))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    latest = (reference_run / "checkpoints" / "latest").read_text().strip()
    assert latest == "step-00000006"
    checkpoint = reference_run / "checkpoints" / latest
    manifest = verify_checkpoint(checkpoint)
    assert manifest["step"] == 6
    model = GatoModel.from_pretrained(checkpoint / "model")
    assert isinstance(AutoModel.from_pretrained(checkpoint / "model"), GatoModel)
    assert model.config.max_position_embeddings == 128
    assert not model.config.hide_context_actions  # action_dropout 0.2: actions are read
    card = (checkpoint / "model" / "README.md").read_text()
    assert "train.py" in card and '"preset": "tiny"' in card
    # The run's text model travels with the weights, and the head writes its pieces only.
    assert (checkpoint / "model" / "gato_text_8k.model").exists()
    assert model.config.text_vocab_size == TEXT_MODEL_PIECES
    # Only the last two checkpoints are kept, and no temporary folder is left behind.
    kept = sorted(p.name for p in (reference_run / "checkpoints").iterdir())
    assert kept == ["latest", "step-00000005", "step-00000006"]
    assert list(reference_run.rglob("events.out.tfevents*")), "no TensorBoard log"
    record = json.loads((reference_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record["family_loss"]) <= {"toy", "captions", "text"}


def test_resume_after_a_kill_repeats_the_uninterrupted_losses(
    small_recipe, reference_run, tmp_path
):
    out = tmp_path / "run"
    args = _args(small_recipe, out, reference_run.parent / "cache", 6)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, "--build_data", "false", "--evaluate", "0"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (out / "checkpoints" / "step-00000002").exists():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed_from = int((out / "checkpoints" / "latest").read_text().strip().split("-")[1])
    assert resumed_from < 6, "the kill came too late to test anything"

    _train(args + ["--resume", "true"])
    expected, got = _losses(reference_run), _losses(out)
    assert sorted(got) == list(range(1, 7))
    for step in range(resumed_from + 1, 7):
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def test_two_processes_match_one(small_recipe, reference_run, tmp_path):
    out = tmp_path / "run"
    args = _args(small_recipe, out, reference_run.parent / "cache", 3)
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    _train(args, launcher=launcher)
    expected, got = _losses(reference_run), _losses(out)
    # The same global batches and the same summed gradient; only the order of floating-point
    # additions differs (an all-reduce of two halves), which moves fp32 results by ~1e-6
    # relative per step.
    for step in (1, 2, 3):
        assert got[step] == pytest.approx(expected[step], rel=1e-4), step


def test_batches_of_an_own_batch_source_size_split_like_the_global_batch(small_recipe, tmp_path):
    """A control source in batches of its own of 8 rows (the global batch 4): accumulated over
    two micro-batches, each step's loss equals the step taken whole; a row count that does not
    split is refused before training."""
    recipe = tmp_path / "own.toml"
    recipe.write_text(
        small_recipe.read_text().replace(
            'kind = "control"\n', 'kind = "control"\nown_batches = true\nbatch_rows = 8\n'
        )
    )
    whole, split = tmp_path / "whole", tmp_path / "split"
    _train(_args(recipe, whole, tmp_path / "cache", 4))
    _train(_args(recipe, split, tmp_path / "cache", 4, "--grad_accum", "2"))
    rows = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert {r["family_loss"].keys() == {"toy"} for r in rows} == {True, False}  # both kinds
    expected, got = _losses(whole), _losses(split)
    for step in (1, 2, 3, 4):
        assert got[step] == pytest.approx(expected[step], rel=1e-4), step
    from gato.training.config import TrainConfig
    from gato.training.trainer import Trainer

    trainer = Trainer(
        TrainConfig(mixture=str(recipe), global_batch=4, context=128, grad_accum=2,
                    output_dir=str(tmp_path / "t"), cache_dir=str(tmp_path / "cache"),
                    mixed_precision="no", report_to="none")
    )  # fmt: skip
    with pytest.raises(ValueError, match="a batch of 5 rows does not divide into 1 processes x 2"):
        trainer._local_rows(None, ["toy"] * 5)  # a batch no source of the recipe makes
    recipe.write_text(recipe.read_text().replace("batch_rows = 8", "batch_rows = 3"))
    with pytest.raises(ValueError, match="batch_rows=3 does not divide into 1 processes x 2"):
        main(_args(recipe, tmp_path / "r", tmp_path / "cache", 1, "--grad_accum", "2"))


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors before any work is lost
# ---------------------------------------------------------------------------------------------


def test_a_run_that_hides_actions_and_cuts_windows_makes_a_policy_that_does_too(
    small_recipe, tmp_path
):
    from gato.modeling.model import GatoModel
    from gato.policy import GatoPolicy
    from gato.schema import ActionSpec

    run = tmp_path / "run"
    # The encoding that reads values as they come: a policy of a standardising one needs a
    # registered task (its statistics), which this recipe's toy task is not.
    extra = ["--action_dropout", "1.0", "--control_window_steps", "4", "--patch_encoder", "linear",
             "--encoding", "grouped", "--action_head_skip", "true"]  # fmt: skip
    _train([*_args(small_recipe, run, tmp_path / "cache", 1), *extra])
    model = GatoModel.from_pretrained(run / "checkpoints" / "step-00000001" / "model")
    assert model.config.patch_encoder == "linear"
    assert model.config.action_head_skip and model.action_head.skip is not None
    assert model.config.hide_context_actions and model.config.policy_history_steps == 3
    spec = ActionSpec("continuous", (2,))
    policy = GatoPolicy.from_pretrained(run, action_spec=spec, prompt=None)
    assert policy.config.hide_actions and policy.config.history_steps == 3


def test_a_run_of_whole_frame_patches_trains_a_model_that_cuts_them(small_recipe, tmp_path):
    """--patch_size 84 --patch_encoder nature: the caches are tokenized at the model's patch
    size (a caption image one token), and the checkpoint records both."""
    from gato.modeling.model import GatoModel

    run = tmp_path / "run"
    extra = ["--patch_size", "84", "--patch_encoder", "nature"]
    _train([*_args(small_recipe, run, tmp_path / "cache", 1), *extra])
    model = GatoModel.from_pretrained(run / "checkpoints" / "step-00000001" / "model")
    assert (model.config.patch_size, model.config.patch_encoder) == (84, "nature")
    assert model.embedding.patches.proj.in_features == 64 * 7 * 7


def test_a_run_of_frame_groups_records_them_and_reads_its_captions_as_patches(
    small_recipe, tmp_path
):
    """--frame_group 5 --frame_differences true: the caches keep 16-pixel patches; the
    checkpoint records the frame group and carries the frame encoder (reading the stack and its
    differences) beside the patch block."""
    from gato.modeling.model import GatoModel

    run = tmp_path / "run"
    args = ["--frame_group", "5", "--frame_differences", "true"]
    _train([*_args(small_recipe, run, tmp_path / "cache", 1), *args])
    model = GatoModel.from_pretrained(run / "checkpoints" / "step-00000001" / "model")
    assert (model.config.frame_group, model.config.patch_size) == (5, 16)
    assert model.config.frame_differences
    assert model.frames.encoder.proj.in_features == 64 * 6 * 6  # an 80x80 frame
    assert model.frames.encoder.conv[0].in_channels == 2 * model.config.image_channels - 1
    assert model.embedding.patches.stem.in_channels == model.config.image_channels


def test_frame_groups_warn_about_control_images_they_leave_as_patches():
    """Pong's 84x84 stacks are 5x5 patches (read whole); the pixel swing-up's 64x64 camera is
    4x4 (left as patches: named); a dataset outside the registry is skipped."""
    from types import SimpleNamespace

    from gato.training.trainer import _warn_frames_left_as_patches

    recipe = SimpleNamespace(
        sources=[
            SimpleNamespace(kind="control", name="atari-pong"),
            SimpleNamespace(kind="control", name="dmc-cartpole-swingup-pixels"),
            SimpleNamespace(kind="control", name="toy-control"),
            SimpleNamespace(kind="captions", name="captions"),
        ]
    )
    model_config = SimpleNamespace(frame_group=5, patch_size=16)
    with pytest.warns(UserWarning) as caught:
        _warn_frames_left_as_patches(recipe, model_config)
    assert [str(w.message) for w in caught] == [
        "--frame_group 5: dmc-cartpole-swingup-pixels's images are cut into 4x4 patches of 16 "
        "pixels, not 5x5, so they train as patch tokens, not as frames"
    ]


def test_unknown_preset_and_bad_numbers():
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*tiny"):
        TrainConfig(preset="huge")
    with pytest.raises(ValueError, match="steps must be at least 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="control_window_steps must be an int >= 0"):
        TrainConfig(control_window_steps=-1)
    with pytest.raises(ValueError, match="with --streaming pass --control_window_steps 0"):
        TrainConfig(streaming=True)  # the default cuts short windows
    TrainConfig(streaming=True, control_window_steps=0)
    with pytest.raises(ValueError, match=r"action_dropout must be in \[0, 1\]"):
        TrainConfig(action_dropout=1.5)
    for bad in (1.0, -0.2):
        with pytest.raises(ValueError, match=r"text_dropout must be in \[0, 1\)"):
            TrainConfig(text_dropout=bad)
    for bad in (1.0, -0.5):
        with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
            TrainConfig(ema_decay=bad)
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=r"prompt_probability must be in \[0, 1\]"):
            TrainConfig(prompt_probability=bad)
    with pytest.raises(ValueError, match=r"pairs_per_sequence must be >= 0 \(0: as many as fit\)"):
        TrainConfig(pairs_per_sequence=-1)
    with pytest.raises(ValueError, match="pairs_per_sequence must be an int, got 2.5"):
        TrainConfig(pairs_per_sequence=2.5)
    with pytest.raises(ValueError, match="value_embedding_init must be normal or smooth"):
        TrainConfig(value_embedding_init="fourier")
    with pytest.raises(ValueError, match=r"patch_encoder must be one of .*'conv'"):
        TrainConfig(patch_encoder="conv")
    # One token per value has no grouped head: the path is off there unless asked, then refused.
    assert not TrainConfig(encoding="values").uses_action_head_skip
    assert TrainConfig().uses_action_head_skip
    with pytest.raises(ValueError, match="action_head_skip needs grouped actions"):
        TrainConfig(action_head_skip=True, encoding="values")
    with pytest.raises(ValueError, match="action_head_skip must be true or false, got 'yes'"):
        TrainConfig(action_head_skip="yes")
    assert "action_head_skip" not in TrainConfig(action_head_skip=False).identity()
    assert TrainConfig().identity()["action_head_skip"] is True
    # A run on another patch encoder is another run: resuming across it must be refused.
    assert "patch_encoder" not in TrainConfig().identity()
    assert TrainConfig(patch_encoder="linear").identity()["patch_encoder"] == "linear"
    assert "patch_size" not in TrainConfig().identity()
    assert TrainConfig(patch_size=84, patch_encoder="nature").identity()["patch_size"] == 84
    with pytest.raises(ValueError, match="patch_encoder nature needs patch_size >= 36.*got 16"):
        TrainConfig(patch_encoder="nature")
    with pytest.raises(ValueError, match="patch_size must be a positive multiple of 4, got 30"):
        TrainConfig(patch_size=30)
    assert "frame_group" not in TrainConfig().identity()
    assert TrainConfig(frame_group=5).identity()["frame_group"] == 5
    with pytest.raises(ValueError, match="frame_group must be a non-negative integer, got -1"):
        TrainConfig(frame_group=-1)
    with pytest.raises(ValueError, match="frames of 32 pixels; the Nature DQN's convolutions"):
        TrainConfig(frame_group=2)
    assert "frame_differences" not in TrainConfig(frame_group=5).identity()
    assert TrainConfig(frame_group=5, frame_differences=True).identity()["frame_differences"]
    with pytest.raises(
        ValueError, match=r"frame_differences needs frame_group > 0 \(--frame_group"
    ):
        TrainConfig(frame_differences=True)
    with pytest.raises(ValueError, match="frame_differences must be a bool, got 'yes'"):
        TrainConfig(frame_group=5, frame_differences="yes")
    with pytest.raises(ValueError, match="patch_size must be an integer, got '84'"):
        TrainConfig(patch_size="84")


def test_unknown_mixture(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such recipe"):
        main(["--mixture", "no-such-mixture", "--output_dir", str(tmp_path / "r")])


def test_batch_that_does_not_divide(small_recipe, tmp_path):
    with pytest.raises(ValueError, match="does not divide"):
        main(_args(small_recipe, tmp_path / "r", tmp_path / "c", 1, "--grad_accum", "3"))


def test_output_dir_with_another_run_is_not_overwritten(small_recipe, reference_run, tmp_path):
    before = (reference_run / "run.json").read_text()
    args = _args(small_recipe, reference_run, tmp_path / "c", 7)
    with pytest.raises(ValueError, match="already holds a run"):
        main(args)
    with pytest.raises(ValueError, match="holds a different run"):
        main(_args(small_recipe, reference_run, tmp_path / "c", 7, "--resume", "1", "--seed", "5"))
    with pytest.raises(ValueError, match="holds no run"):
        main(_args(small_recipe, tmp_path / "empty", tmp_path / "c", 7, "--resume", "1"))
    assert (reference_run / "run.json").read_text() == before


def test_corrupt_checkpoint_is_refused(small_recipe, reference_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    weights = latest / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors does not match its checksum"):
        main(_args(small_recipe, run, reference_run.parent / "cache", 8, "--resume", "1"))


def test_config_file_gives_the_same_configs_as_the_command_line(tmp_path):
    from gato.training.pipeline import parse

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"steps": 7, "global_batch": 8, "eval_episodes": 3}))
    train, pipeline = parse(["--config", str(path)])
    assert (train.steps, train.global_batch, pipeline.eval_episodes) == (7, 8, 3)
    assert (train, pipeline) == parse(
        ["--steps", "7", "--global_batch", "8", "--eval_episodes", "3"]
    )
    # Flags on the command line win over the file's values; the file's other values stay.
    train, pipeline = parse(["--config", str(path), "--steps", "2"])
    assert (train.steps, train.global_batch, pipeline.eval_episodes) == (2, 8, 3)
    path.write_text(json.dumps({"stepz": 7}))
    with pytest.raises(SystemExit) as exit_info:
        parse(["--config", str(path)])
    assert exit_info.value.code == 2


def test_report_to_wandb_offline_and_none(small_recipe, reference_run, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    assert list((reference_run / "tensorboard").rglob("events.out.tfevents.*"))  # the default
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb_home").mkdir()
    out = tmp_path / "wandb_run"
    _train(_args(small_recipe, out, tmp_path / "cache", 2, "--report_to", "wandb"))
    runs = list((tmp_path / "wandb_home").rglob("offline-run-*/*.wandb"))
    assert runs, "wandb wrote no offline run"
    quiet = tmp_path / "quiet_run"
    _train(_args(small_recipe, quiet, tmp_path / "cache", 1, "--report_to", "none"))
    assert not (quiet / "tensorboard").exists() and (quiet / "metrics.jsonl").exists()
    with pytest.raises(ValueError, match="report_to must be one of"):
        TrainConfig(report_to="mlflow")


def test_a_grouped_run_trains_saves_and_acts(small_recipe, tmp_path):
    """`--encoding grouped`: the checkpoint records the grouping, and a policy built from it
    acts on the task's observations (a 2-dimensional continuous action in one pass)."""
    import numpy as np

    from gato.policy import GatoPolicy
    from gato.schema import ActionSpec

    run = tmp_path / "run"
    _train(_args(small_recipe, run, tmp_path / "cache", 3, "--encoding", "grouped"))
    losses = _losses(run)
    assert len(losses) == 3 and all(np.isfinite(v) for v in losses.values())
    spec = ActionSpec("continuous", (2,))
    policy = GatoPolicy.from_pretrained(run, action_spec=spec, prompt=None)
    assert policy.model.config.continuous_observation_group == 32
    assert policy.model.config.value_fourier_top == 8
    assert policy.action_units == 1
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs = {
            "discrete_observations": rng.integers(0, 5, 2),
            "continuous_observations": rng.normal(size=3).astype(np.float32),
        }
        action = policy.act(obs)
        assert action.shape == (2,) and np.all(np.abs(action) <= 1)


def test_a_standardized_run_records_its_statistics_and_acts_by_them(small_recipe, tmp_path):
    """`--encoding grouped_z`: the checkpoint holds the control task's observation statistics
    (those of its training episodes); a policy from it tokenizes observations by them, and one
    built without the task is refused rather than fed raw values."""
    import datasets
    import numpy as np

    from gato.modeling.model import GatoModel
    from gato.policy import GatoPolicy, PolicyConfig
    from gato.schema import ActionSpec
    from gato.tokens.statistics import ObservationStatistics
    from gato.tokens.tokenizer import GatoTokenizer

    run = tmp_path / "run"
    _train(_args(small_recipe, run, tmp_path / "cache", 2, "--encoding", "grouped_z"))
    model = GatoModel.from_pretrained(run / "checkpoints" / "step-00000002" / "model").eval()
    assert model.config.standardize_observations
    assert set(model.config.observation_statistics) == {"toy-control"}
    control = small_recipe.parent / "control"
    rows = datasets.load_from_disk(str(control))["train"].with_format("numpy")
    expected = ObservationStatistics.of_episodes(rows[i] for i in range(len(rows)))
    stats = model.config.task_statistics("toy-control")
    np.testing.assert_allclose(stats.mean, expected.mean)
    np.testing.assert_allclose(stats.std, expected.std)
    spec = ActionSpec("continuous", (2,))
    with pytest.raises(ValueError, match="needs task="):
        GatoPolicy.from_pretrained(run, action_spec=spec, prompt=None)
    tokenizer = GatoTokenizer().standardising(stats)
    policy = GatoPolicy(model, tokenizer, spec, None, PolicyConfig())
    obs = {
        "discrete_observations": np.array([1, 2]),
        "continuous_observations": np.array([0.5, -1.0, 2.0], np.float32),
    }
    assert policy.act(obs).shape == (2,)
    z = stats.standardise(obs["continuous_observations"][None])[0]
    context = policy.context().ids
    np.testing.assert_array_equal(context[2:5], GatoTokenizer().encode_continuous(z))


def test_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match=r"unknown encoding 'packed'.*grouped"):
        TrainConfig(encoding="packed")


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_prompt_probability_reaches_the_mixture(small_recipe, tmp_path, probability):
    from gato.data.mixture.sampler import PROMPT_NONE
    from gato.training.trainer import Trainer

    config = TrainConfig(
        preset="tiny", mixture=str(small_recipe), global_batch=8, context=128,
        output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
        mixed_precision="no", report_to="none", prompt_probability=probability,
    )  # fmt: skip
    data = Trainer(config).data.mixture
    control = data.source_names.index("toy-control")
    samples = [s for step in range(6) for s in data.samples(step) if s.source == control]
    assert samples  # the control source has two of the recipe's four weight parts
    prompted = [s.prompt != PROMPT_NONE for s in samples]
    assert all(prompted) if probability == 1.0 else not any(prompted)


@pytest.mark.parametrize("pairs", [1, 0])
def test_pairs_per_sequence_reaches_the_mixture(small_recipe, tmp_path, pairs):
    from gato.training.trainer import Trainer

    config = TrainConfig(
        preset="tiny", mixture=str(small_recipe), global_batch=8, context=128,
        output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
        mixed_precision="no", report_to="none", pairs_per_sequence=pairs, isolate_packed=True,
    )  # fmt: skip
    data = Trainer(config).data.mixture
    captions = data.source_names.index("captions")
    samples = [s for step in range(6) for s in data.samples(step) if s.source == captions]
    assert samples
    # Pairs in a row: its segments (the row's sequences are isolated).
    counts = {len(s.sequence.segment_starts) + 1 for s in samples}
    # One pair a sequence, or as many as the 128 positions hold (more than one short caption).
    assert counts == {1} if pairs == 1 else min(counts) > 1


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_an_averaging_run_saves_the_average_and_resumes_it(small_recipe, reference_run, tmp_path):
    """`--ema_decay d`: a checkpoint's model/ is the average (the first step's weights, then
    d x average + (1 - d) x weights), its state the training weights; a run resumed from the
    first checkpoint saves the same average at the second."""
    out, decay = tmp_path / "run", 0.75
    extra = ("--ema_decay", str(decay), "--encoding", "grouped_z")
    _train(_args(small_recipe, out, reference_run.parent / "cache", 2, *extra))
    first, second = (out / "checkpoints" / f"step-0000000{s}" for s in (1, 2))
    # The saved average carries what the run recorded after building it: the statistics.
    config = json.loads((second / "model" / "config.json").read_text())
    assert set(config["observation_statistics"]) == {"toy-control"}
    w1, w2 = _weights(first / "state"), _weights(second / "state")
    average1, average2 = _weights(first / "model"), _weights(second / "model")
    floats = [k for k in w2 if w2[k].is_floating_point()]
    assert any(not torch.equal(w1[k], w2[k]) for k in floats)  # the step changed the weights
    for key in floats:
        torch.testing.assert_close(average1[key], w1[key])
        torch.testing.assert_close(average2[key], decay * w1[key] + (1 - decay) * w2[key])

    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    shutil.rmtree(resumed / "checkpoints" / second.name)
    (resumed / "checkpoints" / "latest").write_text(first.name)
    _train([*_args(small_recipe, resumed, reference_run.parent / "cache", 2, *extra),
            "--resume", "true"])  # fmt: skip
    again = _weights(resumed / "checkpoints" / second.name / "model")
    for key in floats:
        torch.testing.assert_close(again[key], average2[key])
