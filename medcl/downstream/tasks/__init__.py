"""The registry of downstream tasks (``medcl finetune --task``): a task is a label reader, a head
and its loss, a linear probe and metrics (the :class:`~medcl.downstream.tasks.base.Task`
protocol). Adding one: its file here, and one ``register(...)`` line below."""
from __future__ import annotations

from medcl.downstream.tasks.base import Task
from medcl.downstream.tasks.classes import Binary, Multiclass, Ordinal
from medcl.downstream.tasks.regression import Regression
from medcl.errors import ConfigError

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Adds ``task`` under ``task.name`` (the name must be new)."""
    if task.name in TASKS:
        raise ValueError(f"a task named {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task ``name`` (ConfigError naming the others when there is none)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}", fix=f"use one of {', '.join(TASKS)}") from None


register(Binary())
register(Multiclass())
register(Ordinal())
register(Regression())

__all__ = ["TASKS", "Task", "get_task", "register"]
