"""`GatoPolicy`: the model as a control policy, one context per environment, KV-cached decoding.

Each environment of a batch (one for `act`, N for the lockstep `act_batch` of a vector
environment) owns one row of the context:

    [prompt: a demonstration's first whole timesteps] [this episode's timesteps ...] [obs, |]

Every step the observation is tokenized (observation tokens, then the separator) and fed on top of
the row's KV cache in one prefill; the action's tokens are then sampled one at a time, each from
logits restricted to the action's valid id range (`ActionSpec.token_range`: the continuous bins,
or the first `num_values` discrete ids), each fed back to get the next one; the last action token
waits and is fed with the next observation. The tokens decode back into the environment's action
(`GatoTokenizer.decode_action`). Sampling is greedy by default (`temperature=0`): deterministic,
reproducible evaluations, and for a small model the most likely bin beats a noisy draw (a grouped
continuous action is read as the median of its bins, `PolicyConfig.action_decoding`); Gato
samples, which `temperature=1` reproduces.

Batching. The rows advance together: one prefill of all rows' observations (left-padded when
their lengths differ, e.g. text missions), then one forward per action token for all rows. When a
row's episode ends, `reset_env` rebuilds that row alone: its prompt goes through the model as a
batch of one, and the resulting keys and values are written into the row, right-aligned, with the
columns before them masked out (the other rows are untouched). Rows are "ragged": a (B, C) mask
marks each row's real tokens, positions are each token's count of real tokens before it, so a
row's logits are those of the row decoded alone. Columns that no row uses any more are squeezed
out from time to time (`KVCache.compact`).

Sliding context. A row never holds more than the model's context (`max_position_embeddings`, the
length of the training sequences): before a step that would overflow, the oldest whole timesteps
after the prompt are dropped (the prompt is kept), plus a little slack so that this happens once
every few steps. Two ways, `PolicyConfig.slide`:
- "shift" (default): the dropped tokens leave the cache and every later key is rotated back by the
  number of dropped tokens (RoPE: a rotation by -d turns position p into p - d exactly), so the
  kept keys sit right after the prompt as if the dropped steps had never been there; positions
  stay below the context. No recomputation; the kept keys and values were computed while the
  dropped tokens were visible, so they carry some of their information (the Transformer-XL style
  memory Gato used at deployment; the prompt at the start plays the part of the "attention sink"
  that keeps such sliding windows stable). Tested: the kept layer-0 keys equal those of the
  shortened context encoded from scratch.
- "recompute": the kept timesteps are fed through the model again on top of the prompt's cached
  keys. The policy then conditions on exactly what a training window shows; tested equal, action
  for action, to a reference that feeds the whole context for every token. A slide costs a
  prefill of the kept history (about 60 ms for the tiny model on one CPU core), so this mode drops
  a quarter of the room at a time.

Speed. Greedy decoding on a dense cache (one row, or rows of equal length) runs a whole action
in one call (`CachedForward.greedy_tokens`: the observation, then every action token fed back,
with no return to the policy between tokens); sampling and ragged rows go token by token.
`PolicyConfig(compile=True)` compiles that call once with symbolic sizes (one graph for every
cache length; the CPU's fastest path, after ~30-90 s of compilation). The fast path for
accelerators (`PolicyConfig.static_cache`): the same cache with a fixed capacity, every step a
fixed-shape function of tensors (the write position, the mask and the positions are tensors, not
Python numbers), which `torch.cuda.CUDAGraph` captures once per step shape (a prefill and a
one-token step) and replays; optionally `torch.compile`d first. On the CPU it runs eagerly
(tested equal to the dynamic path).
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gato.inference.cache import KVCache
from gato.inference.eager import CachedForward
from gato.inference.sampling import ORDERED_DECODINGS, ordered_classes, sample_tokens
from gato.inference.static import StaticDecoder
from gato.modeling.groups import compact_length
from gato.modeling.model import GatoModel
from gato.policy.environment import is_canonical
from gato.policy.loading import load_pretrained, task_tokenizer
from gato.policy.prompts import demonstration_prompt
from gato.schema import OBSERVATION_COLUMNS, ActionSpec
from gato.tokens.batch import GatoBatch, TokenSequence, collate, mask_actions
from gato.tokens.tokenizer import GatoTokenizer
from gato.vocab import ACTION_MASK_ID, NO_LOCAL_POSITION

__all__ = ["GatoPolicy", "PolicyConfig", "prompt_budget"]

SPAN_PATTERNS = 256
"""Token patterns whose position counts a grouped policy keeps (a prompt, each kind of step)."""


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class PolicyConfig:
    """How the policy prompts, samples, slides its context and runs."""

    temperature: float = 0.0
    """Softmax temperature of action sampling; 0 is greedy (the default: reproducible, and
    better for small models): the most likely token, a grouped continuous action as
    `action_decoding` reads it. Gato samples: 1.0."""
    action_decoding: Literal["mode", "median", "mean"] = "median"
    """At temperature 0, how a grouped continuous action's classes are read: the median of the
    head's distribution over a dimension's ordered bins (`median_classes`), the most likely
    class (mode), or the class of its mean. A clone's distribution can hold a narrow spike (the
    expert's clipped torque, always one bin) beside mass spread over neighbouring bins: the
    mode then reads the spike where most of the mass says otherwise. Over the main job's
    checkpoints the median held pendulum and the swing-up where the mode lost them
    (docs/control_learning.md, "The action read as its median"). Discrete actions and sampling
    are not affected."""
    prompt_tokens: int | None = None
    """Most tokens of the demonstration prompt (whole timesteps); default half the context, the
    training mixture's prompt budget (`MixtureConfig.prompt_fraction`)."""
    prompt_from: Literal["start", "end"] = "start"
    """Take the demonstration's first timesteps (Gato) or its last ones (goal conditioning)."""
    slide: Literal["recompute", "shift"] = "shift"
    """How a full context drops its oldest timesteps (see the module docstring): "shift" keeps
    the cached keys (fast), "recompute" feeds the kept timesteps again (exact)."""
    slide_slack: float | None = None
    """When sliding, also drop this fraction of the room after the prompt, so that the work of
    a slide comes once every few steps rather than every step. Default: 0.25 for "recompute"
    (a slide feeds the kept timesteps again), 0.05 for "shift" (a slide moves the cache)."""
    compact_fraction: float = 0.25
    """Squeeze unused cache columns out once they exceed this fraction of the context."""
    static_cache: bool = False
    """Fixed-capacity cache and fixed-shape steps (the CUDA graph path; see `StaticDecoder`)."""
    cuda_graphs: bool = False
    """With `static_cache` on a CUDA device: capture each step shape once, then replay."""
    compile: bool = False
    """`torch.compile` the forward: with `static_cache`, the fixed-shape step (before graph
    capture); without, the eager path's flattened forward with symbolic sizes, so one graph
    serves every cache length (the CPU's fastest path). The first steps pay the compilation."""
    seed: int = 0
    """Seed of the sampling generator."""
    history_steps: int | None = None
    """Most past timesteps the context keeps after the prompt (the oldest leave first, one
    per step once full). A model trained on windows of W timesteps acts from the same view with
    W - 1: a clone shown a long history can fit its data better and act worse
    (docs/control_learning.md). None: the model's `GatoConfig.policy_history_steps` (set by
    training with `control_window_steps`; None there: as many as the context holds)."""
    hide_actions: bool | None = None
    """Feed every action of the context (the episode's, and the prompt's where they are loss
    targets) as `ACTION_MASK_ID`, as training with `action_dropout=1` showed them
    (`gato.tokens.batch.mask_actions`); the model then conditions on observations alone. None:
    the model's `GatoConfig.hide_context_actions` (set by such training)."""

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"PolicyConfig.temperature must be >= 0, got {self.temperature}")
        if self.action_decoding not in ORDERED_DECODINGS:
            raise ValueError(
                "PolicyConfig.action_decoding must be mode, median or mean, got "
                f"{self.action_decoding!r}"
            )
        if self.prompt_tokens is not None and self.prompt_tokens < 0:
            raise ValueError(f"PolicyConfig.prompt_tokens must be >= 0, got {self.prompt_tokens}")
        if self.prompt_from not in ("start", "end"):
            raise ValueError(f"PolicyConfig.prompt_from must be start or end: {self.prompt_from!r}")
        if self.slide not in ("recompute", "shift"):
            raise ValueError(f"PolicyConfig.slide must be recompute or shift, got {self.slide!r}")
        if not 0 <= self.slack() < 1 or not 0 < self.compact_fraction <= 1:
            raise ValueError("PolicyConfig: slide_slack in [0, 1), compact_fraction in (0, 1]")
        if self.cuda_graphs and not self.static_cache:
            raise ValueError("PolicyConfig: cuda_graphs needs static_cache=True")
        if self.history_steps is not None and (
            isinstance(self.history_steps, bool)
            or not isinstance(self.history_steps, int)
            or self.history_steps < 0
        ):
            raise ValueError(
                "PolicyConfig.history_steps must be None or an int >= 0, got "
                f"{self.history_steps!r}"
            )

    def slack(self) -> float:
        """`slide_slack`, or the default of the slide mode."""
        if self.slide_slack is not None:
            return self.slide_slack
        return 0.25 if self.slide == "recompute" else 0.05


def _empty_sequence(tokenizer: GatoTokenizer) -> TokenSequence:
    return TokenSequence(
        ids=np.zeros(0, np.int64),
        local_positions=np.zeros(0, np.int64),
        loss_mask=np.zeros(0, bool),
        patches=tokenizer._no_patches(),
    )


# ---------------------------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One environment's context: the prompt, the episode's timesteps in the window, the token
    that waits to be fed (the last action token), and how many tokens the cache holds."""

    prompt: TokenSequence
    history: deque[TokenSequence] = field(default_factory=deque)
    history_tokens: int = 0
    pending: TokenSequence | None = None
    in_cache: int = 0
    steps: int = 0

    def context(self) -> list[TokenSequence]:
        return [self.prompt, *self.history]


def prompt_budget(context: int, config: PolicyConfig) -> int:
    """Tokens the prompt may take: `config.prompt_tokens`, default half the context."""
    return config.prompt_tokens if config.prompt_tokens is not None else context // 2


class GatoPolicy:
    """The model as an agent: `reset`, then `act(observation) -> action` every step.

    A plain object any environment loop can use; it does not own the environment. For N
    environments stepped in lockstep, build it with `num_envs=N` and call `act_batch`; restart a
    finished environment's context with `reset_env(i)`, retire one with `remove_envs`.

    Args:
        model: a `GatoModel` (put in eval mode).
        tokenizer: the tokenizer the model was trained with.
        action_spec: the task's actions (`TaskSpec.action`).
        prompt: the default prompt of every episode (a tokenized demonstration), or None.
        config: sampling, sliding and speed options.
        num_envs: rows of the batch.
        task: the task (`TaskSpec`) the policy plays, if known: `act` then also takes the
            observation as the task's environment returns it and answers in that
            environment's action space and bounds (see `gato.policy.environment`).
    """

    def __init__(
        self,
        model: GatoModel,
        tokenizer: GatoTokenizer,
        action_spec: ActionSpec,
        prompt: TokenSequence | None = None,
        config: PolicyConfig | None = None,
        num_envs: int = 1,
        task: Any = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.action_spec = action_spec
        self.config = config or PolicyConfig()
        if self.config.hide_actions is None:
            hide = bool(getattr(model.config, "hide_context_actions", False))
            self.config = replace(self.config, hide_actions=hide)
        if self.config.history_steps is None:
            history = getattr(model.config, "policy_history_steps", None)
            self.config = replace(self.config, history_steps=history)
        self.max_length = model.config.max_position_embeddings
        self.num_action_tokens = action_spec.num_tokens
        cfg = model.config
        self.grouped = cfg.grouped
        # {token pattern: positions}: a task's observation chunks repeat one pattern of ids and
        # local positions step after step, and counting its positions (`compact_length`) cost
        # about an eighth of a frame-group policy step.
        self._spans: dict[tuple[str, bytes, str, bytes], int] = {}
        # Grouped actions: `action_chunk` dimensions per forward pass (0: one token each).
        chunk = cfg.continuous_action_group if action_spec.kind == "continuous" else 0
        self.action_chunk = chunk
        n = self.num_action_tokens
        # Positions an action takes in the context, and the tokens of its last one (fed with
        # the next observation).
        self.action_units = -(-n // chunk) if chunk else n
        self.last_unit_tokens = n - (self.action_units - 1) * chunk if chunk else 1
        if self.grouped and self.config.static_cache:
            # A speed option, not a behaviour: the eager cache gives the same actions.
            warnings.warn(
                "PolicyConfig.static_cache does not support grouped values or frames (the "
                "model's continuous_observation_group / continuous_action_group / frame_group): "
                "using the eager cache",
                stacklevel=2,
            )
            self.config = replace(self.config, static_cache=False, cuda_graphs=False)
        if self.action_units + 2 > self.max_length:
            raise ValueError(
                f"an action of {self.action_units} positions does not fit the model's context "
                f"of {self.max_length}"
            )
        self.device = model.lm_head.weight.device
        lo, hi = action_spec.token_range()
        self.action_lo = lo
        # Logits of the valid action ids only: the same numbers as the full head then masked to
        # the range, at 1/33 of the head's cost for continuous actions.
        # The head is read once here: with `value_head="embedding"` it is computed, not a view.
        self.head = model.output_weight().detach()  # (V, D)
        self.action_head = self.head[lo:hi]  # (n, D)
        self.generator = torch.Generator(device=self.device).manual_seed(self.config.seed)
        self.default_prompt = prompt if prompt is not None else _empty_sequence(tokenizer)
        self._check_prompt(self.default_prompt)
        # One row stays dense and never holds more than the context; ragged rows need room for
        # masked columns until the next compaction (the dynamic cache grows if ever needed).
        capacity = self.max_length if num_envs == 1 else self.max_length + self.max_length // 2
        self.cache = KVCache.for_model(model, num_envs, capacity)
        self.decoder = (
            StaticDecoder(model, self.cache, self.config.cuda_graphs, self.config.compile)
            if self.config.static_cache
            else None
        )
        compile_eager = self.config.compile and not self.config.static_cache
        self.forward_fn = CachedForward(model, 2 * capacity, compile=compile_eager)
        self.rows = [_Row(self.default_prompt) for _ in range(num_envs)]
        self.task = task
        if task is not None and task.action.num_tokens != action_spec.num_tokens:
            raise ValueError(
                f"task {task.id!r} has actions of shape {task.action.shape}, the action spec "
                f"{action_spec.shape}"
            )
        # Environment-form observations, one converter per row (Atari stacks frames per row).
        self._converters: list[Any] = [None] * num_envs
        self._discrete_start = 0
        self._action_bounds: tuple[np.ndarray, np.ndarray] | None = None
        self._prompt_caches: dict[int, tuple[TokenSequence, KVCache]] = {}
        self.reset()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        task: Any = None,
        *,
        action_spec: ActionSpec | None = None,
        prompt: TokenSequence | Literal["demonstration"] | None = "demonstration",
        config: PolicyConfig | None = None,
        num_envs: int = 1,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> GatoPolicy:
        """A policy for `task` (an id or a `TaskSpec`) from a model, checkpoint or run folder.

        `prompt="demonstration"` prompts every episode with the task's best dataset episode (its
        first whole timesteps within `config.prompt_tokens`); None: no prompt. Without a task,
        give the `action_spec` (and a prompt, if any).
        """
        model, tokenizer = load_pretrained(path, device=device, dtype=dtype)
        config = config or PolicyConfig()
        if task is not None and isinstance(task, str):
            from gato.tasks.registry import get_task

            task = get_task(task)
        if task is not None:
            tokenizer = task_tokenizer(tokenizer, model.config, task)
        elif model.config.observation_statistics:
            raise ValueError(
                "this model tokenizes each task's observations standardised by its training "
                f"statistics (tasks {sorted(model.config.observation_statistics)}): "
                "GatoPolicy.from_pretrained needs task="
            )
        if action_spec is None:
            if task is None:
                raise ValueError("GatoPolicy.from_pretrained needs a task or an action_spec")
            action_spec = task.action
        if isinstance(prompt, str):
            if prompt != "demonstration":
                raise ValueError(
                    f"prompt must be a TokenSequence, 'demonstration' or None: {prompt!r}"
                )
            budget = prompt_budget(model.config.max_position_embeddings, config)
            prompt = (
                demonstration_prompt(task, tokenizer, budget, config.prompt_from) if task else None
            )
        return cls(model, tokenizer, action_spec, prompt, config, num_envs, task)

    def for_env(self, env: Any):
        """`env` (a gymnasium environment of the policy's task) bound to this policy: a
        `gymnasium.Wrapper` whose `reset` also restarts the policy and whose `act(observation)`
        gives the environment's action (see `gato.policy.gym_wrapper.PolicyWrapper`)."""
        from gato.policy.gym_wrapper import PolicyWrapper

        return PolicyWrapper(env, self)

    def bind_environment(
        self, discrete_start: int = 0, action_bounds: tuple[Any, Any] | None = None
    ) -> None:
        """Facts of the bound environment beyond the task's spec: the `start` of a Discrete
        observation space, and continuous action bounds (used when the registry gives none)."""
        self._discrete_start = int(discrete_start)
        self._action_bounds = action_bounds
        self._converters = [None] * self.num_envs

    # -- public API ------------------------------------------------------------------------------

    @property
    def num_envs(self) -> int:
        return len(self.rows)

    @torch.no_grad()
    def reset(self, prompt: TokenSequence | None = None) -> None:
        """Start a new episode in every row, with `prompt` (default: the policy's prompt)."""
        self.cache.clear()
        for i in range(self.num_envs):
            self.reset_env(i, prompt)

    @torch.no_grad()
    def reset_env(self, index: int, prompt: TokenSequence | None = None) -> None:
        """Start a new episode in row `index` (its environment was reset): rebuild its context."""
        if prompt is not None:
            self._check_prompt(prompt)
        self.rows[index] = _Row(prompt if prompt is not None else self.default_prompt)
        if index < len(self._converters) and self._converters[index] is not None:
            self._converters[index].reset()
        self._rebuild(index)

    @torch.no_grad()
    def act(self, observation: Any) -> Any:
        """One environment: observation -> action.

        The canonical dict ({JAT column: value}, what `gato.tasks.envs` adapters return) gives
        the canonical action (what they take: an int, or floats in [-1, 1]). A policy with a
        task also takes the observation exactly as the task's environment returns it and then
        gives the action in that environment's own space and bounds.
        """
        if self.num_envs != 1:
            raise ValueError(
                f"act is for one environment; this policy has {self.num_envs}: use act_batch"
            )
        return self.act_batch([observation])[0]

    @torch.no_grad()
    def act_batch(self, observations: Sequence[Any]) -> list[Any]:
        """One observation per row -> one action per row; all rows advance one timestep.
        Each observation is canonical or the environment's own, as in `act`."""
        if len(observations) != self.num_envs:
            raise ValueError(
                f"act_batch got {len(observations)} observations for {self.num_envs} environments"
            )
        native = [self.task is not None and not is_canonical(o) for o in observations]
        observations = [
            self._converter(i)(o) if n else o
            for i, (o, n) in enumerate(zip(observations, native, strict=True))
        ]
        encoded = [self._encode(o) for o in observations]
        for i, obs in enumerate(encoded):
            self._make_room(i, obs)
        self._maybe_compact()
        chunks = [
            obs if row.pending is None else TokenSequence.concatenate([row.pending, obs])
            for row, obs in zip(self.rows, encoded, strict=True)
        ]
        batch = self._hidden(collate(chunks, padding_side="left"))
        ids = self._action_tokens(batch).cpu().numpy()  # (B, n)
        actions = []
        for row, obs, chunk, action_ids in zip(self.rows, encoded, chunks, ids, strict=True):
            row.in_cache += self._span(chunk) + self.action_units - 1
            action = self._action_sequence(action_ids)
            row.history.append(TokenSequence.concatenate([obs, action]))
            row.history_tokens += len(row.history[-1])
            row.pending = action.slice(len(action) - self.last_unit_tokens, len(action))
            row.steps += 1
            actions.append(self.tokenizer.decode_action(action_ids, self.action_spec))
        return [self._env_action(a) if n else a for a, n in zip(actions, native, strict=True)]

    @torch.no_grad()
    def remove_envs(self, keep: Sequence[int]) -> None:
        """Keep only rows `keep` (in that order): environments that have finished leave."""
        keep = list(keep)
        if not keep:
            raise ValueError("remove_envs: keep at least one environment")
        self.rows = [self.rows[i] for i in keep]
        self._converters = [self._converters[i] for i in keep]
        self.cache.select_rows(keep)
        if self.decoder is not None:  # captured graphs hold the old buffers
            self.decoder.reset_graphs()

    def context(self, index: int = 0) -> TokenSequence:
        """The tokens row `index` conditions on: prompt, timesteps in the window (for tests and
        inspection; the last action token is included although it waits to be fed)."""
        return TokenSequence.concatenate(self.rows[index].context())

    # -- internals -------------------------------------------------------------------------------

    def _span(self, tokens: TokenSequence) -> int:
        """Positions `tokens` take in the cache (fewer than tokens with grouped values or
        frames)."""
        if not self.grouped:
            return len(tokens)
        ids, local = tokens.ids, tokens.local_positions
        # With the dtypes: equal bytes of other dtypes are other tokens.
        key = (ids.dtype.str, ids.tobytes(), local.dtype.str, local.tobytes())
        span = self._spans.get(key)
        if span is None:
            cfg = self.model.config
            span = compact_length(
                ids,
                local,
                cfg.continuous_observation_group,
                cfg.continuous_action_group,
                cfg.keep_separator,
                cfg.frame_group,
            )
            if len(self._spans) >= SPAN_PATTERNS:  # the oldest pattern makes room
                self._spans.pop(next(iter(self._spans)))
            self._spans[key] = span
        return span

    def _check_prompt(self, prompt: TokenSequence) -> None:
        if self._span(prompt) + self.action_units + 2 > self.max_length:
            raise ValueError(
                f"a prompt of {len(prompt)} tokens leaves no room for a timestep in the model's "
                f"context of {self.max_length}; use a shorter prompt (PolicyConfig.prompt_tokens)"
            )

    def _converter(self, index: int):
        """Row `index`'s converter of environment-form observations (made on first use)."""
        if self._converters[index] is None:
            from gato.tasks.envs.convert import ObservationConverter

            self._converters[index] = ObservationConverter(self.task, self._discrete_start)
        return self._converters[index]

    def _env_action(self, action: Any) -> Any:
        """A canonical action -> the environment's (the task's bounds, or the bound env's)."""
        from gato.tasks.envs.convert import to_env_action

        bounds = self._action_bounds if self.action_spec.low is None else None
        return to_env_action(action, self.action_spec, bounds)

    def _encode(self, observation: Mapping[str, Any]) -> TokenSequence:
        """Observation tokens and the separator; errors name the problem."""
        if not isinstance(observation, Mapping):
            from gato.tasks.envs.convert import describe

            raise ValueError(
                f"an observation must be the canonical dict {{JAT column: value}} with keys "
                f"among {tuple(OBSERVATION_COLUMNS)}, got {describe(observation)}; a policy "
                "made for a task (GatoPolicy.from_pretrained(path, task=...)) also takes the "
                "observation as the task's environment returns it"
            )
        obs = self.tokenizer.encode_timestep(observation)
        observed = int((obs.local_positions >= 0).sum())
        if observed > self.model.config.max_local_positions:
            raise ValueError(
                f"an observation of {observed} tokens exceeds the model's "
                f"max_local_positions={self.model.config.max_local_positions}"
            )
        if obs.patches.shape[0] and obs.patches.shape[1] != self.model.config.image_channels:
            raise ValueError("observation images do not match the model's image channels")
        return obs

    def _hidden(self, batch: GatoBatch) -> GatoBatch:
        """What the model is fed of a batch: its actions hidden when `hide_actions` (their ids
        then in `labels`, which a grouped model's layout reads), else the batch itself."""
        return mask_actions(batch, 1.0) if self.config.hide_actions else batch

    def _feedback(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A sampled action piece fed back within the step -> (input ids, labels or None)."""
        if not self.config.hide_actions:
            return ids, None
        return torch.full_like(ids, ACTION_MASK_ID), ids

    def _action_sequence(self, ids: np.ndarray) -> TokenSequence:
        n = len(ids)
        return TokenSequence(
            ids=np.asarray(ids, dtype=np.int64),
            local_positions=np.full(n, NO_LOCAL_POSITION, np.int64),
            loss_mask=np.ones(n, bool),
            patches=self.tokenizer._no_patches(),
        )

    def _make_room(self, index: int, observation: TokenSequence) -> None:
        """Drop the oldest timesteps of row `index` if this step would overflow the context, or
        if the row holds more than `history_steps` past timesteps.

        The window is counted in tokens, as training windows are: a model with grouped values
        holds fewer positions in its cache, but conditions on as many timesteps as it was trained
        on (a window of positions would show it several times the history it learnt from)."""
        row = self.rows[index]
        limit = self.config.history_steps
        excess = 0 if limit is None else max(0, len(row.history) - limit)
        observation_tokens = len(observation)
        need = len(row.prompt) + row.history_tokens + observation_tokens + self.num_action_tokens
        if need <= self.max_length and not excess:
            return
        prompt = len(row.prompt)
        target = 0
        if need > self.max_length:
            if prompt + observation_tokens + self.num_action_tokens > self.max_length:
                raise ValueError(
                    f"a prompt of {prompt} tokens and an observation of {observation_tokens} "
                    f"tokens leave no room for a {self.num_action_tokens}-token action in the "
                    f"context of {self.max_length}"
                )
            slack = int(self.config.slack() * (self.max_length - prompt))
            target = need - self.max_length + slack
        dropped = positions = steps = 0
        while row.history and (dropped < target or steps < excess):
            step = row.history.popleft()
            dropped += len(step)
            positions += self._span(step)
            steps += 1
        row.history_tokens -= dropped
        if self.config.slide == "recompute" or not row.history:
            # No kept timestep (or recomputation asked for): rebuild from the tokens.
            row.pending = None
            self._rebuild(index)
            return
        theta = self.model.config.rope_theta
        if self.num_envs == 1 and self.cache.dense:
            # One row, no holes: column = rank; move the tail left (the cache stays dense and
            # attention needs no mask).
            self.cache.remove_columns(self._span(row.prompt), positions, theta)
        else:
            self.cache.drop_tokens(index, self._span(row.prompt), positions, theta)
        row.in_cache -= positions

    def _rebuild(self, index: int) -> None:
        """Feed row `index`'s context through the model alone and install it in the cache. The
        prompt's keys and values are computed once per prompt and reused (nothing before the
        prompt can change them); only the timesteps after it are fed again."""
        row = self.rows[index]
        row.pending = None
        source = self._prompt_keys(row.prompt)
        if row.history:
            source = self._encode_context(TokenSequence.concatenate(list(row.history)), source)
        if self.num_envs == 1:
            self.cache.clear()  # one row: nothing else to keep
        self.cache.install_row(index, source)
        row.in_cache = source.length

    def _prompt_keys(self, prompt: TokenSequence) -> KVCache:
        """The one-row cache of a prompt, memoised per prompt object."""
        key = id(prompt)
        if key not in self._prompt_caches:
            if len(self._prompt_caches) >= 8:  # per-episode prompts: keep the default one only
                default = self._prompt_caches.get(id(self.default_prompt))
                self._prompt_caches = {} if default is None else {id(self.default_prompt): default}
            self._prompt_caches[key] = (prompt, self._encode_context(prompt))
        return self._prompt_caches[key][1]

    def _encode_context(self, tokens: TokenSequence, prefix: KVCache | None = None) -> KVCache:
        """A one-row cache holding `prefix`'s keys and values then those of `tokens`."""
        start = 0 if prefix is None else prefix.length
        span = self._span(tokens)
        source = KVCache.for_model(self.model, 1, max(start + span, 1))
        if prefix is not None and start:
            for i in range(len(source.keys)):
                source.keys[i][:, :, :start] = prefix.keys[i][:, :, :start]
                source.values[i][:, :, :start] = prefix.values[i][:, :, :start]
            source.advance(start)
        if len(tokens):
            batch = self._hidden(collate([tokens]))
            self.model(
                input_ids=batch.input_ids.to(self.device),
                labels=None if batch.labels is None else batch.labels.to(self.device),
                local_positions=batch.local_positions.to(self.device),
                patches=batch.patches.to(self.device),
                patch_positions=batch.patch_positions.to(self.device),
                past_key_values=source,
                use_cache=True,
                return_logits=False,
            )
            source.advance(span)
        source.mask[:, : source.length] = True
        return source

    def _maybe_compact(self) -> None:
        """Squeeze the cache once unused columns pass `compact_fraction` of the context."""
        cache = self.cache
        if cache.dense:
            return
        waste = cache.length - int(cache.real_counts().max())
        if waste > self.config.compact_fraction * self.max_length:
            cache.compact()

    def _action_tokens(self, batch: Any) -> torch.Tensor:
        """Feed the collated observations, then sample every action token -> (B, n) ids on the
        device (tokens stay there until the action is complete: each feeds the next step
        without a device-to-host round trip, one synchronisation per environment step)."""
        new_mask = batch.attention_mask.bool()
        n = self.num_action_tokens
        cache, device = self.cache, self.device
        if (
            self.decoder is None
            and not self.grouped
            and self.config.temperature == 0
            and not self.config.hide_actions
            and cache.dense
            and bool(new_mask.all())
        ):
            # Greedy on a dense cache: the observation and every action token in one call.
            b, length = batch.input_ids.shape
            cache.reserve(length + n - 1)
            cache.open_columns(torch.ones(b, length + n - 1, dtype=torch.bool))
            lo, hi = self.action_spec.token_range()
            tokens = self.forward_fn.greedy_tokens(
                cache,
                batch.input_ids.to(device),
                self.head,
                lo,
                hi,
                n,
                batch.local_positions.to(device),
                batch.patches.to(device),
                batch.patch_positions.to(device),
            )
            cache.advance(length + n - 1)
            return tokens
        inputs = (
            batch.input_ids,
            new_mask,
            batch.local_positions,
            batch.patches,
            batch.patch_positions,
            batch.labels,
        )
        if self.action_chunk:
            return self._grouped_action(*self._grouped_forward(*inputs))
        hidden = self._forward(*inputs)
        tokens = torch.empty(self.num_envs, n, dtype=torch.long).to(device)
        for j in range(n):
            if j > 0:
                fed, labels = self._feedback(tokens[:, j - 1 : j])
                hidden = self._forward(fed, None, None, None, None, labels)
            logits = hidden @ self.action_head.T  # (B, n)
            picked = sample_tokens(logits, self.config.temperature, self.generator)
            tokens[:, j] = picked + self.action_lo
        return tokens

    def _grouped_action(self, hidden: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """Every dimension of a continuous action from the grouped head, `action_chunk` at a
        time (each chunk but the last fed back to predict the next) -> (B, n) ids. `hidden`
        and `embedded`: (B, D) the last position's final hidden state and input embedding."""
        n, chunk = self.num_action_tokens, self.action_chunk
        parts: list[torch.Tensor] = []
        for start in range(0, n, chunk):
            if start:
                fed, labels = self._feedback(parts[-1])
                hidden, embedded = self._grouped_forward(fed, None, None, None, None, labels)
            size = min(chunk, n - start)
            head = self.model.action_head
            logits = head(hidden, embedded)[:, :size]  # (B, size, bins)
            picked = ordered_classes(
                logits.reshape(-1, head.bins),
                self.config.temperature,
                self.config.action_decoding,
                self.generator,
            )
            parts.append(head.token_ids(picked.view(-1, size)))
        return torch.cat(parts, dim=1)

    def _forward(
        self,
        input_ids: torch.Tensor,
        new_mask: torch.Tensor | None,
        local_positions: torch.Tensor | None,
        patches: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Feed (B, L) new tokens on top of the cache -> (B, D) final hidden state of the last.
        `labels`: the true ids where `input_ids` hides actions (a grouped layout reads them)."""
        cache = self.cache
        if self.grouped:
            return self._grouped_forward(
                input_ids, new_mask, local_positions, patches, patch_positions, labels
            )[0]
        b, length = input_ids.shape
        cache.reserve(length, grow=self.decoder is None)
        cache.open_columns(new_mask if new_mask is not None else torch.ones(b, length, dtype=bool))
        if self.decoder is not None:
            hidden = self.decoder(input_ids, local_positions, patches, patch_positions)
            cache.advance(length)
            return hidden
        device = self.device
        hidden = self.forward_fn(
            cache,
            input_ids.to(device),
            None if local_positions is None else local_positions.to(device),
            None if patches is None else patches.to(device),
            None if patch_positions is None else patch_positions.to(device),
        )
        cache.advance(length)
        return hidden

    def _grouped_forward(
        self,
        input_ids: torch.Tensor,
        new_mask: torch.Tensor | None,
        local_positions: torch.Tensor | None,
        patches: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`_forward` with grouped values: the new tokens compacted (rows end together, as the
        left-padded batch does) and fed as their (B, L', D) embeddings -> ((B, D) final hidden
        state, (B, D) input embedding) of the last position."""
        device = self.device

        def on_device(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        x, layout = self.model.embed(
            input_ids.to(device),
            on_device(local_positions),
            on_device(patches),
            on_device(patch_positions),
            on_device(new_mask),
            on_device(labels),
            right_align=True,
        )
        length = x.shape[1]
        self.cache.reserve(length)
        self.cache.open_columns(layout.real.cpu())
        hidden = self.forward_fn(self.cache, input_ids, embedded=x)
        self.cache.advance(length)
        return hidden, x[:, -1]
