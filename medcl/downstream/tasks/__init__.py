"""The registry of downstream tasks (``medcl finetune --task``): a task is a label reader, a head
and its loss, a linear probe and metrics (the :class:`~medcl.downstream.tasks.base.Task`
protocol). Adding one: its file here, and one ``register(...)`` line below."""
from __future__ import annotations

from medcl.downstream.tasks.base import Task
from medcl.downstream.tasks.classes import Binary, Multiclass, Ordinal
from medcl.downstream.tasks.regression import Regression
from medcl.registry import Registry

TASKS: Registry[Task] = Registry("task", same_again=False)


def register(task: Task) -> Task:
    """Adds ``task`` under ``task.name`` (the name must be new)."""
    return TASKS.add(task.name, task)


def get_task(name: str) -> Task:
    """The registered task ``name`` (ConfigError naming the others when there is none)."""
    return TASKS.lookup(name)


register(Binary())
register(Multiclass())
register(Ordinal())
register(Regression())

__all__ = ["TASKS", "Task", "get_task", "register"]
