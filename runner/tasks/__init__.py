"""Tasks: what a run learns (classification, regression, segmentation, gan); see registry.py."""

from runner.tasks.registry import TASKS, Task, accepts, task
# registered in this order, which every list derived from TASKS keeps
from runner.tasks import supervised, segmentation, gan  # noqa: F401, I001

__all__ = ["TASKS", "Task", "accepts", "task"]
