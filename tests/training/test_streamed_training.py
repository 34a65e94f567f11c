"""`--streaming`: the trainer reads local Parquet shards (JAT's hub layout) as a stream, saves
the stream's position with every checkpoint, and `--resume` continues the stream where it
stopped; sources that cannot stream are refused by name."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from jat_fixtures import write_config  # noqa: E402

from gato.checkpoints import write_latest  # noqa: E402
from gato.training.config import TrainConfig  # noqa: E402
from gato.training.trainer import main  # noqa: E402

STEPS = 4


def _rows(count: int = 10) -> dict[str, list]:
    """Hopper episodes (JAT's v4 widths) of 2 to 5 steps."""
    rng = np.random.default_rng(0)
    lengths = [2 + k % 4 for k in range(count)]
    return {
        "continuous_observations": [rng.normal(size=(t, 11)).tolist() for t in lengths],
        "continuous_actions": [rng.uniform(-1, 1, (t, 3)).tolist() for t in lengths],
        "rewards": [[1.0] * t for t in lengths],
    }


pytestmark = pytest.mark.usefixtures("quiet_datasets")


@pytest.fixture(scope="module")
def stream_recipe(tmp_path_factory) -> Path:
    """A recipe over a local mirror of JAT's hopper config in 3 Parquet shards."""
    root = tmp_path_factory.mktemp("shards")
    write_config(root / "jat", "mujoco-hopper", "uploaded", splits=("train",), shards=3,
                 rows=_rows())  # fmt: skip
    recipe = root / "stream.toml"
    recipe.write_text(
        'name = "stream"\n[[sources]]\ntask = "gym-hopper"\nweight = 1.0\n'
        f'path = "{root / "jat"}"\n'
    )
    return recipe


def _args(recipe: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--preset", "tiny", "--mixture", str(recipe), "--steps", str(STEPS),
        "--global_batch", "2", "--context", "64", "--output_dir", str(out),
        "--log_every", "1", "--checkpoint_every", "1", "--keep_checkpoints", "10",
        "--seed", "0", "--learning_rate", "1e-3", "--warmup_steps", "1",
        "--mixed_precision", "no", "--report_to", "none", "--streaming", "true",
        "--control_window_steps", "0", "--encoding", "grouped", *extra,
    ]  # fmt: skip


def _losses(run: Path) -> dict[int, float]:
    losses = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        losses[record["step"]] = record["loss"]
    return losses


def _stream_state(run: Path, step: int) -> dict:
    return json.loads(
        (run / "checkpoints" / f"step-{step:08d}" / "state" / "data.json").read_text()
    )


def _where(state: dict) -> list:
    """Where each part's streams stand: (batches made, then per source the episode read up to,
    windows of it handed out, pass). `datasets`' own record of a position is left out: a
    restored stream writes the same position differently."""
    return [
        (
            part["index"],
            [(s["stream"]["position"], s["emitted"], s["epoch"]) for s in part["sources"]],
        )
        for _, part in sorted(state["parts"].items())
    ]


def test_a_resumed_stream_continues_where_it_stopped(stream_recipe, tmp_path):
    run = tmp_path / "run"
    logs = main(_args(stream_recipe, run))
    assert [log.step for log in logs] == list(range(1, STEPS + 1))
    straight = _losses(run)
    states = {step: _stream_state(run, step) for step in range(1, STEPS + 1)}
    assert all(s["step"] == step for step, s in states.items())
    # The stream only moves forward (pass, episode, window): no window is read twice.
    reads = [_where(s)[0][1][0] for s in states.values()]
    reads = [(epoch, position, emitted) for position, emitted, epoch in reads]
    assert all(a < b for a, b in zip(reads, reads[1:], strict=False)), reads
    assert json.loads((run / "run.json").read_text())["identity"]["streaming"] is True

    # As if the run had been killed after step 2: later checkpoints and metrics gone.
    for step in range(3, STEPS + 1):
        shutil.rmtree(run / "checkpoints" / f"step-{step:08d}")
    write_latest(run / "checkpoints", "step-00000002")
    lines = (run / "metrics.jsonl").read_text().splitlines()[:2]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    resumed = main(_args(stream_recipe, run, "--resume", "true"))
    assert [log.step for log in resumed] == [3, 4]
    # The restored position was the saved one, and the stream went on from it: the same
    # positions, and the same batches (hence losses) as the uninterrupted run.
    for step in (3, 4):
        assert _where(_stream_state(run, step)) == _where(states[step]), step
        assert _losses(run)[step] == pytest.approx(straight[step], rel=1e-5, abs=1e-6), step


def test_stream_workers_train_and_resume_needs_the_same_split(stream_recipe, tmp_path):
    run = tmp_path / "run"
    args = _args(stream_recipe, run, "--stream_workers", "1")
    args[args.index("--steps") + 1] = "2"
    logs = main(args)
    assert len(logs) == 2 and all(np.isfinite(log.loss) for log in logs)
    with pytest.raises(ValueError, match="holds a different run"):
        main(_args(stream_recipe, run, "--stream_workers", "2", "--resume", "true"))
    with pytest.raises(ValueError, match="holds a different run"):
        without = [a for a in _args(stream_recipe, run, "--resume", "true") if a != "--streaming"]
        without.remove("true")  # the value of --streaming (the first "true")
        main(without)


def test_a_source_that_cannot_stream_is_refused_by_name(stream_recipe, small_recipe, tmp_path):
    # small_recipe: a control source, captions and text; captions and text cannot stream.
    with pytest.raises(ValueError, match=r"'captions' \(captions\), 'text' \(text\) cannot be "
                       r"streamed"):  # fmt: skip
        main(_args(small_recipe, tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(ValueError, match="stream_workers=2 applies to --streaming only"):
        TrainConfig(stream_workers=2)
    with pytest.raises(ValueError, match="stream_workers must be >= 0"):
        TrainConfig(streaming=True, stream_workers=-1)


@pytest.mark.slow
def test_two_processes_read_the_stream_as_one(stream_recipe, tmp_path):
    """Each process reads the whole stream and keeps its rows: the same global batches, so the
    same losses (within the rounding of an all-reduce) as one process."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    launchers = {
        "one": [sys.executable],
        "two": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2"],
    }  # fmt: skip
    for name, launcher in launchers.items():
        args = [*_args(stream_recipe, tmp_path / name), "--build_data", "false"]
        command = [*launcher, str(root / "train.py"), *args, "--evaluate", "false"]
        out = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(two) == list(range(1, STEPS + 1))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4), step
