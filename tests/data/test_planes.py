"""Patches stored as distinct planes: exact round trips, sharing, and caches of frame stacks."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from helpers import shifting_frame_stacks, write_atari_dataset

from gato.data import planes as planes_module
from gato.data.planes import gather_patches, unique_planes
from gato.data.sources import ControlSource, make_source
from gato.data.token_cache import build_cache, build_streamed_cache
from gato.tokens.tokenizer import GatoTokenizer


def test_round_trip_of_random_and_repeated_planes():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (40, 4, 16, 16), dtype=np.uint8)
    patches[5:10] = patches[0]  # whole patches repeated
    patches[20, 2] = patches[3, 1]  # one channel repeated elsewhere
    planes, index = unique_planes(patches)
    np.testing.assert_array_equal(gather_patches(planes, index), patches)
    assert index.shape == (40, 4) and index.dtype == np.uint32
    assert len(planes) == 40 * 4 - 5 * 4 - 1
    # Planes keep the order they first appear in.
    np.testing.assert_array_equal(planes[0], patches[0, 0])
    assert index[20, 2] == index[3, 1]


def test_a_uniform_field_is_one_plane_and_odd_sizes_round_trip():
    blank = np.zeros((25, 4, 16, 16), np.uint8)
    planes, index = unique_planes(blank)
    assert len(planes) == 1 and not index.any()
    odd = np.random.default_rng(1).integers(0, 256, (30, 3, 5, 5), dtype=np.uint8)  # 25 bytes
    odd[15:] = odd[:15]
    planes, index = unique_planes(odd)
    np.testing.assert_array_equal(gather_patches(planes, index), odd)
    assert len(planes) == 45
    empty_planes, empty_index = unique_planes(np.zeros((0, 4, 16, 16), np.uint8))
    assert empty_planes.shape == (0, 16, 16) and empty_index.shape == (0, 4)
    assert gather_patches(empty_planes, empty_index).shape == (0, 4, 16, 16)


def test_planes_that_share_a_hash_stay_apart(monkeypatch):
    # Every plane hashing alike: the bytes decide, so nothing is merged that differs.
    monkeypatch.setattr(planes_module, "_plane_hashes", lambda flat: np.zeros(len(flat), np.uint64))
    rng = np.random.default_rng(2)
    patches = rng.integers(0, 2, (12, 4, 4, 4), dtype=np.uint8)
    patches[6:] = patches[:6]
    planes, index = unique_planes(patches)
    np.testing.assert_array_equal(gather_patches(planes, index), patches)
    assert len(planes) <= 12 * 4


def test_a_frame_stack_stores_each_frame_about_once():
    tok = GatoTokenizer()
    stacks = shifting_frame_stacks(30)
    sequence_patches = np.concatenate([_patches(tok, stack) for stack in stacks])
    planes, index = unique_planes(sequence_patches)
    np.testing.assert_array_equal(gather_patches(planes, index), sequence_patches)
    # 30 stacks of 25 patches and 4 channels; each new frame brings at most its dot's patches
    # (up to four) and the background's two kinds of plane (the border row and the field).
    assert len(planes) <= 2 + 25 + 4 * 30 < 30 * 25 * 4 / 20


def _patches(tok: GatoTokenizer, stack: np.ndarray) -> np.ndarray:
    seq = tok.encode_jat_episode(
        {"image_observations": stack[None], "discrete_actions": np.zeros(1, np.int64)}
    )
    return seq.patches


def test_bad_patches_are_refused():
    for bad, what in [
        (np.zeros((3, 4, 16, 16), np.float32), "float32"),
        (np.zeros((4, 16, 16), np.uint8), r"uint8 \(4, 16, 16\)"),
        ([[1]], "list"),
    ]:
        with pytest.raises(ValueError, match=f"uint8 \\(N, C, S, S\\), got {what}"):
            unique_planes(bad)


def test_a_cache_of_frame_stacks_reads_back_what_the_tokenizer_made(tmp_path):
    tok = GatoTokenizer()
    path = write_atari_dataset(tmp_path / "pong")
    source = make_source("control", "atari-pong", str(path))
    cache = build_cache(source, tok, tmp_path / "tokens")
    rows = source.load().with_format("numpy")
    for i in range(cache.num_episodes):
        expected = tok.encode_jat_episode(rows[i])
        got = cache.episode(i)
        np.testing.assert_array_equal(got.patches, expected.patches)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(cache.read_steps(i, 3, 7).patches, expected.patches[75:175])
    together = cache.read_episodes(np.array([2, 0]))
    np.testing.assert_array_equal(
        together.patches,
        np.concatenate([cache.episode(2).patches, cache.episode(0).patches]),
    )
    whole_bytes = cache.num_patches * 4 * 16 * 16
    planes_bytes = (cache.path / "planes.bin").stat().st_size
    assert planes_bytes == cache.meta["num_planes"] * 256
    assert planes_bytes * 8 < whole_bytes


def test_a_streamed_cache_counts_the_bytes_it_writes(tmp_path):
    tok = GatoTokenizer()
    path = write_atari_dataset(tmp_path / "pong", episodes=4)
    datasets.load_from_disk(str(path))["train"].to_parquet(str(tmp_path / "shard.parquet"))
    source = ControlSource("atari-pong", str(tmp_path / "shard.parquet"))
    whole = build_streamed_cache(source, tok, tmp_path / "all", budget_bytes=10**8)
    assert whole.meta["streamed"]["complete"] and whole.num_episodes == 4
    used = whole.meta["streamed"]["bytes"]
    assert used == sum(f.stat().st_size for f in whole.path.glob("*.bin"))
    # A budget between three and four episodes' bytes keeps three.
    part = build_streamed_cache(source, tok, tmp_path / "part", budget_bytes=used - 1)
    assert not part.meta["streamed"]["complete"] and part.num_episodes == 3
    for i in range(3):
        np.testing.assert_array_equal(part.episode(i).patches, whole.episode(i).patches)


def test_a_cache_of_whole_patches_written_before_planes_is_read_as_it_is(tmp_path):
    import json
    import shutil

    from gato.data.token_cache import TokenCache

    tok = GatoTokenizer()
    path = write_atari_dataset(tmp_path / "pong", episodes=2, steps=6)
    cache = build_cache(make_source("control", "atari-pong", str(path)), tok, tmp_path / "t")
    assert cache.patch_layout == "planes"
    # The same cache in the layout of caches written before planes: patches.bin whole, no key.
    old = tmp_path / "old"
    shutil.copytree(cache.path, old)
    whole = gather_patches(cache.maps["planes"], cache.maps["patch_planes"])
    (old / "patches.bin").write_bytes(whole.tobytes())
    (old / "planes.bin").unlink()
    (old / "patch_planes.bin").unlink()
    meta = json.loads((old / "meta.json").read_text())
    del meta["patch_layout"], meta["num_planes"]
    (old / "meta.json").write_text(json.dumps(meta))
    before = TokenCache(old)
    assert before.patch_layout == "whole"
    for i in range(2):
        np.testing.assert_array_equal(before.episode(i).patches, cache.episode(i).patches)
        np.testing.assert_array_equal(before.read_steps(i, 1, 4).patches,
                                      cache.read_steps(i, 1, 4).patches)  # fmt: skip
    np.testing.assert_array_equal(before.read_episodes(np.array([1, 0])).patches,
                                  cache.read_episodes(np.array([1, 0])).patches)  # fmt: skip
    windows = np.array([1, 0, 1]), np.array([2, 0, 5]), np.array([3, 1, 6])
    np.testing.assert_array_equal(before.read_windows(*windows).patches,
                                  cache.read_windows(*windows).patches)  # fmt: skip
    meta["patch_layout"] = "zipped"
    (old / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown patch layout 'zipped'"):
        TokenCache(old)
