"""mobilenet: depthwise-separable conv blocks (Howard et al. 2017) with a width multiplier."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from runner.language.fields import PositiveFloat, PositiveInt
from runner.models.registry import Activated, ArchCommon, BatchNormed, head, register_arch


class MobileNet(ArchCommon, Activated, BatchNormed):
    arch: Literal["mobilenet"]
    stem_filters: PositiveInt = Field(32, description="filters of the first full 3x3 conv")
    stem_stride: Literal[1, 2] = Field(1, description="2 for ImageNet-sized inputs, 1 for CIFAR-sized")
    blocks: list[tuple[PositiveInt, Literal[1, 2]]] = Field(
        [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (1024, 2)],
        description="[filters, stride] of each depthwise-separable block")
    width_multiplier: PositiveFloat = Field(1.0, description="alpha: scales every layer's filters")
    kernel_initializer: str = Field("he_normal", description="any keras.initializers name")
    batchnorm: bool = Field(True, description="batch normalization after each conv")

    @field_validator("blocks", mode="before")
    @classmethod
    def _lists_are_pairs(cls, blocks):
        # YAML gives lists; the strict schema wants tuples
        return [tuple(b) if isinstance(b, list) else b for b in blocks] if isinstance(blocks, list) else blocks


def _bn_act(cfg: MobileNet, x):
    import keras

    if cfg.batchnorm:
        x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation(cfg.activation)(x)


@register_arch("mobilenet", MobileNet, inputs="images")
def build_mobilenet(cfg: MobileNet, x, out_units: int):
    import keras

    L = keras.layers
    def width(filters: int) -> int:
        return max(8, int(filters * cfg.width_multiplier))

    kwargs = cfg.layer_kwargs()
    x = _bn_act(cfg, L.Conv2D(width(cfg.stem_filters), 3, strides=cfg.stem_stride, padding="same",
                              use_bias=not cfg.batchnorm, **kwargs)(x))
    for filters, stride in cfg.blocks:
        # striding stops at 1x1 so small inputs still build
        stride = stride if x.shape[1] > 1 and x.shape[2] > 1 else 1
        x = _bn_act(cfg, L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=not cfg.batchnorm,
                                           depthwise_initializer=kwargs["kernel_initializer"],
                                           depthwise_regularizer=kwargs["kernel_regularizer"])(x))
        x = _bn_act(cfg, L.Conv2D(width(filters), 1, use_bias=not cfg.batchnorm, **kwargs)(x))
    x = L.GlobalAveragePooling2D()(x)
    if cfg.dropout:
        x = L.Dropout(cfg.dropout)(x)
    return head(x, cfg, out_units)
