"""BabyAI expert: the bot that ships with minigrid, planning on the level's full state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gato.tasks.envs import ControlEnv, require_suite
from gato.tasks.experts.base import Expert, register_expert
from gato.tasks.registry import TaskSpec

_DONE = 6
"""minigrid's `done` action: a no-op in BabyAI, played once the bot has given up."""


class _OutOfBudget(Exception):
    """The bot searched more than its budget for one step."""


@register_expert("babyai-bot")
class BabyAIBot(Expert):
    """minigrid's `BabyAIBot`: a stack of subgoals parsed from the mission, replanned every step
    by breadth-first search over what the agent has seen (a privileged expert: it reads the
    level's grid, not the observation).

    A bot is built at the first step of each episode (it must see the freshly reset level). On
    the rare placements it cannot handle the bot either gives up with an `AssertionError`
    (minigrid lists the levels where that is the rule; the registry gives those no expert) or
    replans forever within one step (seen on UnlockToUnlock); a budget of breadth-first
    searches per step turns the second into the first. The episode then plays `done` until the
    level's time runs out, scores 0 and is dropped by the collection filter. `failures` counts
    those episodes.

    Args:
        searches_per_step: the budget; a solvable step takes a handful of searches.
    """

    def __init__(self, task: TaskSpec, searches_per_step: int = 500) -> None:
        super().__init__(task)
        require_suite("babyai")
        self.searches_per_step = searches_per_step
        self.failures = 0
        self._searches = 0
        self._bot: Any = None
        self._episode: int | None = None
        self._failed = False

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._bot, self._episode, self._failed = None, None, False

    def act(self, observation: Mapping[str, Any], env: ControlEnv) -> int:
        from minigrid.utils.baby_ai_bot import BabyAIBot as Bot
        from minigrid.utils.baby_ai_bot import DisappearedBoxError

        if self._episode != env.episode:  # a new episode: plan on the new level
            self._bot, self._episode, self._failed = (
                self._budgeted(Bot(env.gym_env)),
                env.episode,
                False,
            )
        if self._failed:
            return _DONE
        self._searches = 0
        try:
            return int(self._bot.replan())
        except (AssertionError, DisappearedBoxError, _OutOfBudget):
            self._failed = True
            self.failures += 1
            return _DONE

    def _budgeted(self, bot: Any) -> Any:
        """The bot, its search counted against `searches_per_step` (the bot is not changed
        otherwise: the counting wraps the instance's bound method)."""
        search = bot._breadth_first_search

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._searches += 1
            if self._searches > self.searches_per_step:
                raise _OutOfBudget
            return search(*args, **kwargs)

        bot._breadth_first_search = counted
        return bot
