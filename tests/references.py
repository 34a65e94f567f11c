"""Slow references written from the papers' formulas and the definitions, in one place.

Each is deliberately plain (scalar loops, whole-context recomputation) so that the fast code can
be checked against it; the tests that use one import it from here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from gato.modeling.embedding import (
    ValueEmbedding,
    fourier_multiples,
)
from gato.tokens.batch import GatoBatch, TokenSequence, collate
from gato.tokens.windows import (
    PromptKind,
    prompt_window,
    random_window,
    sequence_bounds,
    take_steps,
)
from gato.vocab import (
    ACTION_MASK_ID,
    CONTINUOUS_OFFSET,
    DISCRETE_OFFSET,
    NO_LOCAL_POSITION,
    NUM_CONTINUOUS_BINS,
    NUM_DISCRETE_VALUES,
    SEPARATOR_ID,
)


def sample_window(sequence: TokenSequence, budget: int, rng: np.random.Generator) -> TokenSequence:
    """A random window of whole timesteps of at most `budget` tokens."""
    first, stop = random_window(sequence_bounds(sequence), budget, rng)
    return take_steps(sequence, first, stop)


def sample_prompt(
    sequence: TokenSequence, budget: int, kind: PromptKind, rng: np.random.Generator
) -> TokenSequence:
    """A prompt of whole timesteps of at most `budget` tokens from the end or anywhere."""
    first, stop = prompt_window(sequence_bounds(sequence), budget, kind, rng)
    return take_steps(sequence, first, stop)


def prompted_window(
    prompt_episode: TokenSequence,
    episode: TokenSequence,
    context: int,
    prompt_budget: int,
    kind: PromptKind,
    rng: np.random.Generator,
) -> TokenSequence:
    """Prompt (at most `prompt_budget` tokens) followed by a window filling the rest of `context`.

    The prompt is drawn first, so the window gets whatever the prompt left (at least
    `context - prompt_budget`).
    """
    prompt = sample_prompt(prompt_episode, prompt_budget, kind, rng)
    window = sample_window(episode, context - len(prompt), rng)
    return TokenSequence.concatenate([prompt, window])


def slow_mu_law(x: float, mu: float = 100.0, M: float = 256.0) -> float:
    """F(x) = sgn(x) log(|x| mu + 1) / log(M mu + 1), clipped to [-1, 1], one scalar at a time."""
    sign = (x > 0) - (x < 0)
    y = sign * math.log(abs(x) * mu + 1.0) / math.log(M * mu + 1.0)
    return min(1.0, max(-1.0, y))


def slow_bin(y: float, n: int = 1024) -> int:
    """The bin whose interval [-1 + 2b/n, -1 + 2(b+1)/n) holds y; 1.0 belongs to the last."""
    for b in range(n):
        if -1.0 + 2.0 * b / n <= y < -1.0 + 2.0 * (b + 1) / n:
            return b
    return n - 1


def slow_reference_loss(logits: torch.Tensor, batch: GatoBatch) -> torch.Tensor:
    """Gato's loss from the formula: per counted target, -log p(token t | tokens < t)."""
    losses = []
    batch_size, length = batch.input_ids.shape
    for b in range(batch_size):
        for t in range(1, length):
            if batch.loss_mask[b, t] and batch.attention_mask[b, t]:
                log_probs = F.log_softmax(logits[b, t - 1].double(), dim=-1)
                targets = batch.input_ids if batch.labels is None else batch.labels
                losses.append(-log_probs[targets[b, t]])
    return torch.stack(losses).mean()


def reference_mask(real: list[list[bool]], past: int) -> torch.Tensor:
    """Query at column q sees key k iff k is real and k <= q, or k == q (its own key)."""
    rows, total = len(real), len(real[0])
    out = torch.zeros(rows, 1, total - past, total, dtype=torch.bool)
    for b in range(rows):
        for i, q in enumerate(range(past, total)):
            for k in range(total):
                out[b, 0, i, k] = (real[b][k] and k <= q) or k == q
    return out


def reference_positions(real: list[list[bool]], length: int) -> torch.Tensor:
    """A real token's position is the number of real tokens before it; padding gets the count
    of real tokens up to it minus one, at least 0 (its value is never read)."""
    out = []
    for row in real:
        positions = []
        for col in range(len(row) - length, len(row)):
            before = sum(row[:col])
            positions.append(before if row[col] else max(before - 1, 0))
        out.append(positions)
    return torch.tensor(out)


def action_tokens(ids: list[int]) -> TokenSequence:
    n = len(ids)
    return TokenSequence(
        ids=np.asarray(ids, np.int64),
        local_positions=np.full(n, NO_LOCAL_POSITION, np.int64),
        loss_mask=np.ones(n, bool),
        patches=np.zeros((0, 4, 16, 16), np.uint8),
    )


class ReferencePolicy:
    """Gato's deployment loop written plainly: no cache; the window rule of `slide="recompute"`."""

    def __init__(
        self,
        model,
        tokenizer,
        spec,
        prompt,
        slack: float = 0.25,
        hide_actions: bool = False,
        history_steps: int | None = None,
    ) -> None:  # recompute
        self.model, self.tokenizer, self.spec = model, tokenizer, spec
        self.prompt = prompt if prompt is not None else action_tokens([])
        self.slack = slack
        self.hide_actions = hide_actions
        self.history_steps = history_steps
        self.steps: list[TokenSequence] = []

    def inputs(self, seq: TokenSequence) -> dict:
        """The model's keyword inputs for one sequence; with `hide_actions`, every action target
        (a discrete or continuous id with a loss) fed as ACTION_MASK_ID, its id kept as label."""
        batch = collate([seq])
        ids = batch.input_ids
        out = dict(
            local_positions=batch.local_positions,
            patches=batch.patches,
            patch_positions=batch.patch_positions,
        )
        if not self.hide_actions:
            return {**out, "input_ids": ids}
        hidden = ids.clone()
        for t in range(ids.shape[1]):
            if bool(batch.loss_mask[0, t]) and DISCRETE_OFFSET <= int(ids[0, t]) < SEPARATOR_ID:
                hidden[0, t] = ACTION_MASK_ID
        return {**out, "input_ids": hidden, "labels": ids}

    def reset(self) -> None:
        self.steps = []

    def act(self, obs: dict):
        o = self.tokenizer.encode_timestep(obs)
        max_len, n = self.model.config.max_position_embeddings, self.spec.num_tokens
        need = len(self.prompt) + sum(len(s) for s in self.steps) + len(o) + n
        if need > max_len:
            target = need - max_len + int(self.slack * (max_len - len(self.prompt)))
            dropped = 0
            while self.steps and dropped < target:
                dropped += len(self.steps.pop(0))
        if self.history_steps is not None:
            del self.steps[: max(0, len(self.steps) - self.history_steps)]
        lo, hi = self.spec.token_range()
        ids: list[int] = []
        for _ in range(n):
            seq = TokenSequence.concatenate([self.prompt, *self.steps, o, action_tokens(ids)])
            with torch.no_grad():
                logits = self.model(
                    **self.inputs(seq),
                    use_cache=False,
                    return_logits=True,
                ).logits[0, -1]
            ids.append(lo + int(logits[lo:hi].argmax()))
        self.steps.append(TokenSequence.concatenate([o, action_tokens(ids)]))
        return self.tokenizer.decode_action(ids, self.spec)

    def context(self) -> TokenSequence:
        return TokenSequence.concatenate([self.prompt, *self.steps])


def slow_expert_score(returns: list[float]) -> float:
    """Written from the definition: every window of min(1000, N/10) consecutive episodes."""
    n = len(returns)
    w = max(1, min(1000, int(0.1 * n)))
    return max(sum(returns[i : i + w]) / w for i in range(n - w + 1))


def slow_windows(lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """Every maximal window of whole timesteps within the budget, one per start, by enumeration."""
    out = []
    for first in range(len(lengths)):
        total, stop = 0, first
        while stop < len(lengths) and total + lengths[stop] <= budget:
            total += lengths[stop]
            stop += 1
        out.append((first, stop))
    return out


def value_function_reference(module: ValueEmbedding, ids: list[int]) -> torch.Tensor:
    """f(bin centre) for continuous ids, zeros elsewhere, one id at a time from the formula."""
    n, top = module.num_frequencies, module.top
    inputs = 1 if module.kind == "linear" else 2 * n + 1
    rows = []
    for i in ids:
        if not CONTINUOUS_OFFSET <= i < CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS:
            rows.append(torch.zeros(module.function(torch.zeros(inputs)).shape))
            continue
        v = -1.0 + (i - CONTINUOUS_OFFSET + 0.5) * 2.0 / NUM_CONTINUOUS_BINS
        w = [math.pi * m for m in fourier_multiples(n, top)]
        features = [v] + [math.sin(x * v) for x in w] + [math.cos(x * v) for x in w]
        rows.append(module.function(torch.tensor(features[:inputs], dtype=torch.float32)))
    return torch.stack(rows)


def vtrace_sum_formula_reference(inputs: dict, rho_bar: float, c_bar: float) -> tuple[list, list]:
    """v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} d_i c_i) delta_t, one number at a time.

    Deliberately slow and literal: Python floats, the sum and the products written out, no
    recursion. The policy-gradient advantage is rho_s (r_s + d_s v_{s+1} - V(x_s)).
    """
    mu = inputs["behaviour_log_probs"].tolist()
    pi = inputs["target_log_probs"].tolist()
    r = inputs["rewards"].tolist()
    d = inputs["discounts"].tolist()
    V = inputs["values"].tolist()
    boot = inputs["bootstrap_value"].tolist()
    T, B = len(r), len(r[0])
    vs = [[0.0] * B for _ in range(T)]
    adv = [[0.0] * B for _ in range(T)]
    for b in range(B):
        value = [V[t][b] for t in range(T)] + [boot[b]]  # V(x_0) .. V(x_T)
        ratio = [math.exp(pi[t][b] - mu[t][b]) for t in range(T)]
        rho = [min(rho_bar, x) for x in ratio]
        c = [min(c_bar, x) for x in ratio]
        delta = [rho[t] * (r[t][b] + d[t][b] * value[t + 1] - value[t]) for t in range(T)]
        for s in range(T):
            total = 0.0
            for t in range(s, T):
                weight = 1.0
                for i in range(s, t):
                    weight *= d[i][b] * c[i]
                total += weight * delta[t]
            vs[s][b] = value[s] + total
        for s in range(T):
            next_v = vs[s + 1][b] if s + 1 < T else boot[b]
            adv[s][b] = rho[s] * (r[s][b] + d[s][b] * next_v - value[s])
    return vs, adv


def vtrace_recursive_reference(inputs: dict, rho_bar: float, c_bar: float) -> list:
    """v_s = V(x_s) + delta_s + d_s c_s (v_{s+1} - V(x_{s+1})), v_T = V(x_T), elementwise."""
    mu = inputs["behaviour_log_probs"].tolist()
    pi = inputs["target_log_probs"].tolist()
    r = inputs["rewards"].tolist()
    d = inputs["discounts"].tolist()
    V = inputs["values"].tolist()
    boot = inputs["bootstrap_value"].tolist()
    T, B = len(r), len(r[0])
    vs = [[0.0] * B for _ in range(T)]
    for b in range(B):
        v_next, V_next = boot[b], boot[b]
        for s in range(T - 1, -1, -1):
            ratio = math.exp(pi[s][b] - mu[s][b])
            delta = min(rho_bar, ratio) * (r[s][b] + d[s][b] * V_next - V[s][b])
            vs[s][b] = V[s][b] + delta + d[s][b] * min(c_bar, ratio) * (v_next - V_next)
            v_next, V_next = vs[s][b], V[s][b]
    return vs


def range_loss_reference(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, V) logits, (N,) labels -> (N,) cross-entropy, one target at a time: over the
    continuous bins for a continuous label, the discrete values for a discrete one, else all."""
    out = []
    for row, y in zip(logits, labels.tolist(), strict=True):
        lo, hi = 0, row.shape[0]
        if CONTINUOUS_OFFSET <= y < CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS:
            lo, hi = CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS
        elif DISCRETE_OFFSET <= y < DISCRETE_OFFSET + NUM_DISCRETE_VALUES:
            lo, hi = DISCRETE_OFFSET, DISCRETE_OFFSET + NUM_DISCRETE_VALUES
        out.append(-F.log_softmax(row[lo:hi].double(), dim=0)[y - lo])
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------
# Grouped continuous values (gato.modeling.groups), token by token
# ---------------------------------------------------------------------------------------------


def slow_groups(
    ids, local, observation_group: int, action_group: int, keep_separator: bool = True
) -> list[tuple[int, list]]:
    """One sequence's compact positions as (kind, [token indices]), walking the tokens: a
    continuous observation value (local >= 0) joins the open observation group if the previous
    token was one and the group holds fewer than K; likewise actions (no local position).
    Without `keep_separator`, a separator takes no position (it still ends a group)."""
    positions: list[tuple[int, list]] = []
    for t, (i, p) in enumerate(zip(list(ids), list(local), strict=True)):
        if not keep_separator and int(i) == SEPARATOR_ID:
            continue
        value = CONTINUOUS_OFFSET <= int(i) < CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS
        kind = 0
        if value and p >= 0 and observation_group:
            kind, size = 1, observation_group
        elif value and p < 0 and action_group:
            kind, size = 2, action_group
        if kind and positions and positions[-1][0] == kind and positions[-1][1][-1] == t - 1:
            if len(positions[-1][1]) < size:
                positions[-1][1].append(t)
                continue
        positions.append((kind, [t]))
    return positions


def grouped_loss_reference(model, batch) -> torch.Tensor:
    """The grouped model's mean loss from its compact hidden states, target by target: a token
    of an action group from `action_head`'s slot at the position before its group, every other
    target from the full vocabulary head (value targets over their 1,024 ids, `value_loss`
    "range") at the position before it."""
    cfg = model.config
    out = model(**batch.as_dict(), return_logits=False)
    hidden = out.last_hidden_state
    weight = model.output_weight()
    losses = []
    for r in range(batch.input_ids.shape[0]):
        real = batch.attention_mask[r].bool()
        ids = batch.input_ids[r][real].tolist()
        local = batch.local_positions[r][real].tolist()
        loss = batch.loss_mask[r][real].tolist()
        groups = slow_groups(ids, local, cfg.continuous_observation_group,
                             cfg.continuous_action_group, cfg.keep_separator)  # fmt: skip
        for c, (kind, members) in enumerate(groups):
            for slot, t in enumerate(members):
                if not loss[t] or c == 0:
                    continue
                h = hidden[r, c - 1]
                if kind == 2:
                    head = model.action_head
                    if cfg.action_head_skip:  # the input embedding's map, beside the blocks
                        e = out.inputs_embeds[r, c - 1]
                        h = h + head.skip.weight @ e + head.skip.bias
                    flat = head.projection.weight @ h + head.projection.bias
                    logits = flat.view(cfg.continuous_action_group, -1)[slot]
                    span = NUM_CONTINUOUS_BINS // cfg.action_group_bins
                    target = (ids[t] - CONTINUOUS_OFFSET) // span
                elif CONTINUOUS_OFFSET <= ids[t] < CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS:
                    logits = (
                        h @ weight[CONTINUOUS_OFFSET : CONTINUOUS_OFFSET + NUM_CONTINUOUS_BINS].T
                    )
                    target = ids[t] - CONTINUOUS_OFFSET
                elif DISCRETE_OFFSET <= ids[t] < DISCRETE_OFFSET + NUM_DISCRETE_VALUES:
                    logits = h @ weight[DISCRETE_OFFSET : DISCRETE_OFFSET + NUM_DISCRETE_VALUES].T
                    target = ids[t] - DISCRETE_OFFSET
                else:
                    logits, target = h @ weight.T, ids[t]
                losses.append(F.cross_entropy(logits[None].float(), torch.tensor([target])))
    return torch.stack(losses).mean()


def slow_median_class(logits: list[float]) -> int:
    """The first class whose cumulative softmax probability reaches one half, summed in
    Python floats one class at a time."""
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    total, running = sum(weights), 0.0
    for i, w in enumerate(weights):
        running += w / total
        if running >= 0.5:
            return i
    return len(logits) - 1


def slow_mean_class(logits: list[float]) -> int:
    """The class nearest sum_i i p_i under the softmax of `logits`."""
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    return round(sum(i * w for i, w in enumerate(weights)) / sum(weights))


class GroupedReferencePolicy(ReferencePolicy):
    """`ReferencePolicy` for a model with grouped values: the same window rule (in tokens); a
    continuous action read chunk by chunk from `action_head` at the last position
    of the whole context, recomputed for every chunk; each dimension's class
    `slow_median_class` (`PolicyConfig`'s default), the most likely (`decoding="mode"`) or
    `slow_mean_class`."""

    decoding = "median"

    def _span(self, seq: TokenSequence) -> int:
        cfg = self.model.config
        return len(slow_groups(seq.ids, seq.local_positions, cfg.continuous_observation_group,
                               cfg.continuous_action_group, cfg.keep_separator))  # fmt: skip

    def act(self, obs: dict):
        o = self.tokenizer.encode_timestep(obs)
        max_len, n = self.model.config.max_position_embeddings, self.spec.num_tokens
        chunk = self.model.config.continuous_action_group
        # The window in tokens, as training windows are (the grouped positions are fewer).
        need = len(self.prompt) + sum(len(s) for s in self.steps) + len(o) + n
        if need > max_len:
            target = need - max_len + int(self.slack * (max_len - len(self.prompt)))
            dropped = 0
            while self.steps and dropped < target:
                dropped += len(self.steps.pop(0))
        if self.history_steps is not None:
            del self.steps[: max(0, len(self.steps) - self.history_steps)]
        ids: list[int] = []
        while len(ids) < n:
            seq = TokenSequence.concatenate([self.prompt, *self.steps, o, action_tokens(ids)])
            with torch.no_grad():
                out = self.model(**self.inputs(seq), use_cache=False, return_logits=False)
                last = out.last_hidden_state[0, -1], out.inputs_embeds[0, -1]
                logits = self.model.action_head(*last)[: min(chunk, n - len(ids))]
            span = NUM_CONTINUOUS_BINS // self.model.config.action_group_bins
            pick = {
                "mode": lambda row: max(range(len(row)), key=row.__getitem__),
                "median": slow_median_class,
                "mean": slow_mean_class,
            }[self.decoding]
            classes = [pick(row) for row in logits.float().tolist()]
            ids.extend(CONTINUOUS_OFFSET + c * span + span // 2 for c in classes)
        self.steps.append(TokenSequence.concatenate([o, action_tokens(ids)]))
        return self.tokenizer.decode_action(ids, self.spec)
