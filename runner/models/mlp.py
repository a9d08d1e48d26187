"""mlp: a stack of dense layers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.config.base import PositiveInt
from runner.models.registry import ARCHS, ArchCommon, head


class MLP(ArchCommon):
    arch: Literal["mlp"]
    units: list[PositiveInt] = Field([128, 64], description="width of each hidden layer")


@ARCHS.register("mlp", config=MLP)
def build_mlp(cfg: MLP, x, out_units: int):
    import keras

    L = keras.layers
    x = L.Flatten()(x)
    for units in cfg.units:
        x = L.Dense(units, use_bias=not cfg.batchnorm, **cfg.layer_kwargs())(x)
        if cfg.batchnorm:
            x = L.BatchNormalization()(x)
        x = L.Activation(cfg.activation)(x)
        if cfg.dropout:
            x = L.Dropout(cfg.dropout)(x)
    return head(x, cfg, out_units)
