"""The per-epoch progress figures, handed to a reporter function from the CLI (library code never prints)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras


@dataclass
class EpochProgress:
    """Where training is: epoch and step 1-based, the epoch's logs once it ended, the seconds to the end."""

    epoch: int
    epochs: int
    step: int
    steps: int
    seconds: float  # since this epoch began
    eta_s: float | None  # of the whole fit; None before there is a rate to go by
    logs: dict = field(default_factory=dict)
    done: bool = False  # the epoch ended: logs hold its figures


class EpochReport(keras.callbacks.Callback):
    """Calls `report(EpochProgress)` after each executed batch group and at each epoch end."""

    def __init__(self, report):
        super().__init__()
        self.report = report
        self._epoch_t0 = 0.0
        self._epoch = 0
        self._epoch_seconds: list[float] = []

    def _per_epoch(self, step: int, steps: int, elapsed: float) -> float | None:
        """Seconds per epoch: of the latest whole epochs (not the first alone: it holds tracing), else this one's
        rate so far."""
        if self._epoch_seconds:
            recent = (self._epoch_seconds[1:] or self._epoch_seconds)[-3:]
            return sum(recent) / len(recent)
        return elapsed / step * steps if step else None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_t0 = epoch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        steps, epochs = self.params.get("steps") or 0, self.params["epochs"]
        step = batch + 1
        if not steps or step >= steps:  # the epoch end reports the last step, with validation done
            return
        elapsed = time.perf_counter() - self._epoch_t0
        per_epoch = self._per_epoch(step, steps, elapsed)
        eta = None if per_epoch is None else max(per_epoch - elapsed, 0.0) + per_epoch * (epochs - self._epoch - 1)
        self.report(EpochProgress(self._epoch + 1, epochs, step, steps, elapsed, eta))

    def on_epoch_end(self, epoch, logs=None):
        steps, epochs = self.params.get("steps") or 0, self.params["epochs"]
        seconds = time.perf_counter() - self._epoch_t0
        self._epoch_seconds.append(seconds)
        figures = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        eta = self._per_epoch(steps, steps, seconds) * (epochs - epoch - 1)
        self.report(EpochProgress(epoch + 1, epochs, steps, steps, seconds, eta, figures, done=True))
