"""cnn: conv blocks (conv, optional batch norm, activation, pooling) and a dense head."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.language.fields import PositiveInt
from runner.models.registry import Activated, ArchCommon, BatchNormed, dense_block, head, register_arch


class CNN(ArchCommon, Activated, BatchNormed):
    arch: Literal["cnn"]
    filters: list[PositiveInt] = Field([32, 64], description="filters of each conv block")
    convs_per_block: PositiveInt = Field(1, description="conv layers per block")
    kernel_size: PositiveInt = Field(3, description="conv kernel size")
    pool: Literal["max", "avg", "none"] = Field("max", description="2x2 pooling after each block")
    global_pool: bool = Field(False, description="global average pooling instead of flatten")
    dense: list[PositiveInt] = Field([128], description="dense layers before the output")
    conv_dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each conv block")


@register_arch("cnn", CNN, inputs="images")
def build_cnn(cfg: CNN, x, out_units: int):
    import keras

    L = keras.layers
    for filters in cfg.filters:
        for _ in range(cfg.convs_per_block):
            x = L.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=not cfg.batchnorm,
                         **cfg.layer_kwargs())(x)
            if cfg.batchnorm:
                x = L.BatchNormalization()(x)
            x = L.Activation(cfg.activation)(x)
        # pooling stops at 1x1 so small inputs (digits are 8x8) can take several blocks
        if cfg.pool != "none" and x.shape[1] > 1 and x.shape[2] > 1:
            x = (L.MaxPooling2D if cfg.pool == "max" else L.AveragePooling2D)()(x)
        if cfg.conv_dropout:
            x = L.Dropout(cfg.conv_dropout)(x)
    x = L.GlobalAveragePooling2D()(x) if cfg.global_pool else L.Flatten()(x)
    for units in cfg.dense:
        x = dense_block(x, cfg, units)
    return head(x, cfg, out_units)
