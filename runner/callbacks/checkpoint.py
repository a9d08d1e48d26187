"""checkpoint: the best and the last model in checkpoints/, each written atomically."""

from __future__ import annotations

import math
import time
from typing import ClassVar, Literal, Optional

from pydantic import Field

from runner.callbacks.registry import CALLBACKS, monitor_mode
from runner.language.fields import Strict


# last.keras at most this often (and after the final epoch or a stop): with epochs of a fraction of a second,
# saving a .keras file every epoch costs more than the epoch (the backup holds every epoch's state anyway)
LAST_EVERY_S = 10.0


class Checkpoint(Strict):
    ENABLED: ClassVar[bool] = True
    monitor: Optional[str] = Field(None, description="metric that decides the best model")
    mode: Literal["auto", "min", "max"] = "auto"
    save_best: bool = Field(True, description="keep checkpoints/best.keras")
    save_last: bool = Field(True, description="keep checkpoints/last.keras")


def _make(cfg: Checkpoint, ctx):
    import keras

    from runner.kernel import run_dir as rd
    from runner.kernel.writer import save_model, save_snapshot, snapshot  # in the background: the loop copies

    class AtomicCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.monitor = cfg.monitor or ctx.monitor
            self.mode = monitor_mode(self.monitor) if cfg.mode == "auto" else cfg.mode
            self.best = -math.inf if self.mode == "max" else math.inf
            self.best_epoch = None
            self.folder = ctx.run_dir.subdir(rd.CHECKPOINTS)
            self._last_saved_at = -math.inf
            self._pending_last = None  # the newest epoch's snapshot, when last.keras was saved < LAST_EVERY_S ago

        def get_state(self):
            """The best score so far: a resumed run never overwrites best.keras with a worse model."""
            return {"best": self.best, "best_epoch": self.best_epoch}, []

        def set_state(self, state: dict, arrays) -> None:
            self.best, self.best_epoch = float(state["best"]), state["best_epoch"]

        def _better(self, value) -> bool:
            return value > self.best if self.mode == "max" else value < self.best

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            # not durable (no fsync, still atomic): the backup is the file a resume relies on
            if cfg.save_last:
                self._save_last(epoch)
            value = logs.get(self.monitor)
            if epoch < ctx.monitor_from_epoch:  # e.g. still pruning: this model is not the final kind
                return
            if cfg.save_best and value is not None and math.isfinite(value) and self._better(value):
                self.best, self.best_epoch = float(value), epoch + 1
                save_model(self.model, self.folder / rd.BEST, durable=False)

        def _save_last(self, epoch: int) -> None:
            copy = snapshot(self.model)  # at the epoch end: before fit's end swaps EMA weights in
            if copy is None:
                save_model(self.model, self.folder / rd.LAST, durable=False)
                return
            now = time.monotonic()
            if now - self._last_saved_at >= LAST_EVERY_S or epoch + 1 >= self.params["epochs"]:
                save_snapshot(copy, self.folder / rd.LAST, durable=False)
                self._last_saved_at, self._pending_last = now, None
            else:
                self._pending_last = copy

        def on_train_end(self, logs=None):
            # an early stop, or the end of a resumed partial epoch: the newest epoch's model
            if self._pending_last is not None:
                save_snapshot(self._pending_last, self.folder / rd.LAST, durable=False)
                self._last_saved_at, self._pending_last = time.monotonic(), None

    return AtomicCheckpoint()


@CALLBACKS.register("checkpoint", config=Checkpoint)
def build(cfg: Checkpoint, ctx):
    return [_make(cfg, ctx)] if ctx.is_chief else []
