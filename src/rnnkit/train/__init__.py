"""Training: the loop, checkpoints, schedules, data parallelism."""

from rnnkit.train.schedules import LRSchedule, ScheduleConfig, teacher_forcing_ratio
from rnnkit.train.trainer import OptimizerConfig, StoppingConfig, TrainConfig, Trainer, evaluate

__all__ = ["Trainer", "TrainConfig", "OptimizerConfig", "ScheduleConfig", "StoppingConfig", "LRSchedule",
           "teacher_forcing_ratio", "evaluate"]
