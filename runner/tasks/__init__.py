"""Tasks: what a run learns (classification, regression, segmentation, gan); see registry.py."""

from runner.tasks.registry import TASKS, Task, accepts, task
from runner.tasks import gan, segmentation, supervised  # noqa: F401  (register)

__all__ = ["TASKS", "Task", "accepts", "task"]
