"""ALE Atari through gymnasium, the JAT convention (see `AtariEnv`), and evaluation protocols.

Atari scores depend on how the game is played as much as on the agent: sticky actions, the action
set, no-op starts, the frame cap and whether a lost life ends the episode all move them (Machado et
al. 2018, "Revisiting the Arcade Learning Environment"). `AtariProtocol` names those choices; its
presets (`ATARI_PROTOCOLS`) are the conditions our data was collected under ("data", the default),
JAT's published evaluation ("jat") and sticky actions at Machado et al.'s 0.25 ("sticky").
`atari_protocol(preset, options)` builds one, options as "key=value" texts; every report records
the protocol it was scored under.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from gato.tasks.envs.base import ControlEnv
from gato.tasks.envs.convert import FrameStack
from gato.tasks.registry import TaskSpec


@dataclass(frozen=True)
class AtariProtocol:
    """How an Atari game is played when an agent is scored (the `AtariEnv` options it sets)."""

    sticky_actions: float = 0.0
    """Probability that the emulator repeats the previous action on each frame instead of the
    agent's (ALE's `repeat_action_probability`; Machado et al. 2018 recommend 0.25)."""
    full_action_space: bool = False
    """The 18 ALE actions instead of the game's minimal set (the task's num_values must match)."""
    noop_max: int = 30
    """Up to this many no-op steps after a reset, drawn from the reset seed; 0: none."""
    max_frames: int | None = None
    """Emulator frames before the episode is cut (no-op frames included); None: ALE v5's
    108,000, or the registry's episode limit when that is longer (how our data was collected)."""
    terminal_on_life_loss: bool = False
    """A lost life ends the episode (its return counts up to that life only)."""
    fire_reset: bool = False
    """After a reset press FIRE then action 2, and after a lost life NOOP, FIRE, 2, in games
    whose action 1 is FIRE (JAT's FireResetEnv and EpisodicLifeEnv); their rewards count."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sticky_actions <= 1.0:
            raise ValueError(f"sticky_actions must be in [0, 1], got {self.sticky_actions}")
        if self.noop_max < 0:
            raise ValueError(f"noop_max must be at least 0, got {self.noop_max}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be positive, got {self.max_frames}")

    def env_kwargs(self) -> dict[str, Any]:
        """The `AtariEnv` keyword arguments of this protocol."""
        return {
            "repeat_action_probability": self.sticky_actions,
            "full_action_space": self.full_action_space,
            "noop_max": self.noop_max,
            "max_frames": self.max_frames,
            "terminal_on_life_loss": self.terminal_on_life_loss,
            "fire_reset": self.fire_reset,
        }

    def describe(self) -> str:
        """One line for reports."""
        frames = "108,000 (or the episode limit)" if self.max_frames is None else self.max_frames
        return (
            f"sticky actions {self.sticky_actions:g}, "
            f"{'full' if self.full_action_space else 'minimal'} action set, "
            f"up to {self.noop_max} no-op starts, frame cap {frames}, "
            f"life loss {'ends' if self.terminal_on_life_loss else 'does not end'} the episode"
            + (", FIRE on reset and after a lost life" if self.fire_reset else "")
        )


ATARI_PROTOCOLS: dict[str, AtariProtocol] = {
    # How `python -m gato.data collect` played (AtariEnv's defaults).
    "data": AtariProtocol(),
    # JAT's evaluation (jat/eval/rl/core.py `make_atari`, scripts/eval_jat.py): ALE v5 with
    # frameskip 4 (max-pooled), repeat_action_probability 0, the minimal action set, 1-30 no-op
    # starts, v5's 108,000-frame cap, FIRE after reset and after a lost life, unclipped rewards,
    # and the score is the whole game's (a lost life only resets the wrappers). JAT also caps
    # Montezuma's Revenge at 18,000 frames, and grayscales after resizing where we resize after
    # grayscaling: those two are not reproduced.
    "jat": AtariProtocol(max_frames=108_000, fire_reset=True),
    # Sticky actions at the probability Machado et al. (2018) recommend, the rest as "data".
    "sticky": AtariProtocol(sticky_actions=0.25),
}
"""Named Atari protocols."""


def _option_value(name: str, text: str, kind: Any) -> Any:
    text = text.strip()
    if kind is bool or kind == "bool":
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"Atari protocol option {name}: expected true or false, got {text!r}")
    if name == "max_frames" and text.lower() in ("none", ""):
        return None
    try:
        return float(text) if name == "sticky_actions" else int(text)
    except ValueError:
        raise ValueError(f"Atari protocol option {name}: not a number: {text!r}") from None


def atari_protocol(
    preset: str | AtariProtocol = "data", options: Sequence[str] | Mapping[str, Any] = ()
) -> AtariProtocol:
    """A preset with some options replaced.

    Args:
        preset: a name of `ATARI_PROTOCOLS` or a protocol.
        options: "key=value" texts (`sticky_actions=0.25`, `noop_max=0`, ...) or a mapping.

    An unknown preset or option raises `ValueError` naming it and the valid ones."""
    if isinstance(preset, str):
        if preset not in ATARI_PROTOCOLS:
            raise ValueError(
                f"unknown Atari protocol {preset!r}; protocols: {sorted(ATARI_PROTOCOLS)}"
            )
        base = ATARI_PROTOCOLS[preset]
    elif isinstance(preset, AtariProtocol):
        base = preset
    else:
        raise ValueError(f"Atari protocol must be a name or an AtariProtocol, got {preset!r}")
    kinds = {f.name: f.type for f in fields(AtariProtocol)}
    pairs: list[tuple[str, Any]] = []
    if isinstance(options, Mapping):
        pairs = list(options.items())
    else:
        for option in options:
            if "=" not in option:
                raise ValueError(
                    f"Atari protocol option {option!r} is not key=value; options: {sorted(kinds)}"
                )
            key, value = option.split("=", 1)
            pairs.append((key.strip(), value))
    changes = {}
    for key, value in pairs:
        if key not in kinds:
            raise ValueError(f"unknown Atari protocol option {key!r}; options: {sorted(kinds)}")
        kind = bool if kinds[key] in (bool, "bool") else kinds[key]
        changes[key] = _option_value(key, value, kind) if isinstance(value, str) else value
    return replace(base, **changes)


def protocol_env(
    task: TaskSpec,
    protocol: str | AtariProtocol | None,
    options: Sequence[str] | Mapping[str, Any] = (),
) -> dict[str, Any]:
    """The adapter arguments that play `task` under an Atari protocol (`atari_protocol`; "data"
    when only options are given); {} for neither. Refused for a task of another suite, where
    the protocol would be silently ignored."""
    if protocol is None and not options:
        return {}
    if task.suite != "atari":
        raise ValueError(f"atari protocol: task {task.id!r} is a {task.suite} task, not Atari")
    return atari_protocol(protocol or "data", options).env_kwargs()


def protocol_dict(protocol: AtariProtocol) -> dict[str, Any]:
    """A protocol as JSON-ready data, with its one-line description."""
    return {**asdict(protocol), "description": protocol.describe()}


class AtariEnv(ControlEnv):
    """ALE v5, frame skip with max-pooling, no sticky actions, no-op resets, 84x84x4 stacks.

    Args (the registry's `env` table):
        game: ROM name as ALE spells it in ids ("Pong", "Breakout", "MontezumaRevenge").
        frame_skip: emulator frames per agent step; the last two are max-pooled.
        noop_max: up to this many no-op steps after a reset (seeded), as in DQN evaluation.
        screen_size: side of the square grayscale frame.
        stack: frames per observation, oldest first along the channel axis.
        full_action_space: the 18 ALE actions instead of the game's minimal set.
        repeat_action_probability: sticky actions; 0 for the JAT convention.
        max_frames: ALE's frame cap (see `AtariProtocol.max_frames`).
        terminal_on_life_loss: a lost life ends the episode.
        fire_reset: FIRE after a reset and after a lost life (see `AtariProtocol.fire_reset`).
    """

    def __init__(
        self,
        task: TaskSpec,
        game: str,
        frame_skip: int = 4,
        noop_max: int = 30,
        screen_size: int = 84,
        stack: int = 4,
        full_action_space: bool = False,
        repeat_action_probability: float = 0.0,
        max_frames: int | None = None,
        terminal_on_life_loss: bool = False,
        fire_reset: bool = False,
    ) -> None:
        super().__init__(task)
        import ale_py
        import gymnasium as gym
        from gymnasium.wrappers import AtariPreprocessing

        gym.register_envs(ale_py)
        base = gym.make(
            f"ALE/{game}-v5",
            frameskip=1,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            # ALE v5's own cap (108,000 frames, no-op frames included) stays in force; a
            # longer registry limit raises it. Shorter limits are the adapter's to enforce.
            max_num_frames_per_episode=(
                max(108_000, task.episode_limit * frame_skip + noop_max)
                if max_frames is None
                else max_frames
            ),
            disable_env_checker=True,
        )
        self._env = AtariPreprocessing(
            base,
            noop_max=noop_max,
            frame_skip=frame_skip,
            screen_size=screen_size,
            terminal_on_life_loss=terminal_on_life_loss,
            grayscale_obs=True,
        )
        self._ale = base.unwrapped.ale
        self._frame_skip = frame_skip
        self._stack = stack
        self._frames = FrameStack(stack)
        meanings = base.unwrapped.get_action_meanings()
        # JAT's FireResetEnv applies where action 1 is FIRE and there are at least 3 actions.
        self._fire = fire_reset and len(meanings) >= 3 and meanings[1] == "FIRE"
        self._lives = 0
        n = int(self._env.action_space.n)
        if n != task.action.num_values:
            raise ValueError(
                f"task {task.id!r}: {game} has {n} actions "
                f"({'full' if full_action_space else 'minimal'} set) but the registry says "
                f"num_values = {task.action.num_values}"
            )

    @property
    def action_meanings(self) -> list[str]:
        """ALE's names of the actions, by index."""
        return list(self._env.unwrapped.get_action_meanings())

    def ram(self) -> np.ndarray:
        """The console's 128 bytes of RAM (what the scripted Atari experts read)."""
        return self._ale.getRAM()

    @property
    def ale(self):
        """The emulator (`ale_py.ALEInterface`), for experts that plan with saved states."""
        return self._ale

    @property
    def ale_actions(self) -> list:
        """ALE action of each canonical action index (the minimal or the full set)."""
        return list(self._env.unwrapped._action_set)

    @property
    def frame_skip(self) -> int:
        return self._frame_skip

    def lives(self) -> int:
        return int(self._ale.lives())

    def _reset(self, seed: int | None) -> dict[str, Any]:
        frame, _ = self._env.reset(seed=seed)
        if self._fire:
            for action in (1, 2):
                frame, _, terminated, truncated, _ = self._env.step(action)
                if terminated or truncated:  # as FireResetEnv: start again
                    frame, _ = self._env.reset()
        self._lives = self.lives()
        return {"image_observations": self._frames.reset(frame)}

    def _step(self, action: int) -> tuple[dict[str, Any], float, bool, bool]:
        frame, reward, terminated, truncated, _ = self._env.step(action)
        if self._fire and not (terminated or truncated) and self.lives() < self._lives:
            # A lost life: JAT's EpisodicLifeEnv resets with a no-op, FireResetEnv fires, and
            # the frame stack restarts from the new frame.
            for extra in (0, 1, 2):
                frame, more, terminated, truncated, _ = self._env.step(extra)
                reward += more
                if terminated or truncated:
                    break
            stacked = self._frames.reset(frame)
        else:
            stacked = self._frames.push(frame)
        self._lives = self.lives()
        return {"image_observations": stacked}, reward, terminated, truncated

    def close(self) -> None:
        self._env.close()
