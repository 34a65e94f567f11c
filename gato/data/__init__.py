"""Episodes and corpora: schema, environments, experts, collection, text, mixtures.

Importing this package is cheap: environment libraries (ale-py, dm-control, gymnasium) load
inside the functions that need them.
"""

from gato.data.episodes import EpisodeSchemaError, episode_returns, load_episodes
from gato.tasks.registry import TaskSpec, get_task, list_tasks, load_registry

__all__ = [
    "EpisodeSchemaError",
    "TaskSpec",
    "episode_returns",
    "get_task",
    "list_tasks",
    "load_episodes",
    "load_registry",
]
