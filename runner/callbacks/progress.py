"""Always-on bookkeeping: status.json and history.csv at every epoch end, and the non-finite-loss guard."""

from __future__ import annotations

import csv
import io
import math
import time

import keras

from runner import run_dir as rd


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

    def status(self, state: str, epoch: int, error=None) -> dict:
        return {"state": state, "epoch": epoch, "step": epoch * self.steps_per_epoch,
                "resumed_from": self.resumed_from, "error": error}

    def on_train_begin(self, logs=None):
        self.run_dir.write_json(rd.STATUS, self.status("running", self.params.get("initial_epoch", 0) or 0))

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

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
        self.run_dir.write_text(rd.HISTORY, buf.getvalue())
        self.run_dir.write_json(rd.STATUS, self.status("running", epoch + 1))
        # measured after the writes: the throughput figure includes callbacks and artifacts
        self.epoch_seconds.append(time.perf_counter() - self._t0)

    def examples_per_sec(self) -> float | None:
        """Training examples / wall time of epochs 2..N (epoch 1 holds tracing)."""
        steady = self.epoch_seconds[1:]
        if not steady:
            return None
        return self.examples_per_epoch * len(steady) / sum(steady)


class NanGuard(keras.callbacks.Callback):
    """Stops at the first non-finite loss and remembers where (checkpoints are kept)."""

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = {"epoch": self._epoch + 1, "step": batch + 1, "loss": float(loss)}
            self.model.stop_training = True
