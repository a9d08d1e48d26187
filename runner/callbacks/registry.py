"""The callback registry and the context callback builders receive."""

from __future__ import annotations

from dataclasses import dataclass

from runner.kernel.registry import Registry

CALLBACKS = Registry("callback")
MAXIMIZED = ("accuracy", "top5_accuracy", "precision", "recall", "f1", "auc")


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


def monitor_mode(monitor: str) -> str:
    from runner.training.metrics import METRICS

    name = monitor[4:] if monitor.startswith("val_") else monitor
    # a metric entry's `direction` fact (the segmentation metrics carry one) decides where the hand list is silent
    maximized = name in MAXIMIZED or (name in METRICS and METRICS.get(name).facts.get("direction") == "max")
    return "max" if maximized else "min"
