"""Always-on bookkeeping: status.json and history.csv at every epoch end, and the non-finite-loss guard."""

from __future__ import annotations

import csv
import io
import math
import time

import keras

from runner.kernel import run_dir as rd
from runner.kernel.writer import submit


class Progress(keras.callbacks.Callback):
    """Rewrites status.json and history.csv atomically at each epoch end; times epochs for throughput."""

    def __init__(self, run_dir, steps_per_epoch: int, examples_per_epoch: int, resumed_from=None):
        super().__init__()
        self.run_dir, self.steps_per_epoch = run_dir, steps_per_epoch
        self.examples_per_epoch = examples_per_epoch
        self.resumed_from = resumed_from
        self.rows: list[dict] = []
        self.epoch_seconds: list[float] = []
        self._t0 = None
        self._first_begin = None  # of this process: train_s and examples/s are this process's figures
        self._epoch_ends: list[float] = []

    def status(self, state: str, epoch: int, error=None, step: int | None = None) -> dict:
        """`epoch` counts completed epochs; `step` is the global step (default: the end of `epoch`)."""
        return {"state": state, "epoch": epoch, "step": epoch * self.steps_per_epoch if step is None else step,
                "resumed_from": self.resumed_from, "error": error}

    def get_state(self):
        """The history rows so far (the backup's part of this callback), and no arrays."""
        return {"rows": self.rows}, []

    def set_state(self, state: dict, arrays) -> None:
        self.rows = [dict(r) for r in state["rows"]]

    def on_train_begin(self, logs=None):
        self.run_dir.write_json(rd.STATUS, self.status("running", len(self.rows)))

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        if self._first_begin is None:
            self._first_begin = self._t0

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        lr = getattr(self.model.optimizer, "learning_rate", None)
        if lr is not None and "learning_rate" not in row:
            row["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        row["epoch_seconds"] = seconds
        self.rows.append(row)
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        # written beside the training loop (runner/writer.py), from the fresh text and dict built here; not
        # durable (no fsync): the next epoch rewrites both, the backup is what a resume needs
        for name, write, value in ((rd.HISTORY, self.run_dir.write_text, buf.getvalue()),
                                   (rd.STATUS, self.run_dir.write_json, self.status("running", epoch + 1))):
            submit(write, name, value, False, supersede=str(self.run_dir.file(name)))
        # measured after the writes: the throughput figure includes callbacks and artifacts
        self._epoch_ends.append(time.perf_counter())
        self.epoch_seconds.append(self._epoch_ends[-1] - self._t0)

    def examples_per_sec(self) -> float | None:
        """Training examples / wall time from the end of epoch 1 (which holds tracing) to the end of epoch N.

        End to end rather than a sum of epoch timers: the span holds every callback of epochs 2..N (the backup
        runs after this one) and the gaps between epochs.
        """
        if len(self._epoch_ends) < 2:
            return None
        return self.examples_per_epoch * (len(self._epoch_ends) - 1) / (self._epoch_ends[-1] - self._epoch_ends[0])

    def train_s(self) -> float | None:
        """Seconds from the first epoch's begin to the last epoch's end, in this process."""
        return self._epoch_ends[-1] - self._first_begin if self._epoch_ends else None


class NonFiniteLoss(Exception):
    """Raised out of fit at the first non-finite loss, before any epoch-end callback saves the broken model."""

    def __init__(self, where: dict):
        super().__init__(f"non-finite loss at epoch {where['epoch']}, step {where['step']}")
        self.where = where


class NanGuard(keras.callbacks.Callback):
    """Stops at the first non-finite loss, saying where (epoch and step 1-based; checkpoints are kept)."""

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.step_offset = 0  # batches of the epoch done before this fit (a resumed partial epoch)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.step_offset = 0

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = self.step_offset + batch + 1
            raise NonFiniteLoss({"epoch": self._epoch + 1, "step": step, "loss": float(loss),
                                 "global_step": self._epoch * self.steps_per_epoch + step})
