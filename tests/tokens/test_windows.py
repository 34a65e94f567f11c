"""Windows at timestep boundaries, prompts, truncation: index functions against slow references."""

from __future__ import annotations

import numpy as np
import pytest
from references import prompted_window, sample_prompt, sample_window, slow_windows

from gato.tokens import windows as seq
from gato.tokens.batch import TokenSequence
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import PATCH_ID, SEPARATOR_ID


def bounds_of(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@pytest.fixture(scope="module")
def tok() -> GatoTokenizer:
    return GatoTokenizer()


def episode(tok: GatoTokenizer, steps: int, index: int = 0, images: bool = False) -> TokenSequence:
    """Observation [index, t] (and a tiny image) then one discrete action per step."""
    obs = {"discrete": np.stack([np.full(steps, index), np.arange(steps)], axis=1)}
    if images:
        obs["image"] = np.random.default_rng(index).integers(0, 255, (steps, 16, 32, 3), np.uint8)
    return tok.encode_episode(obs, {"discrete": np.arange(steps) % 5})


def test_step_bounds():
    np.testing.assert_array_equal(seq.step_bounds(np.array([0, 3, 5]), 9), [0, 3, 5, 9])
    np.testing.assert_array_equal(seq.step_bounds(np.zeros(0, np.int64), 4), [0, 4])


@pytest.mark.parametrize("lengths", [[3, 3, 3, 3, 3], [1, 5, 2, 2, 7, 1, 1], [4]])
@pytest.mark.parametrize("budget", [4, 7, 9, 30])
def test_fit_and_latest_start_match_enumeration(lengths, budget):
    bounds = bounds_of(lengths)
    reference = slow_windows(lengths, budget)
    for first, stop in reference:
        assert seq.fit_stop(bounds, first, budget) == stop
    full = [f for f, s in reference if s == len(lengths)]
    assert seq.latest_full_start(bounds, budget) == (full[0] if full else len(lengths))


def test_random_window_never_cuts_and_is_uniform():
    lengths = [3, 3, 4, 3, 3, 3, 5, 3, 3, 3]
    bounds, budget = bounds_of(lengths), 10
    rng = np.random.default_rng(0)
    firsts = []
    for _ in range(4000):
        first, stop = seq.random_window(bounds, budget, rng)
        assert stop > first and bounds[stop] - bounds[first] <= budget
        # Maximal: the next timestep would not fit.
        assert stop == len(lengths) or bounds[stop + 1] - bounds[first] > budget
        firsts.append(first)
    last = seq.latest_full_start(bounds, budget)
    counts = np.bincount(firsts, minlength=last + 1)
    assert len(counts) == last + 1 and counts.min() > 4000 / (last + 1) * 0.75


def test_short_episode_is_taken_whole_and_oversized_step_gives_empty():
    bounds = bounds_of([3, 4])
    assert seq.random_window(bounds, 100, np.random.default_rng(0)) == (0, 2)
    assert seq.end_window(bounds, 100) == (0, 2)
    assert seq.random_window(bounds_of([9, 1]), 5, np.random.default_rng(0))[0] in (0, 1)
    first, stop = seq.random_window(bounds_of([9]), 5, np.random.default_rng(0))
    assert first == stop


def test_end_window_takes_the_last_steps():
    bounds = bounds_of([2, 2, 3, 2, 2])
    assert seq.end_window(bounds, 4) == (3, 5)
    assert seq.end_window(bounds, 6) == (3, 5)
    assert seq.end_window(bounds, 7) == (2, 5)
    with pytest.raises(ValueError, match="prompt kind"):
        seq.prompt_window(bounds, 4, "middle", np.random.default_rng(0))


def test_windows_of_token_sequences_keep_whole_timesteps(tok):
    ep = episode(tok, 40, images=True)  # 2 patches + 2 values + separator + action = 6 per step
    rng = np.random.default_rng(1)
    for budget in (6, 13, 50, 1000):
        window = sample_window(ep, budget, rng)
        assert len(window) <= budget and len(window) % 6 == 0
        np.testing.assert_array_equal(window.timestep_starts, np.arange(0, len(window), 6))
        assert (window.ids[window.timestep_starts] == PATCH_ID).all()
        assert window.patches.shape[0] == 2 * window.num_timesteps
    prompt = sample_prompt(ep, 20, "end", rng)
    np.testing.assert_array_equal(prompt.ids, ep.slice(len(ep) - 18, len(ep)).ids)


def test_prompted_window(tok):
    prompt_ep, ep = episode(tok, 30, index=1), episode(tok, 30, index=2)  # 4 tokens per step
    rng = np.random.default_rng(0)
    for kind in ("end", "uniform"):
        out = prompted_window(prompt_ep, ep, context=50, prompt_budget=25, kind=kind, rng=rng)
        assert len(out) <= 50 and len(out) == 48  # 6 prompt steps + 6 episode steps
        first_obs = out.ids[out.timestep_starts]  # the episode index of each timestep
        assert list(first_obs[:6] - 32000) == [1] * 6 and list(first_obs[6:] - 32000) == [2] * 6
        if kind == "end":
            assert out.ids[out.timestep_starts[5] + 1] - 32000 == 29  # the prompt's last step


def test_truncate(tok):
    pairs = [tok.encode_caption(np.zeros((16, 32, 3), np.uint8), "a red circle") for _ in range(5)]
    cut = seq.truncate_pair(pairs[0], 5)
    assert len(cut) == 5 and cut.patches.shape[0] == 2 and cut.loss_mask[3:].all()
    with pytest.raises(ValueError, match="smaller image_size"):
        seq.truncate_pair(pairs[0], 2)
    assert seq.truncate_pair(pairs[0], 100) is pairs[0]


def test_count_fitting_and_text_window():
    assert seq.count_fitting([3, 4, 5], 7) == 2
    assert seq.count_fitting([3, 4, 5], 2) == 0
    rng = np.random.default_rng(0)
    starts = {seq.text_window_start(10, 8, rng) for _ in range(300)}
    assert starts == set(range(10))
    assert seq.text_window_start(5, 8, rng) == 0


def test_separators_sit_where_the_tokenizer_put_them(tok):
    ep = episode(tok, 12)
    window = seq.take_steps(ep, 3, 7)
    assert (window.ids[window.timestep_starts + 2] == SEPARATOR_ID).all()


def test_mask_actions_hides_only_action_inputs_and_keeps_their_targets():
    import torch

    from gato.schema import ActionSpec
    from gato.tokens.batch import collate, mask_actions
    from gato.tokens.tokenizer import GatoTokenizer
    from gato.vocab import ACTION_MASK_ID, DISCRETE_OFFSET, SEPARATOR_ID

    tok = GatoTokenizer()
    rng = np.random.default_rng(0)
    episode = tok.encode_episode(
        {"continuous": rng.normal(size=(40, 3)), "discrete": rng.integers(0, 5, (40, 2))},
        {"continuous": rng.uniform(-1, 1, (40, 2))},
        ActionSpec("continuous", (2,)),
    )
    text = tok.encode_text_sequence("a line of text to check that text targets stay")
    batch = collate([episode, text])
    out = mask_actions(batch, 0.5, torch.Generator().manual_seed(0))
    hidden = out.input_ids == ACTION_MASK_ID
    actions = batch.loss_mask & (batch.input_ids >= DISCRETE_OFFSET)
    actions &= batch.input_ids < SEPARATOR_ID
    assert hidden.any() and not (hidden & ~actions).any()  # only action targets are hidden
    assert 0.35 < hidden.sum() / actions.sum() < 0.65
    assert torch.equal(out.loss_mask, batch.loss_mask)  # every target kept ...
    assert torch.equal(out.labels, batch.input_ids)  # ... with its true id
    assert torch.equal(out.input_ids[~hidden], batch.input_ids[~hidden])
    rows = out.rows(slice(1, 2))
    assert torch.equal(rows.labels, batch.input_ids[1:2]) and "labels" in out.as_dict()
    assert "labels" not in batch.as_dict()
    assert torch.equal(out.input_ids[1], batch.input_ids[1])  # text untouched
    assert mask_actions(batch, 0.0) is batch
    again = mask_actions(batch, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again.input_ids, out.input_ids)  # seeded: the same tokens
    every = mask_actions(batch, 1.0)  # every action target hidden, nothing else
    assert torch.equal(every.input_ids == ACTION_MASK_ID, actions)
    assert torch.equal(every.labels, batch.input_ids)
    # A batch hidden before is hidden from its true ids again, never from the mask ids.
    assert torch.equal(mask_actions(out, 1.0).input_ids, every.input_ids)
    assert torch.equal(mask_actions(out, 1.0).labels, batch.input_ids)
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match="probability must be in"):
            mask_actions(batch, bad)


def test_mask_text_hides_only_text_targets_and_keeps_their_targets():
    import torch

    from gato.schema import ActionSpec
    from gato.tokens.batch import collate, mask_actions, mask_text
    from gato.tokens.tokenizer import GatoTokenizer
    from gato.vocab import ACTION_MASK_ID, TEXT_VOCAB_SIZE

    tok = GatoTokenizer()
    rng = np.random.default_rng(0)
    episode = tok.encode_episode(
        {"continuous": rng.normal(size=(10, 3))},
        {"continuous": rng.uniform(-1, 1, (10, 2))},
        ActionSpec("continuous", (2,)),
    )
    image = rng.integers(0, 255, (48, 48, 3), np.uint8)
    vqa = tok.encode_caption(image, "the red circle", question="which object is at the top?")
    caption = tok.encode_caption(image, "a large red circle at the top left and a small square")
    batch = collate([episode, vqa, caption])
    text_targets = batch.loss_mask & (batch.input_ids < TEXT_VOCAB_SIZE)
    question = ~batch.loss_mask[1] & (batch.input_ids[1] < TEXT_VOCAB_SIZE)
    assert question.sum() > 5 and text_targets[1].sum() > 2  # the fixture has both kinds

    out = mask_text(batch, 0.5, torch.Generator().manual_seed(0))
    hidden = out.input_ids == ACTION_MASK_ID
    assert hidden.any() and not (hidden & ~text_targets).any()  # text targets only
    assert not hidden[0].any() and not hidden[1][question].any()  # no actions, no question
    assert 0.3 < hidden.sum() / text_targets.sum() < 0.7
    assert torch.equal(out.labels, batch.input_ids) and torch.equal(out.loss_mask, batch.loss_mask)
    again = mask_text(batch, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again.input_ids, out.input_ids)  # seeded: the same tokens
    assert torch.equal(mask_text(batch, 1.0).input_ids == ACTION_MASK_ID, text_targets)
    assert mask_text(batch, 0.0) is batch
    # Actions and text hidden in turn: both kinds hidden, every label the true id.
    both = mask_text(mask_actions(batch, 1.0), 1.0)
    assert torch.equal(both.labels, batch.input_ids)
    actions = mask_actions(batch, 1.0).input_ids == ACTION_MASK_ID
    assert torch.equal(both.input_ids == ACTION_MASK_ID, actions | text_targets)
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match="mask_text: probability must be in"):
            mask_text(batch, bad)
