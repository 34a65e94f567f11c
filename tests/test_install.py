"""An install that works anywhere: `pip install .` (not editable) into a fresh virtual environment,
then the registry, a short training run and an evaluation from a folder outside the repository,
with generated data and runs under `$GATO_HOME`.

Nothing is downloaded: the fresh environment sees the project's environment's packages through a
`.pth` file (so torch is not installed again), pip runs with `--no-deps --no-index
--no-build-isolation`, and the package is built from a copy of the checkout (the build leaves
`build/` and `*.egg-info` beside its sources).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "cache", "runs", ".*_cache"
)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600):
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_non_editable_install_runs_from_anywhere(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=_SKIP)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The project's own packages, seen after the fresh environment's (which holds only gato).
    (Path(purelib) / "project_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GATO_HOME")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    _run([*install, "--no-build-isolation", str(source)], cwd=tmp_path, env=env)

    installed = Path(purelib) / "gato"
    assets = installed / "_assets"
    assert (assets / "data" / "tasks.toml").is_file()
    assert (assets / "data" / "mixtures" / "demo.toml").is_file()
    for name in ("gato_text_8k", "gato_text_32k"):
        assert (assets / "tokenizers" / f"{name}.model").is_file()
    assert not (assets / "tokenizers" / "__init__.py").exists()
    assert not (assets / "data" / "cache").exists()

    work = tmp_path / "elsewhere"
    work.mkdir()
    home = tmp_path / "home"
    env["GATO_HOME"] = str(home)
    where = _run([str(python), "-c", "import gato; print(gato.__file__)"], cwd=work, env=env)
    assert Path(where.stdout.strip()).parent == installed, "the checkout was imported"

    tasks = _run([str(python), "-m", "gato.data", "tasks", "--json"], cwd=work, env=env)
    registry = json.loads(tasks.stdout)
    ids = {row["id"] for row in registry} if isinstance(registry, list) else set(registry)
    assert {"gym-cartpole", "atari-pong"} <= ids

    # A recipe of one registry task with no data: the job collects it under the home.
    (work / "tiny.toml").write_text(
        'name = "tiny"\n[[sources]]\ntask = "gym-cartpole"\nweight = 1.0\n'
    )
    args = [
        "train", "--mixture", "tiny.toml", "--steps", "2", "--global_batch", "2",
        "--context", "128", "--build_episodes", "2", "--evaluate", "false",
        "--mixed_precision", "no",
    ]  # fmt: skip
    _run([str(venv / "bin" / "gato"), *args], cwd=work, env=env)
    assert (home / "data" / "cache" / "episodes" / "gym-cartpole").is_dir()
    assert any((home / "data" / "cache" / "tokens").iterdir())
    run = home / "runs" / "gato"
    assert (run / "checkpoints" / "latest").exists()
    assert not (work / "runs").exists() and sorted(p.name for p in work.iterdir()) == ["tiny.toml"]

    # The relative run folder is found under the home by evaluation too; --home beats the env.
    env.pop("GATO_HOME")
    control = [
        str(venv / "bin" / "gato-eval"), "--home", str(home), "control", "--checkpoint",
        "runs/gato", "--task", "gym-cartpole", "--episodes", "1", "--max_steps", "5",
    ]  # fmt: skip
    done = _run(control, cwd=work, env=env)
    assert "gym-cartpole" in done.stdout
