"""reduce_on_plateau: Keras's ReduceLROnPlateau with dlrun's default monitor; needs a constant learning rate
(spec/checks.py refuses it beside a schedule)."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field

from runner.callbacks.registry import CALLBACKS, monitor_mode
from runner.language.fields import NonNegFloat, NonNegInt, PositiveInt, Strict


class ReduceOnPlateau(Strict):
    ENABLED: ClassVar[bool] = False
    monitor: Optional[str] = Field(None, description="metric to watch; default val_<first metric>, or loss")
    factor: float = Field(0.1, gt=0, lt=1, description="new rate = rate * factor")
    patience: PositiveInt = Field(5, description="epochs without improvement before lowering the rate")
    min_delta: NonNegFloat = Field(1e-4, description="smallest change that counts as improvement")
    cooldown: NonNegInt = Field(0, description="epochs to wait after a reduction before watching again")
    min_lr: NonNegFloat = Field(0.0, description="lower bound on the learning rate")
    mode: Literal["auto", "min", "max"] = "auto"


@CALLBACKS.register("reduce_on_plateau", config=ReduceOnPlateau)
def build(cfg: ReduceOnPlateau, ctx):
    import keras

    monitor = cfg.monitor or ctx.monitor
    mode = monitor_mode(monitor) if cfg.mode == "auto" else cfg.mode
    return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=cfg.factor, patience=cfg.patience, mode=mode,
                              min_delta=cfg.min_delta, cooldown=cfg.cooldown, min_lr=cfg.min_lr, verbose=0)]
