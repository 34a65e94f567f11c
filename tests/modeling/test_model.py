"""GatoModel: shapes, the masked loss, cached decoding, padding, save/load, training paths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_config, run_in_chunks
from references import slow_reference_loss

from gato.modeling.config import GatoConfig
from gato.modeling.embedding import (
    MONO_EPS,
    ordinal_embedding,
    patch_position_indices,
    patch_silhouette,
)
from gato.modeling.loss import linear_cross_entropy
from gato.modeling.model import GatoModel
from gato.tokens.batch import GatoBatch, TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import (
    BOS_ID,
    CONTINUOUS_OFFSET,
    DISCRETE_OFFSET,
    EOS_ID,
    NO_LOCAL_POSITION,
    NUM_CONTINUOUS_BINS,
    PATCH_ID,
)


def small_config(**overrides) -> GatoConfig:
    return make_config(**{"max_position_embeddings": 256, **overrides})


def small_model(seed: int = 0, **overrides) -> GatoModel:
    torch.manual_seed(seed)
    return GatoModel(small_config(**overrides)).eval()


# ---------------------------------------------------------------------------------------------
# Sequences: episodes through the tokenizer (no text model needed), text built by hand
# ---------------------------------------------------------------------------------------------


def text_sequence(rng: np.random.Generator, n: int) -> TokenSequence:
    ids = np.concatenate([[BOS_ID], rng.integers(0, 32000, n), [EOS_ID]]).astype(np.int64)
    loss = np.ones(len(ids), dtype=bool)
    loss[0] = False
    return TokenSequence(
        ids=ids,
        local_positions=np.full(len(ids), NO_LOCAL_POSITION, dtype=np.int64),
        loss_mask=loss,
        patches=np.zeros((0, 4, 16, 16), np.uint8),
    )


def control_sequence(rng: np.random.Generator, steps: int = 4) -> TokenSequence:
    return GatoTokenizer().encode_episode(
        {"continuous": rng.normal(size=(steps, 5))},
        {"continuous": rng.uniform(-1, 1, size=(steps, 2))},
    )


def image_sequence(rng: np.random.Generator, steps: int = 3) -> TokenSequence:
    frames = rng.integers(0, 256, size=(steps, 32, 32, 3), dtype=np.uint8)
    return GatoTokenizer().encode_episode(
        {"image": frames, "discrete": rng.integers(0, 10, size=(steps, 2))},
        {"discrete": rng.integers(0, 6, size=(steps,))},
    )


def mixed_sequences(seed: int = 0) -> list[TokenSequence]:
    rng = np.random.default_rng(seed)
    return [text_sequence(rng, 18), control_sequence(rng), image_sequence(rng)]


def mixed_batch(seed: int = 0, **kwargs) -> GatoBatch:
    return collate(mixed_sequences(seed), **kwargs)


# ---------------------------------------------------------------------------------------------
# Forward, loss
# ---------------------------------------------------------------------------------------------


def test_forward_shapes_and_default_outputs():
    model = small_model()
    batch = mixed_batch()
    b, length = batch.input_ids.shape
    full = model(**batch.as_dict(), return_logits=True)
    assert full.logits.shape == (b, length, model.config.vocab_size)
    assert full.last_hidden_state.shape == (b, length, 64)
    assert full.loss.shape == () and torch.isfinite(full.loss)
    expected = (batch.loss_mask[:, 1:] & batch.attention_mask[:, 1:].bool()).sum()
    assert int(full.num_loss_tokens) == int(expected) > 0

    training = model(**batch.as_dict())
    assert training.logits is None, "training must not build (B, L, V) logits"
    torch.testing.assert_close(training.loss, full.loss)

    no_loss = {k: v for k, v in batch.as_dict().items() if k != "loss_mask"}
    decoding = model(**no_loss)
    assert decoding.logits.shape == (b, 1, model.config.vocab_size)
    assert decoding.loss is None
    # A cache by default only when decoding (eval, no loss mask), never for a loss.
    assert decoding.past_key_values.get_seq_length() == length
    assert full.past_key_values is None
    assert model.train()(**no_loss).past_key_values is None
    torch.testing.assert_close(decoding.logits[:, 0], full.logits[:, -1])


def test_loss_matches_slow_reference():
    # Gato's loss over the whole vocabulary (value_loss='range': tests/test_value_loss.py).
    model = small_model(value_loss="vocabulary")
    batch = mixed_batch()
    out = model(**batch.as_dict(), return_logits=True)
    reference = slow_reference_loss(out.logits, batch)
    torch.testing.assert_close(out.loss.double(), reference, atol=1e-5, rtol=1e-5)


def test_hidden_action_inputs_keep_their_targets_in_the_loss():
    from gato.tokens.batch import mask_actions

    # Gato's loss over the whole vocabulary (value_loss='range': tests/test_value_loss.py).
    model = small_model(value_loss="vocabulary")
    batch = mixed_batch()
    masked = mask_actions(batch, 0.5, torch.Generator().manual_seed(1))
    hidden = masked.input_ids != batch.input_ids
    assert hidden.any()
    out = model(**masked.as_dict(), return_logits=True)
    # Every target counted, hidden ones with their true ids, predicted from the masked inputs.
    assert int(out.num_loss_tokens) == int(model(**batch.as_dict()).num_loss_tokens)
    reference = slow_reference_loss(out.logits, masked)
    torch.testing.assert_close(out.loss.double(), reference, atol=1e-5, rtol=1e-5)
    # Labels equal to the inputs change nothing.
    same = model(**batch.as_dict(), labels=batch.input_ids)
    torch.testing.assert_close(same.loss, model(**batch.as_dict()).loss)
    with pytest.raises(ValueError, match="labels must have the shape of input_ids"):
        model(**batch.as_dict(), labels=batch.input_ids[:, 1:])


def test_per_sequence_losses_match_slow_reference_row_by_row():
    # Gato's loss over the whole vocabulary (value_loss='range': tests/test_value_loss.py).
    model = small_model(value_loss="vocabulary")
    batch = mixed_batch()
    out = model(**batch.as_dict(), return_logits=True)
    assert out.sequence_loss_sums.shape == (batch.input_ids.shape[0],)
    assert not out.sequence_loss_sums.requires_grad
    for row in range(batch.input_ids.shape[0]):
        one = batch.rows(slice(row, row + 1))
        count = int((one.loss_mask[:, 1:] & one.attention_mask[:, 1:].bool()).sum())
        assert int(out.sequence_loss_counts[row]) == count
        reference = slow_reference_loss(out.logits[row : row + 1], one) * count
        torch.testing.assert_close(
            out.sequence_loss_sums[row].double(), reference, atol=1e-4, rtol=1e-5
        )
    torch.testing.assert_close(
        out.sequence_loss_sums.sum(), out.loss * out.num_loss_tokens, atol=1e-4, rtol=1e-5
    )


def test_loss_ignores_targets_outside_the_loss_mask():
    model = small_model()
    batch = mixed_batch()
    # The shortest row's last real token feeds only padding: changing it alters no prediction,
    # so only its own place as a target could move the loss.
    row = int(batch.attention_mask.sum(1).argmin())
    last = int(batch.attention_mask[row].sum()) - 1
    assert batch.input_ids[row, last] != PATCH_ID
    batch.loss_mask[row, last] = False
    base = model(**batch.as_dict()).loss

    changed = batch.as_dict()
    changed["input_ids"] = batch.input_ids.clone()
    changed["input_ids"][row, last] = (int(batch.input_ids[row, last]) + 1) % 32000
    assert torch.equal(model(**changed).loss, base)

    # ...while a counted target does move it.
    counted = batch.as_dict()
    counted["loss_mask"] = batch.loss_mask.clone()
    counted["loss_mask"][row, last] = True
    counted["input_ids"] = changed["input_ids"]
    assert not torch.equal(
        model(**counted).loss, model(**{**counted, **{"input_ids": batch.input_ids}}).loss
    )


@pytest.mark.parametrize("chunk_rows", [1, 7, 1024])
def test_fused_head_cross_entropy_matches_plain_head(chunk_rows):
    torch.manual_seed(0)
    hidden = torch.randn(50, 32, requires_grad=True)
    weight = (0.1 * torch.randn(300, 32)).requires_grad_()
    labels = torch.randint(0, 300, (50,))
    plain = F.cross_entropy(hidden @ weight.T, labels, reduction="sum")
    grads = torch.autograd.grad(2.0 * plain, (hidden, weight))
    fused = linear_cross_entropy(hidden, weight, labels, chunk_rows=chunk_rows)
    fused_grads = torch.autograd.grad(2.0 * fused, (hidden, weight))
    torch.testing.assert_close(fused, plain, atol=1e-4, rtol=1e-6)
    for got, want in zip(fused_grads, grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(hidden, weight, labels), plain)


def test_no_targets_gives_zero_loss_not_nan():
    model = small_model()
    batch = mixed_batch()
    out = model(**{**batch.as_dict(), "loss_mask": torch.zeros_like(batch.loss_mask)})
    assert out.loss.item() == 0.0 and int(out.num_loss_tokens) == 0


def test_every_embedding_gets_gradients():
    model = small_model().train()
    model(**mixed_batch().as_dict()).loss.backward()
    emb = model.embedding
    for name, param in [
        ("tokens", emb.tokens.weight),
        ("patch block", emb.patches.proj.weight),
        ("patch stem", emb.patches.stem.weight),
        ("patch rows", emb.patch_rows.weight),
        ("patch cols", emb.patch_cols.weight),
        ("local positions", emb.local_positions.weight),
    ]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_linear_patch_encoder_is_one_map_of_the_normalised_pixels():
    """Against the formula: (pixels / 255 * 2 - 1) / 4, flattened channel-major, times W, plus b;
    and so linear in the pixels: the embedding of a mix is the mix of the embeddings."""
    model = small_model(patch_encoder="linear")
    proj = model.embedding.patches.proj
    rng = np.random.default_rng(0)
    patches = torch.from_numpy(rng.integers(0, 256, size=(5, 4, 16, 16), dtype=np.uint8))
    got = model.embedding.patches(patches)
    pixels = patches.double().numpy().reshape(5, -1)
    expected = ((pixels / 255.0 * 2.0 - 1.0) / 4.0) @ proj.weight.double().detach().numpy().T
    expected += proj.bias.double().detach().numpy()
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # Two patches and their pixel-wise mean (both even: the mean is exact in uint8).
    a, b = (patches[:2] // 2) * 2, (patches[2:4] // 2) * 2
    mean = ((a.int() + b.int()) // 2).to(torch.uint8)
    embed = model.embedding.patches
    torch.testing.assert_close(embed(mean), (embed(a) + embed(b)) / 2, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder", ["linear", "mono_resnet+linear"])
def test_patch_encoder_trains_decodes_with_a_cache_and_round_trips(tmp_path, encoder):
    model = small_model(patch_encoder=encoder).train()
    batch = mixed_batch().as_dict()
    model(**batch).loss.backward()
    assert model.embedding.patches.proj.weight.grad.abs().sum() > 0
    model.eval()
    rng = np.random.default_rng(3)
    seq = TokenSequence.concatenate([image_sequence(rng), control_sequence(rng)])
    full = model(**collate([seq]).as_dict(), return_logits=True).logits
    n = len(seq)
    cuts = sorted({3, 7, 8, n // 2, n - 1})
    torch.testing.assert_close(run_in_chunks(model, seq, cuts), full, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.patch_encoder == encoder
    expected = model(**batch, return_logits=True).logits
    torch.testing.assert_close(loaded(**batch, return_logits=True).logits, expected, rtol=0, atol=0)


def test_resnet_plus_linear_adds_the_linear_path_to_the_resnet():
    """With the linear path's weights zero the sum is the ResNet model exactly; the linear path
    then moves only image positions, and it gets gradients."""
    both = small_model(patch_encoder="resnet+linear")
    resnet = small_model(patch_encoder="resnet")
    state = {k: v for k, v in both.state_dict().items() if "patch_linear" not in k}
    resnet.load_state_dict(state)
    with torch.no_grad():
        both.embedding.patch_linear.proj.weight.zero_()
        both.embedding.patch_linear.proj.bias.zero_()
    batch = mixed_batch().as_dict()
    expected = resnet(**batch, return_logits=True).logits
    torch.testing.assert_close(both(**batch, return_logits=True).logits, expected, rtol=0, atol=0)
    with torch.no_grad():
        both.embedding.patch_linear.proj.bias.fill_(0.5)
    moved = both(**batch, return_logits=True).logits
    row, first_patch = (int(i) for i in (batch["input_ids"] == PATCH_ID).nonzero()[0])
    assert torch.equal(moved[row, :first_patch], expected[row, :first_patch])
    assert not torch.allclose(moved[row, first_patch], expected[row, first_patch])
    both.train()
    both(**batch).loss.backward()
    assert both.embedding.patch_linear.proj.weight.grad.abs().sum() > 0


def test_patch_silhouette_is_the_brightest_channel_standardised_within_its_patch():
    """Against the formula in numpy, then what it is for: a patch whose object changes hue (its
    channels permuted) or brightness (all pixels scaled) keeps its silhouette."""
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, size=(3, 4, 16, 16), dtype=np.uint8)
    got = patch_silhouette(torch.from_numpy(patches)).numpy()
    bright = patches.max(axis=1, keepdims=True).astype(np.float64) / 255.0
    mean = bright.mean(axis=(2, 3), keepdims=True)
    spread = bright.std(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(got, (bright - mean) / (spread + MONO_EPS), rtol=1e-5, atol=1e-5)
    assert got.shape == (3, 1, 16, 16)
    # A red square on a dark background, then the same square blue, then at 3/4 brightness.
    red = np.full((1, 4, 16, 16), 30, dtype=np.uint8)
    red[:, 3] = 0
    red[0, 0, 4:12, 4:12] = 220
    blue = red[:, [2, 1, 0, 3]].copy()
    dim = (red.astype(np.float64) * 0.75).round().astype(np.uint8)
    silhouettes = [patch_silhouette(torch.from_numpy(p)) for p in (red, blue, dim)]
    torch.testing.assert_close(silhouettes[0], silhouettes[1], rtol=0, atol=0)
    # Within a few per cent: the floor weighs a little more on the dimmer patch's spread.
    torch.testing.assert_close(silhouettes[2], silhouettes[0], rtol=0.1, atol=0.01)
    # Faint background noise stays faint: its spread is far below the floor.
    noise = rng.integers(24, 37, size=(1, 4, 16, 16), dtype=np.uint8)
    assert patch_silhouette(torch.from_numpy(noise)).abs().max() < 0.5


def test_mono_resnet_reads_no_colour_and_the_linear_path_does():
    """In "mono_resnet+linear" the ResNet's vector is the same for a patch and its channel
    permutation (a hue change); the linear path, and so the patch's embedding, is not."""
    model = small_model(patch_encoder="mono_resnet+linear").eval()
    assert model.embedding.patches.stem.in_channels == 1
    rng = np.random.default_rng(1)
    patches = torch.from_numpy(rng.integers(0, 256, size=(4, 4, 16, 16), dtype=np.uint8))
    permuted = patches[:, [2, 0, 1, 3]]
    resnet, linear = model.embedding.patches, model.embedding.patch_linear
    torch.testing.assert_close(resnet(permuted), resnet(patches), rtol=0, atol=0)
    assert not torch.allclose(linear(permuted), linear(patches))


def test_a_checkpoint_saved_before_the_patch_encoder_field_loads_as_the_resnet(tmp_path):
    import json

    model = small_model()
    batch = mixed_batch().as_dict()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["patch_encoder"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.patch_encoder == "resnet"
    expected = model(**batch, return_logits=True).logits
    torch.testing.assert_close(loaded(**batch, return_logits=True).logits, expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------------


def test_patch_positions_middle_in_eval_random_inside_interval_in_training():
    intervals = torch.tensor([[0, 64], [64, 128], [10, 11], [5, 9]])
    assert patch_position_indices(intervals, training=False).tolist() == [32, 96, 10, 7]
    torch.manual_seed(0)
    draws = torch.stack([patch_position_indices(intervals, training=True) for _ in range(500)])
    assert (draws >= intervals[:, 0]).all() and (draws < intervals[:, 1]).all()
    assert draws[:, 0].unique().numel() > 30  # spreads over the interval
    assert (draws[:, 2] == 10).all()
    # Told the bins, an interval that spans them all (an image that is one patch) keeps its
    # middle in training; the others are drawn as before.
    whole = torch.tensor([[0, 128], [0, 64], [64, 128]])
    draws = torch.stack([patch_position_indices(whole, True, num_bins=128) for _ in range(500)])
    assert (draws[:, 0] == 64).all()
    assert draws[:, 1].unique().numel() > 30 and draws[:, 2].unique().numel() > 30


def test_eval_is_deterministic_and_training_samples_patch_positions():
    model = small_model()
    batch = mixed_batch().as_dict()
    first = model(**batch, return_logits=True).logits
    torch.testing.assert_close(model(**batch, return_logits=True).logits, first, rtol=0, atol=0)
    model.train()  # dropout is 0: only the patch positions are random
    torch.manual_seed(1)
    a = model(**batch, return_logits=True).logits
    torch.manual_seed(2)
    b = model(**batch, return_logits=True).logits
    assert not torch.allclose(a, b)


def test_local_positions_change_only_tokens_that_have_them():
    model = small_model()
    batch = mixed_batch().as_dict()
    with_local = model(**batch, return_logits=True).logits
    shifted = dict(batch)
    local = batch["local_positions"].clone()
    local[local >= 0] += 1
    shifted["local_positions"] = local
    moved = model(**shifted, return_logits=True).logits
    first_local = int((batch["local_positions"][1] >= 0).nonzero()[0])
    # Row 1 (control) has local positions from its first token; text row 0 has none.
    torch.testing.assert_close(moved[0], with_local[0])
    assert not torch.allclose(moved[1, first_local], with_local[1, first_local])


# ---------------------------------------------------------------------------------------------
# Cached decoding and padding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["image", "control", "text"])
def test_cached_decoding_matches_full_forward(which):
    model = small_model()
    rng = np.random.default_rng(3)
    seq = {
        "image": lambda: TokenSequence.concatenate([image_sequence(rng), control_sequence(rng)]),
        "control": lambda: control_sequence(rng),
        "text": lambda: text_sequence(rng, 20),
    }[which]()
    full = model(**collate([seq]).as_dict(), return_logits=True).logits
    # Prefill a prefix that cuts through an image, then chunks of several sizes, then singles.
    n = len(seq)
    cuts = sorted({3, 7, 8, n // 2, n // 2 + 3, n - 2, n - 1})
    torch.testing.assert_close(run_in_chunks(model, seq, cuts), full, atol=1e-5, rtol=1e-5)


def test_right_padded_batch_matches_single_rows():
    model = small_model()
    sequences = mixed_sequences()
    batch = collate(sequences)
    logits = model(**batch.as_dict(), return_logits=True).logits
    for row, seq in enumerate(sequences):
        alone = model(**collate([seq]).as_dict(), return_logits=True).logits[0]
        torch.testing.assert_close(logits[row, : len(seq)], alone, atol=1e-5, rtol=1e-5)


def test_left_padded_batch_with_cache_matches_single_rows():
    model = small_model()
    sequences = mixed_sequences()
    extra = 4  # tokens decoded one at a time after the padded prefill
    prefixes = [s.slice(0, len(s) - extra) for s in sequences]
    batch = collate(prefixes, padding_side="left")
    assert (batch.attention_mask[:, 0] == 0).any(), "the batch must be left-padded"
    out = model(
        **{k: v for k, v in batch.as_dict().items() if k != "loss_mask"},
        use_cache=True,
        return_logits=True,
    )
    cache, mask = out.past_key_values, batch.attention_mask
    prefill_logits, step_logits = out.logits, []
    for i in range(extra):
        step = collate([s.slice(len(s) - extra + i, len(s) - extra + i + 1) for s in sequences])
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(
            input_ids=step.input_ids,
            attention_mask=mask,
            local_positions=step.local_positions,
            patches=step.patches,
            patch_positions=step.patch_positions,
            past_key_values=cache,
        )
        step_logits.append(out.logits)
    decoded = torch.cat(step_logits, dim=1)  # (B, extra, V)
    width = prefill_logits.shape[1]
    for row, seq in enumerate(sequences):
        alone = model(**collate([seq]).as_dict(), return_logits=True).logits[0]
        n = len(seq) - extra
        torch.testing.assert_close(
            prefill_logits[row, width - n :], alone[:n], atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(decoded[row], alone[n:], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Training paths
# ---------------------------------------------------------------------------------------------


def test_tiny_model_overfits_a_mixed_batch():
    torch.manual_seed(0)
    model = GatoModel(GatoConfig.from_preset("tiny")).train()
    batch = mixed_batch().as_dict()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _step in range(300):
        loss = model(**batch).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if loss.item() < 0.02:
            break
    assert first > 5.0
    model.eval()
    assert model(**batch).loss.item() < 0.05


def test_gradient_checkpointing_gives_the_same_gradients():
    batch = mixed_batch().as_dict()

    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        model = small_model(seed=0, dropout=0.1).train()
        if checkpointing:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # renamed in transformers 5
                model.gradient_checkpointing_enable()
            assert model.is_activation_checkpointing
        calls = []
        block = model.layers[0]
        bind = block.bind  # every run of the block's forward binds its pieces once
        block.bind = lambda *a, **k: calls.append(1) or bind(*a, **k)
        torch.manual_seed(7)  # same patch positions and dropout masks in both runs
        model(**batch).loss.backward()
        # Checkpointed blocks run their forward again during the backward pass.
        assert len(calls) == (2 if checkpointing else 1)
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5)


def test_bf16_autocast_forward_and_backward():
    model = small_model().train()
    batch = mixed_batch().as_dict()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, return_logits=True)
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        fp32 = model(**batch).loss
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(**batch).loss
    torch.testing.assert_close(bf16, fp32, rtol=2e-2, atol=0)


# ---------------------------------------------------------------------------------------------
# Save, load, Auto classes
# ---------------------------------------------------------------------------------------------


def test_save_and_load_give_identical_logits(tmp_path):
    from transformers import AutoModel, AutoModelForCausalLM

    model = small_model()
    batch = mixed_batch().as_dict()
    expected = model(**batch, return_logits=True).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()

    for cls in (GatoModel, AutoModel, AutoModelForCausalLM):
        loaded = cls.from_pretrained(tmp_path).eval()
        assert type(loaded) is GatoModel
        assert loaded.lm_head.weight is loaded.embedding.tokens.weight, "tying lost on load"
        logits = loaded(**batch, return_logits=True).logits
        torch.testing.assert_close(logits, expected, rtol=0, atol=0)


def test_untied_head_round_trips(tmp_path):
    model = small_model(tie_word_embeddings=False)
    assert model.lm_head.weight is not model.embedding.tokens.weight
    batch = mixed_batch().as_dict()
    expected = model(**batch, return_logits=True).logits
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded(**batch, return_logits=True).logits, expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def _bad(batch: dict, **changes) -> dict:
    return {**batch, **changes}


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: _bad(b, loss_mask=b["loss_mask"][:, :-1]), "loss_mask must have the shape"),
        (lambda b: _bad(b, input_ids=b["input_ids"].clamp(max=34000) + 200), "input_ids must lie"),
        (
            lambda b: _bad(b, input_ids=torch.where(b["input_ids"] == PATCH_ID, 0, b["input_ids"])),
            "patch placeholders",
        ),
        (lambda b: _bad(b, local_positions=b["local_positions"] + 64), "max_local_positions"),
        (lambda b: _bad(b, patches=b["patches"][:, :3]), r"patches must be \(N, 4, 16, 16\)"),
        (lambda b: _bad(b, patches=b["patches"].float()), "uint8"),
        (lambda b: _bad(b, patch_positions=b["patch_positions"] + 200), "num_position_bins"),
        (lambda b: _bad(b, loss_mask=b["input_ids"] == PATCH_ID), "marks patch placeholders"),
        (lambda b: _bad(b, position_ids=torch.zeros(1, 3, dtype=torch.long)), "position_ids"),
    ],
)
def test_bad_batches_raise_clear_value_errors(corrupt, message):
    model = small_model()
    with pytest.raises(ValueError, match=message):
        model(**corrupt(mixed_batch().as_dict()))


def test_too_long_input_and_bad_cache_mask_raise():
    model = small_model(max_position_embeddings=16)
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        model(input_ids=torch.zeros(1, 17, dtype=torch.long))
    out = model(input_ids=torch.zeros(2, 4, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match="cover the cached and the new tokens"):
        model(
            input_ids=torch.zeros(2, 1, dtype=torch.long),
            attention_mask=torch.ones(2, 1, dtype=torch.long),
            past_key_values=out.past_key_values,
        )


# ---------------------------------------------------------------------------------------------
# GPU
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
class TestGPU:
    def test_bf16_cached_decoding_matches_full_forward(self):
        model = small_model().to("cuda", torch.bfloat16)
        rng = np.random.default_rng(3)
        seq = TokenSequence.concatenate([image_sequence(rng), control_sequence(rng)])
        full = model(**collate([seq]).to("cuda").as_dict(), return_logits=True).logits
        cached = run_in_chunks(model, seq, list(range(5, len(seq), 5)), device="cuda")
        torch.testing.assert_close(cached.float(), full.float(), atol=3e-2, rtol=3e-2)
        assert (cached.argmax(-1) == full.argmax(-1)).float().mean() > 0.95

    def test_bf16_autocast_training_step(self):
        model = small_model().to("cuda").train()
        batch = mixed_batch().to("cuda").as_dict()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        assert torch.isfinite(loss)


def _neighbour_cosines(rows: torch.Tensor, distance: int) -> float:
    unit = F.normalize(rows.double(), dim=1)
    return float((unit[:-distance] * unit[distance:]).sum(1).mean())


def test_ordinal_embedding_is_alike_for_neighbours_and_unlike_far_apart():
    g = torch.Generator().manual_seed(0)
    rows = ordinal_embedding(1024, 128, 0.02, generator=g)
    assert rows.shape == (1024, 128) and rows.dtype == torch.float32
    assert abs(float(rows.std()) - 0.02) < 0.002  # the scale of a normal initialisation
    near, far = _neighbour_cosines(rows, 1), _neighbour_cosines(rows, 384)
    assert near > 0.6 and abs(far) < 0.1
    # Monotone on average: the kernel falls with distance.
    cosines = [_neighbour_cosines(rows, d) for d in (1, 8, 32, 128)]
    assert cosines == sorted(cosines, reverse=True)
    # Independent rows (the normal initialisation) are unlike even for neighbours.
    assert abs(_neighbour_cosines(torch.randn(1024, 128, generator=g), 1)) < 0.05
    again = ordinal_embedding(1024, 128, 0.02, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rows, again)
    with pytest.raises(ValueError, match="independent must lie in"):
        ordinal_embedding(8, 4, 0.02, independent=1.5)
    with pytest.raises(ValueError, match="length scales"):
        ordinal_embedding(8, 4, 0.02, length_scales=(0.2, 0.01))


def test_smooth_value_init_shapes_the_tied_table_and_survives_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = GatoModel(make_config(value_embedding_init="smooth"))
    table = model.embedding.tokens.weight
    assert model.lm_head.weight.data_ptr() == table.data_ptr()
    values = table[CONTINUOUS_OFFSET : CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS].detach()
    assert _neighbour_cosines(values, 1) > 0.6
    discrete = table[DISCRETE_OFFSET : DISCRETE_OFFSET + 1024].detach()
    assert abs(_neighbour_cosines(discrete, 1)) < 0.1  # categorical ids stay independent
    torch.manual_seed(0)
    plain = GatoModel(make_config())
    plain_values = plain.embedding.tokens.weight[CONTINUOUS_OFFSET : CONTINUOUS_OFFSET + 1024]
    assert abs(_neighbour_cosines(plain_values.detach(), 1)) < 0.1
    model.save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path)
    assert loaded.config.value_embedding_init == "smooth"
    assert torch.equal(loaded.embedding.tokens.weight, table)  # loaded, not re-initialised
    with pytest.raises(ValueError, match="value_embedding_init must be 'normal' or 'smooth'"):
        make_config(value_embedding_init="fourier")


@pytest.mark.parametrize("encoding", ["values", "grouped"])
def test_value_frequency_buffers_survive_save_and_load(tmp_path, encoding):
    """The Fourier multiples are a non-persistent buffer (held on the device so that no forward
    copies them from the host, which CUDA graph capture forbids): loading must make them again,
    not leave the uninitialised memory a missing buffer gets."""
    from gato.modeling.config import ENCODINGS
    from gato.modeling.embedding import fourier_multiples, value_fourier_features

    config = GatoConfig.from_preset("tiny", **ENCODINGS[encoding])
    GatoModel(config).save_pretrained(tmp_path)
    loaded = GatoModel.from_pretrained(tmp_path)
    buffers = {n: b for n, b in loaded.named_buffers() if n.endswith("multiples")}
    assert buffers, "no Fourier multiples buffer: the test no longer covers the model"
    bins = torch.arange(1024)
    for name, multiples in buffers.items():
        module = loaded.get_submodule(name.rsplit(".", 1)[0])
        assert multiples.tolist() == fourier_multiples(module.num_frequencies, module.top), name
        held = value_fourier_features(bins, module.num_frequencies, module.top, multiples)
        fresh = value_fourier_features(bins, module.num_frequencies, module.top)
        torch.testing.assert_close(held, fresh, rtol=0, atol=0)


def test_compiled_blocks_share_one_graph_across_layers():
    """Each block compiled alone (benchmarks/train_step.py) must not specialise on its layer
    index: with one graph per layer, layers past dynamo's recompile limit (8) ran eager."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = GatoModel(GatoConfig.from_preset("tiny", num_hidden_layers=3))
    for block in model.layers:
        block.compile(backend="eager")  # dynamo's tracing and guards, no code generation
    ids = torch.randint(0, 30_000, (2, 16))
    try:
        model(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool))
        assert counters["stats"]["unique_graphs"] == 1
    finally:
        torch._dynamo.reset()
