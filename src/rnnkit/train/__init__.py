"""Training: the loop, checkpoints, schedules, data parallelism."""

from rnnkit.train.schedules import LRSchedule, teacher_forcing_ratio
from rnnkit.train.trainer import TrainConfig, Trainer

__all__ = ["Trainer", "TrainConfig", "LRSchedule", "teacher_forcing_ratio"]
