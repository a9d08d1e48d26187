"""The pruning ramp in steps (no TensorFlow): where it starts and ends, the sparsity at a step, when masks update."""

from __future__ import annotations

import math

POWER = 3  # Zhu & Gupta (2017): prune fast while the network is redundant, slowly near the target


def epochs_of(value: float, epochs: int) -> float:
    """start_epoch/end_epoch in epochs: below 1 a fraction of training, else whole epochs."""
    return value * epochs if value < 1 else value


def ramp(prune, epochs: int, steps_per_epoch: int) -> tuple[int, int]:
    """(begin, end) global steps of the ramp."""
    begin = round(epochs_of(prune.start_epoch, epochs) * steps_per_epoch)
    end = round(epochs_of(prune.end_epoch, epochs) * steps_per_epoch)
    return begin, max(end, begin)


def sparsity_at(step: int, target: float, begin: int, end: int) -> float:
    """Polynomial ramp from 0 at `begin` to `target` at `end`."""
    if step < begin:
        return 0.0
    if step >= end:
        return target
    done = (step - begin) / (end - begin)
    return target * (1.0 - (1.0 - done) ** POWER)


def update_due(previous: int, step: int, begin: int, end: int, frequency: int) -> bool:
    """Whether an update point (begin, begin + k*frequency before end, end) lies in (previous, step]."""
    if step < begin or previous >= end:
        return False
    if previous < begin <= step or previous < end <= step:
        return True
    return (step - begin) // frequency > (previous - begin) // frequency


def monitor_from_epoch(prune, epochs: int, steps_per_epoch: int) -> int:
    """The first epoch (0-based) that ends with the final masks: only these may be picked as the best."""
    _, end = ramp(prune, epochs, steps_per_epoch)
    return max(math.ceil(end / steps_per_epoch) - 1, 0)
