"""tensorboard: train and validation scalars and the learning rate, in RUN_DIR/tensorboard/."""

from __future__ import annotations

from typing import ClassVar, Literal, Union

from pydantic import Field

from runner.callbacks.registry import CALLBACKS
from runner.config.base import NonNegInt, PositiveInt, Strict


class TensorBoard(Strict):
    ENABLED: ClassVar[bool] = True
    histogram_freq: NonNegInt = Field(0, description="weight histograms every N epochs (0: never)")
    update_freq: Union[Literal["epoch"], PositiveInt] = Field(
        "epoch", description="'epoch', or also log train scalars every N steps")
    write_graph: bool = Field(True, description="the model graph")


@CALLBACKS.register("tensorboard", config=TensorBoard)
def build(cfg: TensorBoard, ctx):
    import keras

    from runner import run_dir as rd

    if not ctx.is_chief:
        return []
    return [keras.callbacks.TensorBoard(
        log_dir=str(ctx.run_dir.subdir(rd.TENSORBOARD)), histogram_freq=cfg.histogram_freq,
        update_freq=cfg.update_freq, write_graph=cfg.write_graph)]
