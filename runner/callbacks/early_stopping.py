"""early_stopping: Keras's EarlyStopping with dlrun's default monitor."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field

from runner.callbacks.registry import CALLBACKS, monitor_mode
from runner.config.base import NonNegFloat, NonNegInt, Strict


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

    monitor = cfg.monitor or ctx.monitor
    mode = monitor_mode(monitor) if cfg.mode == "auto" else cfg.mode
    return [keras.callbacks.EarlyStopping(
        monitor=monitor, patience=cfg.patience, min_delta=cfg.min_delta, mode=mode,
        restore_best_weights=cfg.restore_best_weights, start_from_epoch=cfg.start_from_epoch)]
