"""Training: the shared loop (engine), optimizer and schedule, distributed helpers,
atomic checkpoints, metrics files and preemption signals."""
from medcl.train.engine import Trainer, TrainConfig, TrainResult
from medcl.train.signals import Preempted

__all__ = ["Trainer", "TrainConfig", "TrainResult", "Preempted"]
