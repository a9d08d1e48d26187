"""mlp: a stack of dense layers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.language.fields import PositiveInt
from runner.models.registry import Activated, ArchCommon, BatchNormed, dense_block, head, register_arch


class MLP(ArchCommon, Activated, BatchNormed):
    arch: Literal["mlp"]
    units: list[PositiveInt] = Field([128, 64], description="width of each hidden layer")


@register_arch("mlp", MLP)
def build_mlp(cfg: MLP, x, out_units: int):
    import keras

    x = keras.layers.Flatten()(x)
    for units in cfg.units:
        x = dense_block(x, cfg, units)
    return head(x, cfg, out_units)
