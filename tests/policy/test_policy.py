"""GatoPolicy: cached decoding against recomputation, batching, sliding, action ranges, loading."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import count_departures, make_config
from references import ReferencePolicy

from gato.modeling.model import GatoModel
from gato.policy import (
    CheckpointError,
    GatoPolicy,
    PolicyConfig,
    demonstration_prompt,
    load_pretrained,
    resolve_model_dir,
)
from gato.schema import ActionSpec
from gato.tokens.batch import collate
from gato.tokens.tokenizer import GatoTokenizer

# Wider logits than the default init: greedy choices are far from ties, so float rounding
# differences between the cached and the recomputed paths cannot flip them.
SMALL = dict(max_position_embeddings=96, initializer_range=0.2)


def small_model(seed: int = 0, **overrides) -> GatoModel:
    torch.manual_seed(seed)
    return GatoModel(make_config(**{**SMALL, **overrides})).eval()


@pytest.fixture(scope="module")
def model() -> GatoModel:
    return small_model()


@pytest.fixture(scope="module")
def tokenizer() -> GatoTokenizer:
    return GatoTokenizer()


SPEC = ActionSpec("continuous", (3,))


def demo_prompt(tokenizer: GatoTokenizer, steps: int, seed: int = 0, width: int = 5):
    rng = np.random.default_rng(seed)
    return tokenizer.encode_episode(
        {"continuous": rng.normal(size=(steps, width))},
        {"continuous": rng.uniform(-1, 1, (steps, 3))},
    )


def observation(rng: np.random.Generator, width: int = 5, image: bool = False) -> dict:
    obs = {"continuous_observations": rng.normal(size=width).astype(np.float32)}
    if image:
        obs["image_observations"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return obs


# ---------------------------------------------------------------------------------------------
# A deliberately slow reference: the whole context through the model for every action token
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_cached_decoding_gives_the_actions_of_recomputing_the_context(model, tokenizer, static):
    prompt = demo_prompt(tokenizer, 3)
    config = PolicyConfig(slide="recompute", static_cache=static)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, config)
    reference = ReferencePolicy(model, tokenizer, SPEC, prompt)
    rng = np.random.default_rng(1)
    slides = 0
    for step in range(24):  # a 9-token step in a 96-token context: several slides
        if step == 15:  # a new episode in the middle
            policy.reset()
            reference.reset()
        obs = observation(rng)
        before = policy.rows[0].in_cache
        np.testing.assert_array_equal(policy.act(obs), reference.act(obs))
        slides += policy.rows[0].in_cache < before
        np.testing.assert_array_equal(policy.context().ids, reference.context().ids)
        assert policy.rows[0].in_cache + 1 <= model.config.max_position_embeddings
    assert slides >= 2


@pytest.mark.parametrize("history", [0, 2])
def test_a_short_history_decodes_as_the_full_forward_of_the_last_steps(model, tokenizer, history):
    prompt = demo_prompt(tokenizer, 2)
    config = PolicyConfig(slide="recompute", history_steps=history)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, config)
    reference = ReferencePolicy(model, tokenizer, SPEC, prompt, history_steps=history)
    shifted = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(history_steps=history))
    rng = np.random.default_rng(4)
    for step in range(12):
        if step == 8:
            for p in (policy, reference, shifted):
                p.reset()
        obs = observation(rng)
        np.testing.assert_array_equal(policy.act(obs), reference.act(obs))
        np.testing.assert_array_equal(policy.context().ids, reference.context().ids)
        # "shift" keeps as many steps (its kept keys saw the dropped ones, so its actions may
        # differ) and its cache holds exactly the positions of its tokens.
        shifted.act(obs)
        for p in (policy, shifted):
            assert len(p.rows[0].history) == min(step % 8 + 1, history + 1)
        row = shifted.rows[0]
        assert row.in_cache + 1 == len(shifted.context())


def test_bad_history_steps_are_refused():
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="history_steps must be None or an int >= 0"):
            PolicyConfig(history_steps=bad)


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_hidden_actions_decode_as_the_full_forward_of_the_hidden_context(tokenizer, static):
    # A model that learnt with action_dropout=1 reads every context action as ACTION_MASK_ID,
    # the action being decoded included (each token is fed back hidden).
    model = small_model(seed=3)
    model.config.hide_context_actions = True
    prompt = demo_prompt(tokenizer, 3)
    config = PolicyConfig(slide="recompute", static_cache=static)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, config)
    assert policy.config.hide_actions  # taken from the model's config
    reference = ReferencePolicy(model, tokenizer, SPEC, prompt, hide_actions=True)
    shown = ReferencePolicy(model, tokenizer, SPEC, prompt)
    rng = np.random.default_rng(2)
    observations = [observation(rng) for _ in range(16)]
    # Hiding changed what the model decided: the test can tell the two apart.
    assert count_departures(policy, reference, shown, observations, check_context=True)
    explicit = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(hide_actions=False))
    assert not explicit.config.hide_actions  # an explicit choice wins over the model's


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("variant", ["table+fourier", "fourier"])
def test_a_value_embedding_head_decodes_as_the_full_forward(tokenizer, static, variant):
    """With `value_head="embedding"` the policy's action logits come from the computed head
    (`GatoModel.output_weight`), as the full forward's do."""
    model = small_model(3, value_embedding=variant, value_head="embedding", value_loss="range")
    prompt = demo_prompt(tokenizer, 2)
    config = PolicyConfig(slide="recompute", static_cache=static)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, config)
    reference = ReferencePolicy(model, tokenizer, SPEC, prompt)
    rng = np.random.default_rng(4)
    for _ in range(12):
        obs = observation(rng)
        np.testing.assert_array_equal(policy.act(obs), reference.act(obs))


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_batched_rows_match_rows_decoded_alone(model, tokenizer, static):
    """Ragged rows (other prompts, other observation sizes, images, resets at other times,
    retired rows) give each row the actions it gets alone."""
    prompts = [demo_prompt(tokenizer, 2, seed=0), None, demo_prompt(tokenizer, 1, seed=5)]
    widths = [5, 3, 8]  # holes in the batched prefill
    config = PolicyConfig(slide="recompute", static_cache=static)
    batched = GatoPolicy(model, tokenizer, SPEC, None, config, num_envs=3)
    for i, p in enumerate(prompts):
        if p is not None:
            batched.reset_env(i, p)
    singles = [ReferencePolicy(model, tokenizer, SPEC, p) for p in prompts]
    rng = np.random.default_rng(2)
    rows = [0, 1, 2]
    for step in range(14):
        if step == 5:  # row 1's episode ends: its context restarts
            batched.reset_env(1, prompts[1])
            singles[1].reset()
        if step == 9:  # row 0's environment has no episode left
            batched.remove_envs([1, 2])
            rows = [1, 2]
        observations = [observation(rng, widths[r], image=step % 3 == 0) for r in rows]
        actions = batched.act_batch(observations)
        for k, r in enumerate(rows):
            np.testing.assert_array_equal(actions[k], singles[r].act(observations[k]))
            np.testing.assert_array_equal(batched.context(k).ids, singles[r].context().ids)


def test_shift_slide_keeps_positions_contiguous(model, tokenizer):
    """After a shift the kept keys sit at the positions they would have if the dropped steps had
    never been there: layer 0's keys (which depend only on the token and its position) equal
    those of the shortened context encoded from scratch."""
    prompt = demo_prompt(tokenizer, 2)
    policy = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(slide="shift"))
    rng = np.random.default_rng(3)
    shifted = 0
    for _ in range(20):
        before = len(policy.rows[0].history)
        policy.act(observation(rng))
        row = policy.rows[0]
        assert row.in_cache + 1 <= model.config.max_position_embeddings
        if len(row.history) <= before:  # a step was dropped
            shifted += 1
            fed = policy.context()
            fed = fed.slice(0, len(fed) - 1)  # the last action token waits to be fed
            fresh = policy._encode_context(fed)
            cache = policy.cache
            real = cache.mask[0, : cache.length]
            kept = cache.keys[0][0][:, : cache.length][:, real]  # (H, n, d)
            torch.testing.assert_close(kept, fresh.keys[0][0][:, : fresh.length])
    assert shifted >= 3


def test_batched_shift_rows_match_single_shift_policies(model, tokenizer):
    """Shift slides edit a ragged batch by masking and rotating in place, a single row by
    moving its columns: both must leave each row's context (and actions) the same."""
    widths = (5, 2)
    prompts = [demo_prompt(tokenizer, 2), demo_prompt(tokenizer, 3, seed=1)]
    batched = GatoPolicy(model, tokenizer, SPEC, None, num_envs=2)
    for i, p in enumerate(prompts):
        batched.reset_env(i, p)
    singles = [GatoPolicy(model, tokenizer, SPEC, p) for p in prompts]
    rng = np.random.default_rng(7)
    for _ in range(25):
        observations = [observation(rng, w) for w in widths]
        actions = batched.act_batch(observations)
        for i, single in enumerate(singles):
            np.testing.assert_array_equal(actions[i], single.act(observations[i]))
            np.testing.assert_array_equal(batched.context(i).ids, single.context().ids)
    assert len(singles[0].rows[0].history) < 25  # it slid


@pytest.mark.slow
def test_compiled_static_step_matches_the_dynamic_path(model, tokenizer):
    prompt = demo_prompt(tokenizer, 2)
    fast = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(static_cache=True, compile=True))
    plain = GatoPolicy(model, tokenizer, SPEC, prompt)
    rng = np.random.default_rng(8)
    for _ in range(12):
        obs = observation(rng)
        np.testing.assert_array_equal(fast.act(obs), plain.act(obs))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_match_the_eager_static_path(tokenizer):
    model = small_model().cuda()
    prompt = demo_prompt(tokenizer, 2)
    rng = np.random.default_rng(9)
    graphs = GatoPolicy(
        model, tokenizer, SPEC, prompt, PolicyConfig(static_cache=True, cuda_graphs=True), 2
    )
    eager = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(static_cache=True), 2)
    for step in range(20):
        observations = [observation(rng, image=step % 4 == 0) for _ in range(2)]
        for a, b in zip(graphs.act_batch(observations), eager.act_batch(observations), strict=True):
            np.testing.assert_array_equal(a, b)
        if step == 10:
            graphs.reset_env(1)
            eager.reset_env(1)


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_actions_respect_the_action_space(tokenizer, kind, temperature):
    """A model that prefers invalid ids (text, other ranges, discrete ids past num_values) still
    acts inside the action space: every action token is masked to its range."""
    model = small_model()
    spec = ActionSpec("discrete", (), num_values=3) if kind == "discrete" else SPEC
    lo, hi = spec.token_range()
    with torch.no_grad():
        # A constant final hidden state b: the logits are W @ b whatever the input.
        direction = torch.randn(model.config.hidden_size)
        model.norm.weight.zero_()
        model.norm.bias.copy_(direction)
        weight = model.lm_head.weight
        weight.copy_(10 * direction)  # every id scores high ...
        weight[lo:hi] = -direction  # ... except the valid ones
    policy = GatoPolicy(model, tokenizer, spec, None, PolicyConfig(temperature=temperature))
    rng = np.random.default_rng(0)
    for _ in range(6):
        action = policy.act(observation(rng))
        if kind == "discrete":
            assert isinstance(action, int) and 0 <= action < 3
        else:
            assert action.shape == (3,) and np.all(np.abs(action) <= 1)
    action_ids = np.concatenate([s.ids[-spec.num_tokens :] for s in policy.rows[0].history])
    assert np.all((action_ids >= lo) & (action_ids < hi))


def test_sampling_is_seeded(model, tokenizer):
    rng = np.random.default_rng(0)
    observations = [observation(rng) for _ in range(4)]

    def run(seed):
        policy = GatoPolicy(model, tokenizer, SPEC, None, PolicyConfig(temperature=1.0, seed=seed))
        return np.stack([policy.act(o) for o in observations])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_kv_cache_compaction_keeps_every_row(model, tokenizer):
    widths = (5, 2, 9)
    prompt = demo_prompt(tokenizer, 1)
    batched = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(slide="recompute"), 3)
    singles = [ReferencePolicy(model, tokenizer, SPEC, prompt) for _ in widths]
    rng = np.random.default_rng(4)
    for step in range(6):
        observations = [observation(rng, w) for w in widths]
        if step == 3:
            cache = batched.cache
            counts = cache.real_counts().tolist()
            assert not cache.dense  # holes from the ragged prefills
            cache.compact()
            assert cache.length == max(counts)
            assert cache.real_counts().tolist() == counts
        actions = batched.act_batch(observations)
        for i, single in enumerate(singles):
            np.testing.assert_array_equal(actions[i], single.act(observations[i]))


def test_bad_inputs_raise_clear_errors(model, tokenizer):
    with pytest.raises(ValueError, match="temperature"):
        PolicyConfig(temperature=-1)
    with pytest.raises(ValueError, match="static_cache"):
        PolicyConfig(cuda_graphs=True)
    with pytest.raises(ValueError, match="slide"):
        PolicyConfig(slide="drop")
    long_prompt = demo_prompt(tokenizer, 12)  # 12 x 9 tokens > 96
    with pytest.raises(ValueError, match="prompt of"):
        GatoPolicy(model, tokenizer, SPEC, long_prompt)
    policy = GatoPolicy(model, tokenizer, SPEC, None, num_envs=2)
    with pytest.raises(ValueError, match="act_batch"):
        policy.act(observation(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="2 environments"):
        policy.act_batch([observation(np.random.default_rng(0))])
    with pytest.raises(ValueError, match="observation type"):
        policy.act_batch([{"bogus": np.zeros(3)}] * 2)
    with pytest.raises(ValueError, match="max_local_positions"):
        policy.act_batch([observation(np.random.default_rng(0), width=120)] * 2)
    crowded = GatoPolicy(model, tokenizer, SPEC, demo_prompt(tokenizer, 9))  # 81 tokens
    with pytest.raises(ValueError, match="leave no room"):
        crowded.act(observation(np.random.default_rng(0), width=20))


# ---------------------------------------------------------------------------------------------
# Demonstration prompts
# ---------------------------------------------------------------------------------------------


def fake_task(tmp_path: Path, returns: list[float], length: int = 6):
    from gato.tasks.registry import FieldSpec, Scores, TaskSpec

    rng = np.random.default_rng(0)
    rows = {
        "continuous_observations": [
            np.full((length, 4), float(e), np.float32) for e in range(len(returns))
        ],
        "continuous_actions": [rng.uniform(-1, 1, (length, 2)).astype(np.float32) for _ in returns],
        "rewards": [np.full(length, r / length, np.float32) for r in returns],
    }
    path = tmp_path / "episodes"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(path))
    return TaskSpec(
        id="fake-task",
        suite="gym",
        env={},
        observation={"continuous_observations": FieldSpec((4,), "float32")},
        action=ActionSpec("continuous", (2,)),
        episode_limit=100,
        scores=Scores(expert=10.0, random=0.0),
        dataset=str(path),
    )


def test_demonstration_prompt_takes_the_best_episode_s_first_steps(tmp_path, tokenizer):
    task = fake_task(tmp_path, returns=[1.0, 9.0, 4.0])
    step_tokens = 4 + 1 + 2
    prompt = demonstration_prompt(task, tokenizer, budget=3 * step_tokens + 2)
    assert prompt is not None and prompt.num_timesteps == 3 and len(prompt) == 3 * step_tokens
    best = tokenizer.encode_continuous(np.ones(4), mu_law=True)  # episode 1 observes 1.0
    np.testing.assert_array_equal(prompt.ids[:4], best)
    end = demonstration_prompt(task, tokenizer, budget=2 * step_tokens, which="end")
    assert end.num_timesteps == 2
    assert demonstration_prompt(task, tokenizer, budget=0) is None


def test_episode_steps_decode_only_the_steps_asked_for(tmp_path):
    """Frame stacks stored as PNG come back exactly, for the first or last steps only."""
    from gato.data.episodes import encode_png, episode_features
    from gato.policy.prompts import episode_steps

    rng = np.random.default_rng(0)
    lengths = [5, 7]
    frames = [rng.integers(0, 256, (n, 24, 16, 4), dtype=np.uint8) for n in lengths]
    rows = {
        "image_observations": [[{"bytes": encode_png(f), "path": None} for f in e] for e in frames],
        "discrete_actions": [rng.integers(0, 6, n) for n in lengths],
        "rewards": [np.ones(n, np.float32) for n in lengths],
    }
    features = episode_features(rows)
    dataset = datasets.Dataset.from_dict(rows, features=features).with_format("numpy")
    first = episode_steps(dataset, 1, 3)
    np.testing.assert_array_equal(first["image_observations"], frames[1][:3])
    np.testing.assert_array_equal(first["discrete_actions"], rows["discrete_actions"][1][:3])
    last = episode_steps(dataset, 1, 2, from_end=True)
    np.testing.assert_array_equal(last["image_observations"], frames[1][-2:])
    whole = dataset[1]
    np.testing.assert_array_equal(
        episode_steps(dataset, 1, 99)["image_observations"], whole["image_observations"]
    )


def test_no_dataset_means_no_prompt_with_a_warning(tmp_path, tokenizer):
    task = fake_task(tmp_path, returns=[1.0])
    from dataclasses import replace

    missing = replace(task, dataset=str(tmp_path / "nothing"))
    with pytest.warns(UserWarning, match="no episodes"):
        assert demonstration_prompt(missing, tokenizer, 50) is None


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def save_run(tmp_path: Path, model: GatoModel) -> Path:
    """A run folder laid out as gato.training.trainer writes it (model, manifest, latest
    pointer)."""
    import hashlib

    run = tmp_path / "run"
    step = run / "checkpoints" / "step-00000007"
    model.save_pretrained(step / "model")
    files = {
        str(p.relative_to(step)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(step.rglob("*"))
        if p.is_file()
    }
    manifest = {"format": 1, "files": files, "step": 7, "config": {"mixture": "demo"}}
    (step / "MANIFEST.json").write_text(json.dumps(manifest))
    (run / "checkpoints" / "latest").write_text("step-00000007")
    return run


def test_checkpoint_folders_resolve_and_load(tmp_path, model):
    run = save_run(tmp_path, model)
    folder = run / "checkpoints" / "step-00000007" / "model"
    for path in (run, run / "checkpoints", folder.parent, folder):
        assert resolve_model_dir(path) == folder
    loaded, tokenizer = load_pretrained(run)
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    policy = GatoPolicy.from_pretrained(run, action_spec=SPEC, prompt=None)
    action = policy.act(observation(np.random.default_rng(0)))
    assert action.shape == (3,)


def test_bad_checkpoints_raise_errors_that_name_the_problem(tmp_path, model):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a model folder"):
        load_pretrained(tmp_path / "empty")
    run = save_run(tmp_path, model)
    folder = run / "checkpoints" / "step-00000007" / "model"
    weights = next(folder.glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        load_pretrained(run)
    (folder.parent / "MANIFEST.json").unlink()  # no manifest: the loader itself must notice
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_pretrained(run)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="not a gato model"):
        load_pretrained(folder)
    (run / "checkpoints" / "latest").write_text("step-00000099")
    with pytest.raises(CheckpointError, match="step-00000099"):
        load_pretrained(run)


# ---------------------------------------------------------------------------------------------
# The flattened forward of the eager path against the model's own
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cached_forward_matches_the_model_forward(tokenizer, dtype):
    from gato.inference.cache import KVCache
    from gato.inference.eager import CachedForward

    model = small_model(3).to(dtype)
    rng = np.random.default_rng(0)
    rows = [
        tokenizer.encode_timestep(observation(rng, image=True)),
        tokenizer.encode_timestep(observation(rng, width=2)),
    ]
    batch = collate(rows, padding_side="left")  # ragged rows: a masked hole in row 1
    ours, theirs = KVCache.for_model(model, 2, 64), KVCache.for_model(model, 2, 64)
    fast = CachedForward(model)
    step_ids = [batch.input_ids, torch.tensor([[33500], [33600]]), torch.tensor([[33700], [1]])]
    full_mask = batch.attention_mask.bool()
    for i, ids in enumerate(step_ids):
        new_mask = full_mask if i == 0 else torch.ones(2, 1, dtype=torch.bool)
        extra = {}
        if i == 0:
            extra = dict(
                local_positions=batch.local_positions,
                patches=batch.patches,
                patch_positions=batch.patch_positions,
            )
        for cache in (ours, theirs):
            cache.open_columns(new_mask)
        with torch.no_grad():
            got = fast(ours, ids, **extra)
            want = model(
                input_ids=ids,
                attention_mask=theirs.mask[:, : theirs.length + ids.shape[1]].long(),
                past_key_values=theirs,
                use_cache=True,
                return_logits=False,
                **extra,
            ).last_hidden_state[:, -1]
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)
        for cache in (ours, theirs):
            cache.advance(ids.shape[1])
        torch.testing.assert_close(ours.keys[-1], theirs.keys[-1], atol=tol, rtol=tol)
    assert not ours.dense  # the ragged path (masks, per-row positions) was the one tested


def test_cached_forward_on_a_dense_cache_matches_the_model_forward(tokenizer):
    from gato.inference.cache import KVCache
    from gato.inference.eager import CachedForward

    model = small_model(4)
    prompt = demo_prompt(tokenizer, 4)
    ours, theirs = KVCache.for_model(model, 1, 96), KVCache.for_model(model, 1, 96)
    fast = CachedForward(model)
    batch = collate([prompt])
    for ids, extra in [
        (batch.input_ids, dict(local_positions=batch.local_positions)),
        (torch.tensor([[33111]]), {}),
        (torch.tensor([[33222, 33001, 34048]]), {}),
    ]:
        for cache in (ours, theirs):
            cache.open_columns(torch.ones(ids.shape, dtype=torch.bool))
        with torch.no_grad():
            got = fast(ours, ids, **extra)
            want = model(
                input_ids=ids, past_key_values=theirs, use_cache=True, return_logits=False, **extra
            ).last_hidden_state[:, -1]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        for cache in (ours, theirs):
            cache.advance(ids.shape[1])
    assert ours.dense


def _greedy_reference(fast, cache, ids, head, offset, count, **extra):
    """One `CachedForward` call per token: the observation, then each picked token but the last
    fed back."""
    tokens = []
    for j in range(count):
        step = ids if j == 0 else tokens[-1][:, None]
        cache.open_columns(torch.ones(step.shape, dtype=torch.bool))
        hidden = fast(cache, step, **(extra if j == 0 else {}))
        cache.advance(step.shape[1])
        tokens.append((hidden @ head.T).argmax(-1) + offset)
    return torch.stack(tokens, 1)


@pytest.mark.parametrize("functional", [False, True])
def test_greedy_action_in_one_call_matches_token_by_token(tokenizer, functional):
    """`greedy_tokens` (eager, and the cache-reading form that gets compiled, run uncompiled)
    picks the tokens and leaves the keys that one forward per token does."""
    from gato.inference.cache import KVCache
    from gato.inference.eager import CachedForward

    model = small_model(5)
    fast = CachedForward(model)
    if functional:  # what compile=True wraps, without the compilation
        fast.compiled = fast._greedy_split
    weight = model.lm_head.weight
    head = weight[33000:33400]
    ours, theirs = KVCache.for_model(model, 1, 128), KVCache.for_model(model, 1, 128)
    rng = np.random.default_rng(5)
    for step in range(4):  # first on an empty cache (causal prefill), then on top of it
        obs = collate([tokenizer.encode_timestep(observation(rng, image=step == 2))])
        extra = dict(
            local_positions=obs.local_positions,
            patches=obs.patches,
            patch_positions=obs.patch_positions,
        )
        with torch.no_grad():
            want = _greedy_reference(fast, theirs, obs.input_ids, head, 33000, 3, **extra)
            fed = obs.input_ids.shape[1] + 2
            ours.open_columns(torch.ones(1, fed, dtype=torch.bool))
            got = fast.greedy_tokens(ours, obs.input_ids, weight, 33000, 33400, 3, **extra)
            ours.advance(fed)
        torch.testing.assert_close(got, want)
        assert ours.length == theirs.length
        n = ours.length
        for mine, want_kv in zip(ours.keys + ours.values, theirs.keys + theirs.values, strict=True):
            torch.testing.assert_close(mine[:, :, :n], want_kv[:, :, :n])


def test_greedy_action_needs_a_dense_cache_with_room(tokenizer):
    from gato.inference.cache import KVCache
    from gato.inference.eager import CachedForward

    model = small_model(5)
    fast = CachedForward(model)
    head = model.lm_head.weight
    cache = KVCache.for_model(model, 2, 16)
    cache.open_columns(torch.tensor([[True, False], [True, True]]))
    cache.advance(2)
    with pytest.raises(RuntimeError, match="dense"):
        fast.greedy_tokens(cache, torch.tensor([[33001], [33002]]), head, 33000, 33400, 2)
    small = KVCache.for_model(model, 1, 4)
    with pytest.raises(RuntimeError, match="columns"):
        fast.greedy_tokens(small, torch.tensor([[33001, 33002, 33003]]), head, 33000, 33400, 3)


@pytest.mark.slow
def test_compiled_dynamic_path_matches_the_eager_one(model, tokenizer):
    """`PolicyConfig(compile=True)` without a static cache: one compiled graph per greedy action
    over every cache length (slides included), the same actions as the eager path."""
    prompt = demo_prompt(tokenizer, 2)
    fast = GatoPolicy(model, tokenizer, SPEC, prompt, PolicyConfig(compile=True))
    plain = GatoPolicy(model, tokenizer, SPEC, prompt)
    rng = np.random.default_rng(8)
    for _ in range(20):
        obs = observation(rng)
        np.testing.assert_array_equal(fast.act(obs), plain.act(obs))
    assert len(plain.rows[0].history) < 20  # it slid
    np.testing.assert_array_equal(fast.context().ids, plain.context().ids)


@pytest.mark.parametrize("flash", [False, True])
@pytest.mark.parametrize("past", [0, 7])
def test_split_attention_equals_one_softmax_over_all_keys(flash, past):
    """Attention over cached keys and new ones without concatenating them: against SDPA over
    the concatenation with the mask written out (every cached key, causal among the new)."""
    from gato.modeling.layers import attend_split

    g = torch.Generator().manual_seed(past)
    b, h, n, d = 2, 3, 5, 8
    k_old, v_old = torch.randn(2, b, h, past, d, generator=g).unbind(0)
    k_new, v_new, q = torch.randn(3, b, h, n, d, generator=g).unbind(0)
    keys, values = torch.cat((k_old, k_new), 2), torch.cat((v_old, v_new), 2)
    sees = torch.cat((torch.ones(n, past, dtype=torch.bool), torch.ones(n, n).tril().bool()), 1)
    want = F.scaled_dot_product_attention(q, keys, values, attn_mask=sees)
    got = attend_split(q, k_old, v_old, k_new, v_new, causal=True, flash=flash)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # One query (a decoding step) sees every key.
    one = F.scaled_dot_product_attention(q[:, :, -1:], keys, values)
    got = attend_split(q[:, :, -1:], k_old, v_old, k_new, v_new, causal=False, flash=flash)
    torch.testing.assert_close(got, one, atol=1e-5, rtol=1e-5)
