"""Ready tasks: data + model + divergence + decoder + metric + defaults, one module each.

Each task module registers a :class:`rnnkit.tasks.base.Task` when imported; importing this
package imports them all, so :data:`TASKS` is complete.
"""

from rnnkit.tasks import addition, algorithmic, charlm, digits, embeddings, forecast, pos, sentiment, translate, wordlm  # noqa: F401  (they register themselves)
from rnnkit.tasks.base import TASKS, Task, register

__all__ = ["TASKS", "Task", "register"]
