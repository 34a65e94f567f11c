"""ALE Atari through gymnasium, the JAT convention (see `AtariEnv`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gato.tasks.envs.base import ControlEnv
from gato.tasks.envs.convert import FrameStack
from gato.tasks.registry import TaskSpec


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
            max_num_frames_per_episode=max(108_000, task.episode_limit * frame_skip + noop_max),
            disable_env_checker=True,
        )
        self._env = AtariPreprocessing(
            base,
            noop_max=noop_max,
            frame_skip=frame_skip,
            screen_size=screen_size,
            terminal_on_life_loss=False,
            grayscale_obs=True,
        )
        self._ale = base.unwrapped.ale
        self._frame_skip = frame_skip
        self._stack = stack
        self._frames = FrameStack(stack)
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
        return {"image_observations": self._frames.reset(frame)}

    def _step(self, action: int) -> tuple[dict[str, Any], float, bool, bool]:
        frame, reward, terminated, truncated, _ = self._env.step(action)
        return {"image_observations": self._frames.push(frame)}, reward, terminated, truncated

    def close(self) -> None:
        self._env.close()
