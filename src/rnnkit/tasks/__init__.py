"""Ready tasks: data + model + divergence + decoder + metric + defaults, one module each."""

from rnnkit.tasks import addition, charlm, wordlm

TASKS = {m.NAME: m for m in (charlm, wordlm, addition)}

__all__ = ["TASKS"]
