"""The model as a captioner and a chat model: greedy generation, caption scores.

Generation continues a context (image patches and BOS for a caption, plus the question for VQA;
BOS and the prompt for chat) one token at a time over a KV cache, with logits restricted to text
ids and EOS (the model must not answer in action ids), until EOS or `max_new_tokens`. Contexts of
a batch are left-padded, so every row's last token sits at the same column.

Caption scores on a split (the procedural scenes' `heldout` split by default: colour-shape pairs
never seen in training): exact match after trimming whitespace, and corpus BLEU (sacrebleu), next
to a baseline that needs no model: for VQA the most common training answer of the question's type,
for captions the caption of the nearest training image (`gato.evaluation.baselines`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gato.evaluation.baselines import bleu, by_question_type, exact_match, language_baseline
from gato.evaluation.loading import ModelLike, load_model
from gato.tokens.batch import TokenSequence, collate
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import BOS_ID, EOS_ID, NO_LOCAL_POSITION

__all__ = [
    "caption_context",
    "caption_image",
    "chat",
    "evaluate_captions",
    "generate_text",
    "load_image",
    "text_context",
]


def _ids_sequence(ids: Sequence[int], tokenizer: GatoTokenizer) -> TokenSequence:
    ids = np.asarray(ids, dtype=np.int64)
    return TokenSequence(
        ids=ids,
        local_positions=np.full(len(ids), NO_LOCAL_POSITION, np.int64),
        loss_mask=np.zeros(len(ids), bool),
        patches=tokenizer._no_patches(),
    )


def caption_context(
    tokenizer: GatoTokenizer, image: np.ndarray, question: str | None = None
) -> TokenSequence:
    """The tokens a caption (or an answer) follows: the image's patches, BOS, the question."""
    patches = tokenizer.encode_episode({"image": np.asarray(image)[None]})
    patches = patches.slice(0, len(patches) - 1)  # no separator, as in `encode_caption`
    text = [BOS_ID]
    if question is not None:
        text += tokenizer.encode_text(question).tolist()
    return TokenSequence.concatenate([patches, _ids_sequence(text, tokenizer)])


def text_context(tokenizer: GatoTokenizer, prompt: str) -> TokenSequence:
    """BOS and the prompt's tokens."""
    return _ids_sequence([BOS_ID, *tokenizer.encode_text(prompt).tolist()], tokenizer)


@torch.no_grad()
def generate_text(
    model: Any,
    tokenizer: GatoTokenizer,
    contexts: Sequence[TokenSequence],
    max_new_tokens: int = 48,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Continue each context until EOS (or `max_new_tokens`, or the context is full) -> texts."""
    from gato.policy import sample_tokens

    if not contexts:
        return []
    context_length = model.config.max_position_embeddings
    longest = max(len(c) for c in contexts)
    if longest >= context_length:
        raise ValueError(
            f"a context of {longest} tokens leaves no room to generate in the model's "
            f"context of {context_length}"
        )
    max_new_tokens = min(max_new_tokens, context_length - longest)
    device = model.lm_head.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    # Text ids and EOS: the only ids an answer may contain; of the text ids, those both the model
    # writes and the tokenizer's text model can decode (a model trained before
    # `text_vocab_size` existed may score ids a smaller text model has no piece for).
    pieces = min(model.config.text_vocab_size, tokenizer.text_model.get_piece_size())
    allowed = torch.full((model.config.vocab_size,), float("-inf"), device=device)
    allowed[:pieces] = 0.0
    allowed[EOS_ID] = 0.0
    batch = collate(list(contexts), padding_side="left").to(device)
    mask = batch.attention_mask
    out = model(
        input_ids=batch.input_ids,
        attention_mask=mask,
        local_positions=batch.local_positions,
        patches=batch.patches,
        patch_positions=batch.patch_positions,
        use_cache=True,
    )
    rows = len(contexts)
    generated = torch.zeros(rows, 0, dtype=torch.long, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1].float() + allowed  # (B, V)
        token = sample_tokens(logits, temperature, generator)
        token = torch.where(done, torch.full_like(token, EOS_ID), token)
        generated = torch.cat([generated, token[:, None]], dim=1)
        done |= token == EOS_ID
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype, device=device)], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            past_key_values=out.past_key_values,
            use_cache=True,
            validate=False,
        )
    texts = []
    for row in generated.tolist():
        if EOS_ID in row:
            row = row[: row.index(EOS_ID)]
        texts.append(tokenizer.decode_text(row))
    return texts


def load_image(path: str | Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8; a file that does not decode is a `ValueError`."""
    from gato.data.corpora.vision_language import decode_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    return decode_image(path.read_bytes(), str(path))


def caption_image(
    model: ModelLike,
    image: np.ndarray | str | Path,
    question: str | None = None,
    max_new_tokens: int = 48,
    image_size: int | None = None,
) -> str:
    """Caption one image (a file or pixels), or answer a question about it."""
    from gato.data.corpora.vision_language import resize_image

    loaded, tokenizer, _ = load_model(model)
    if not isinstance(image, np.ndarray):
        image = load_image(image)
    if image_size is not None:
        image = resize_image(image, image_size)
    context = caption_context(tokenizer, image, question)
    return generate_text(loaded, tokenizer, [context], max_new_tokens)[0].strip()


def chat(model: ModelLike, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0) -> str:
    """Continue a text prompt (BOS + prompt) until EOS: a one-shot answer."""
    loaded, tokenizer, _ = load_model(model)
    context = text_context(tokenizer, prompt)
    return generate_text(loaded, tokenizer, [context], max_new_tokens, temperature)[0]


def evaluate_captions(
    model: ModelLike,
    source: str | Path = "captions",
    split: str = "heldout",
    limit: int | None = 200,
    batch_size: int = 16,
    max_new_tokens: int = 48,
    image_size: int | None = None,
    progress: bool = True,
    examples: int = 5,
    baseline_limit: int | None = 2000,
) -> dict[str, Any]:
    """Caption (or answer) every example of a split and score the texts, beside a baseline.

    Args:
        model: a model, checkpoint or run folder, or a (model, tokenizer) pair.
        source: "captions" or "vqa" (the procedural datasets) or a dataset path / hub id with
            `images` and `text` (and optionally `question`) columns.
        split: the split to score (`heldout`: unseen colour-shape pairs).
        limit: score the first `limit` examples (None: all).
        image_size: resize images to this square side (as the training mixture did, if it did).
        examples: how many (target, output) pairs to keep in the report.
        baseline_limit: training examples the baseline draws on (0: no baseline; None: all):
            for VQA the most common training answer per question type (blind), for captions
            the caption of the nearest training image (`gato.evaluation.baselines`).

    Returns:
        {"kind": "captions", "source", "split", "count", "exact_match", "bleu", "examples",
        "baseline": {"name", "train_examples", "exact_match", "bleu"} or None, "baseline_note",
        "by_type": `by_question_type` when every example has a question (VQA), else None}.
    """
    from gato.data.corpora.vision_language import (
        CAPTIONS_PATH,
        VQA_PATH,
        iter_captions,
        load_captions,
    )

    loaded, tokenizer, folder = load_model(model)
    path = {"captions": CAPTIONS_PATH, "vqa": VQA_PATH}.get(str(source), source)
    dataset = load_captions(path, split)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError(f"{source}: split {split!r} has no examples")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(dataset), desc=f"{source}/{split}", unit="example", leave=False)
    targets, outputs, questions = [], [], []
    pending: list[Any] = []

    def flush() -> None:
        contexts = [caption_context(tokenizer, e.image, e.question) for e in pending]
        texts = generate_text(loaded, tokenizer, contexts, max_new_tokens)
        outputs.extend(t.strip() for t in texts)
        targets.extend(e.text.strip() for e in pending)
        questions.extend(e.question for e in pending)
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    for example in iter_captions(dataset, str(source), image_size):
        pending.append(example)
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    if bar is not None:
        bar.close()
    exact = exact_match(outputs, targets)
    score = bleu(outputs, targets)
    baseline, note = None, ""
    if baseline_limit != 0:
        baseline, note = _baseline(path, str(source), split, dataset, image_size, baseline_limit)
    baseline_outputs = None if baseline is None else baseline.pop("outputs")
    by_type = None
    if questions and all(q is not None for q in questions):
        by_type = by_question_type(questions, outputs, targets, baseline_outputs)
    shown = [
        {"question": q, "target": t, "output": o}
        for q, t, o in list(zip(questions, targets, outputs, strict=True))[:examples]
    ]
    return {
        "kind": "captions",
        "checkpoint": None if folder is None else str(folder),
        "source": str(source),
        "split": split,
        "count": len(outputs),
        "exact_match": exact,
        "bleu": score,
        "examples": shown,
        "baseline": baseline,
        "baseline_note": note,
        "by_type": by_type,
    }


def _baseline(
    path: Any, source: str, split: str, dataset: Any, image_size: int | None, limit: int | None
) -> tuple[dict[str, Any] | None, str]:
    """The split's language baseline from the source's `train` split, or (None, why not)."""
    from gato.data.corpora.vision_language import iter_captions, load_captions

    if split == "train":
        return None, "no baseline: the scored split is the training split"
    try:
        train = load_captions(path, "train")
    except (FileNotFoundError, ValueError, KeyError) as err:
        return None, f"no baseline: no training split ({err})"
    if limit is not None:
        train = train.select(range(min(limit, len(train))))
    if len(train) == 0:
        return None, "no baseline: the training split is empty"
    train_examples = list(iter_captions(train, source, image_size))
    examples = list(iter_captions(dataset, source, image_size))
    targets = [e.text.strip() for e in examples]
    return language_baseline(train_examples, examples, targets), ""


def question_type_table(report: dict[str, Any]) -> str:
    """The report's `by_type` as a Markdown table (empty when it has none)."""
    rows = report.get("by_type")
    if not rows:
        return ""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    lines = ["| question type | count | exact match | baseline |", "| --- | --- | --- | --- |"]
    for kind, r in rows.items():
        lines.append(
            f"| {kind} | {r['count']} | {pct(r['exact_match'])} | "
            f"{pct(r['baseline_exact_match'])} |"
        )
    return "\n".join(lines)
