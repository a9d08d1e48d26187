"""The callback registry and the context callback builders receive."""

from __future__ import annotations

from dataclasses import dataclass

from runner.kernel.registry import Registry
from runner.training.metrics import METRICS

CALLBACKS = Registry("callback")


@dataclass
class CallbackContext:
    run_dir: object  # RunDir
    monitor: str  # the default monitor: val_<first metric> with a validation split, else loss
    has_validation: bool
    steps_per_epoch: int
    is_chief: bool = True
    info: object = None  # DataInfo: class names, value range, examples per split
    train_data: object = None  # the batched, augmented training dataset that fit() consumes
    validation_data: object = None  # the batched validation dataset, or None
    monitor_from_epoch: int = 0  # the first epoch (0-based) a best may come from (compress.prune: the ramp's end)


def monitor_mode(monitor: str) -> str:
    """'max' for a metric whose direction is up (accuracy, auc, ...), else 'min' (the loss, errors)."""
    name = monitor.removeprefix("val_")
    return "max" if name in METRICS and METRICS.get(name).direction == "max" else "min"
