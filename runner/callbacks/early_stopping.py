"""early_stopping: Keras's EarlyStopping with dlrun's default monitor."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field

from runner.callbacks.registry import CALLBACKS, monitor_mode
from runner.language.fields import NonNegFloat, NonNegInt, Strict


class EarlyStopping(Strict):
    ENABLED: ClassVar[bool] = False
    monitor: Optional[str] = Field(None, description="metric to watch; default val_<first metric>, or loss")
    patience: NonNegInt = Field(10, description="epochs without improvement before stopping")
    min_delta: NonNegFloat = Field(0.0, description="smallest change that counts as improvement")
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = Field(True, description="end with the best epoch's weights")
    start_from_epoch: NonNegInt = Field(0, description="epochs to wait before monitoring")


@CALLBACKS.register("early_stopping", config=EarlyStopping)
def build(cfg: EarlyStopping, ctx):
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """Keras's EarlyStopping whose counters, best value and best weights survive a backup and resume."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.restored = None  # state to apply after on_train_begin's reset
            self.partial = False  # True during the shortened first fit of a resume: more epochs follow

        def get_state(self):
            best = None if self.best is None else float(self.best)
            state = {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": best,
                     "best_epoch": self.best_epoch, "has_best_weights": self.best_weights is not None}
            return state, list(self.best_weights or [])

        def set_state(self, state: dict, arrays) -> None:
            self.restored = (state, arrays)

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)  # Keras resets the state here, for reuse across fits
            if self.restored is not None:
                state, arrays = self.restored
                self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
                self.best, self.best_epoch = state["best"], state["best_epoch"]
                self.best_weights = list(arrays) if state["has_best_weights"] else None
                self.restored = None

        def on_train_end(self, logs=None):
            # the best weights are restored once, at the real end of training (not between a resume's fits)
            if not self.partial or self.model.stop_training:
                super().on_train_end(logs)

    monitor = cfg.monitor or ctx.monitor
    mode = monitor_mode(monitor) if cfg.mode == "auto" else cfg.mode
    return [ResumableEarlyStopping(
        monitor=monitor, patience=cfg.patience, min_delta=cfg.min_delta, mode=mode,
        restore_best_weights=cfg.restore_best_weights,
        start_from_epoch=max(cfg.start_from_epoch, ctx.monitor_from_epoch))]
