"""The run folder's format: manifests that catch corruption, the `latest` pointer, step folders,
and folders written by older code (tests/fixtures/, made by commit 45da254) that still load."""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from gato import checkpoints
from gato.checkpoints import (
    CheckpointError,
    checkpoint_steps,
    file_digests,
    latest_checkpoint,
    prune,
    publish,
    read_latest,
    read_manifest,
    step_name,
    step_of,
    verify_checkpoint,
    write_latest,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_RUN = FIXTURES / "old_run"


def make_folder(folder: Path) -> Path:
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.bin").write_bytes(bytes(range(256)) * 9)
    (folder / "model" / "config.json").write_text('{"width": 2}')
    (folder / "state").mkdir()
    (folder / "state" / "optimizer.bin").write_bytes(b"\x01" * 100)
    return folder


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------


def test_manifest_round_trip(tmp_path):
    folder = make_folder(tmp_path / "step-00000004")
    write_manifest(folder, {"step": 4, "config": {"mixture": "demo"}})
    manifest = verify_checkpoint(folder)
    assert manifest["format"] == checkpoints.FORMAT
    assert manifest["step"] == 4 and manifest["config"] == {"mixture": "demo"}
    assert sorted(manifest["files"]) == [
        "model/config.json",
        "model/weights.bin",
        "state/optimizer.bin",
    ]
    assert manifest == read_manifest(folder)
    # Written again, the manifest does not checksum itself.
    write_manifest(folder, {"step": 4})
    assert "MANIFEST.json" not in read_manifest(folder)["files"]
    assert file_digests(folder) == read_manifest(folder)["files"]
    with pytest.raises(ValueError, match="may not set"):
        write_manifest(folder, {"files": {}})


def test_verify_names_the_corrupt_or_missing_file(tmp_path):
    folder = make_folder(tmp_path / "step-00000004")
    write_manifest(folder, {"step": 4})
    weights = folder / "model" / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1  # one bit: same size, other bytes
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model/weights.bin does not match its checksum"):
        verify_checkpoint(folder)
    # A reader of the state alone is not stopped by the model's file.
    verify_checkpoint(folder, under="state/")
    weights.unlink()
    with pytest.raises(CheckpointError, match="incomplete: model/weights.bin is missing"):
        verify_checkpoint(folder)
    assert issubclass(CheckpointError, ValueError)


def test_a_missing_corrupt_or_foreign_manifest_is_an_error(tmp_path):
    folder = make_folder(tmp_path / "step-00000001")
    with pytest.raises(CheckpointError, match="has no MANIFEST.json"):
        verify_checkpoint(folder)
    (folder / "MANIFEST.json").write_text('{"format": 1, "files": ')
    with pytest.raises(CheckpointError, match="MANIFEST.json is corrupt"):
        verify_checkpoint(folder)
    (folder / "MANIFEST.json").write_text('{"format": 1}')
    with pytest.raises(CheckpointError, match="no files table"):
        read_manifest(folder)
    (folder / "MANIFEST.json").write_text('{"format": 7, "files": {}}')
    with pytest.raises(CheckpointError, match="format 7"):
        read_manifest(folder)


# ---------------------------------------------------------------------------------------------
# Step folders and the latest pointer
# ---------------------------------------------------------------------------------------------


def test_step_names_and_listing(tmp_path):
    assert step_name(42) == "step-00000042"
    assert step_name(42, digits=12) == "step-000000000042"
    assert step_of("step-00000042") == 42
    for other in ("latest", ".step-00000042.tmp", "step-", "step-4a", "model"):
        assert step_of(other) is None
    with pytest.raises(ValueError, match="non-negative"):
        step_name(-1)
    root = tmp_path / "checkpoints"
    assert checkpoint_steps(root) == []
    for step in (10, 9, 100):  # numeric order, not the names' order
        write_manifest(make_folder(root / step_name(step, digits=1)))
    (root / step_name(11)).mkdir()  # interrupted: no manifest
    (root / ".step-00000012.tmp").mkdir()
    (root / "step-00000013").write_text("a file, not a checkpoint")
    assert [s for s, _ in checkpoint_steps(root)] == [9, 10, 11, 100]
    complete = checkpoint_steps(root, complete=True)
    assert complete == [(9, root / "step-9"), (10, root / "step-10"), (100, root / "step-100")]


def test_latest_pointer(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    assert latest_checkpoint(tmp_path / "run") is None
    first = make_folder(root / step_name(1))
    write_latest(root, first.name)
    assert latest_checkpoint(tmp_path / "run") == first == read_latest(root)
    second = make_folder(root / step_name(2))
    write_latest(root, second.name)
    assert read_latest(root) == second
    with pytest.raises(CheckpointError, match="no such folder"):
        write_latest(root, step_name(3))
    assert read_latest(root) == second
    (root / "latest").write_text(step_name(99))
    with pytest.raises(CheckpointError, match="names checkpoint 'step-00000099'"):
        read_latest(root)
    (root / "latest").write_text("../elsewhere")
    with pytest.raises(CheckpointError, match="latest is corrupt"):
        read_latest(root)


def test_latest_pointer_update_is_atomic(tmp_path, monkeypatch):
    """A crash while `latest` is replaced leaves the old pointer whole, and no stray file."""
    root = tmp_path / "checkpoints"
    write_latest(root, make_folder(root / step_name(1)).name)
    make_folder(root / step_name(2))

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_latest(root, step_name(2))
    monkeypatch.undo()
    assert (root / "latest").read_text() == step_name(1)
    assert sorted(p.name for p in root.iterdir()) == ["latest", step_name(1), step_name(2)]


def test_publish_and_prune(tmp_path):
    root = tmp_path / "checkpoints"
    tmp = make_folder(root / ".step-00000003.tmp")
    with pytest.raises(CheckpointError, match="write the manifest before publishing"):
        publish(tmp, root / step_name(3))
    write_manifest(tmp, {"step": 3})
    stale = root / step_name(3)
    stale.mkdir()
    (stale / "leftover").write_text("from a crashed run")
    final = publish(tmp, stale)
    assert not tmp.exists() and not (final / "leftover").exists()
    verify_checkpoint(final)
    for step in (1, 2, 4):
        write_manifest(make_folder(root / step_name(step)))
    removed = prune(root, keep=2, current=step_name(3))
    assert sorted(p.name for p in removed) == [step_name(1), step_name(2)]
    assert [s for s, _ in checkpoint_steps(root)] == [3, 4]
    # The checkpoint just written survives even when it is not among the newest.
    prune(root, keep=0, current=step_name(3))
    assert [s for s, _ in checkpoint_steps(root)] == [3]


def test_the_format_module_imports_the_standard_library_and_gato_files_alone():
    """Actor processes and deployment read checkpoints: the format must not pull in torch.
    (Importing the `gato` package itself does; this checks the module's own imports.)"""
    imported = set()
    for path in (ROOT / "gato" / "checkpoints.py", ROOT / "gato" / "files.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names and name != "gato.files"
    }
    assert not outside, f"gato.checkpoints imports {sorted(outside)}"
    assert "gato.files" in imported


def test_policy_reexports_the_error():
    from gato.policy import CheckpointError as PolicyCheckpointError

    assert PolicyCheckpointError is CheckpointError


# ---------------------------------------------------------------------------------------------
# Folders written by older code
# ---------------------------------------------------------------------------------------------


def test_a_run_written_by_old_code_verifies_and_loads(tmp_path):
    from gato.policy import GatoPolicy, load_pretrained, resolve_model_dir
    from gato.tokens.tokenizer import ActionSpec

    step = OLD_RUN / "checkpoints" / "step-00000003"
    assert latest_checkpoint(OLD_RUN) == step
    manifest = verify_checkpoint(step)
    assert manifest["step"] == 3 and manifest["config"]["mixture"] == "demo"
    assert resolve_model_dir(OLD_RUN) == step / "model"
    model, tokenizer = load_pretrained(OLD_RUN)
    assert not model.training and model.config.hidden_size == 2
    assert tokenizer.text_model_path == step / "model" / "gato_text_32k.model"
    policy = GatoPolicy.from_pretrained(
        OLD_RUN, action_spec=ActionSpec("continuous", (3,)), prompt=None
    )
    rng = np.random.default_rng(0)
    for _ in range(3):
        action = policy.act({"continuous_observations": rng.normal(size=5).astype(np.float32)})
        assert action.shape == (3,) and np.all(np.abs(action) <= 1)
    # The old manifest still guards the old weights.
    copy = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, copy)
    weights = copy / "checkpoints" / "step-00000003" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors does not match its checksum"):
        load_pretrained(copy)


def test_a_token_cache_written_by_old_code_is_read_and_reused(tmp_path):
    import datasets

    sys.path.insert(0, str(FIXTURES))
    try:
        from make_old_fixtures import old_token_cache_rows
    finally:
        sys.path.remove(str(FIXTURES))
    from gato.data.sources import make_source
    from gato.data.token_cache import TokenCache, build_cache
    from gato.tokens.tokenizer import GatoTokenizer

    root = tmp_path / "cache"
    shutil.copytree(FIXTURES / "old_token_cache", root)
    (old,) = (root / "old-control").iterdir()
    dataset = datasets.Dataset.from_dict(old_token_cache_rows())
    source = make_source("control", "old-control", "old-control")
    tokenizer = GatoTokenizer()
    cache = build_cache(source, tokenizer, root=root, dataset=dataset)
    assert cache.path == old, "the old cache's fingerprint no longer matches: it would be rebuilt"
    assert json.loads((old / "meta.json").read_text())["num_episodes"] == 2
    fresh = list(source.tokenize(dataset, tokenizer))
    for index, expected in enumerate(fresh):
        got = TokenCache(old).episode(index)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.local_positions, expected.local_positions)
        np.testing.assert_array_equal(got.loss_mask, expected.loss_mask)
        np.testing.assert_array_equal(got.timestep_starts, expected.timestep_starts)
