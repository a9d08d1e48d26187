"""resnet9: the fast CIFAR-10 ResNet of the DAWNBench era (Page 2018): 3 conv stages, 2 residual blocks, max pooling."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from runner.language.fields import PositiveFloat, PositiveInt
from runner.models.registry import Activated, ArchCommon, BatchNormed, head, register_arch


class ResNet9(ArchCommon, Activated, BatchNormed):
    arch: Literal["resnet9"]
    filters: list[PositiveInt] = Field([64, 128, 256, 512], description="prep conv, then the three stages")
    head_scale: PositiveFloat = Field(0.125, description="multiplies the pooled features before the classifier")
    kernel_initializer: str = Field("he_uniform", description="any keras.initializers name")
    batchnorm: bool = Field(True, description="batch normalization after each conv")

    @field_validator("filters")
    @classmethod
    def _four(cls, filters):
        if len(filters) != 4:
            raise ValueError(f"give 4 filter counts (prep, stage 1, 2, 3); received {filters}")
        return filters


def _conv_bn(cfg: ResNet9, x, filters: int):
    import keras

    L = keras.layers
    x = L.Conv2D(filters, 3, padding="same", use_bias=not cfg.batchnorm, **cfg.layer_kwargs())(x)
    if cfg.batchnorm:
        x = L.BatchNormalization()(x)
    return L.Activation(cfg.activation)(x)


def _pool(x):
    import keras

    # pooling stops at 1x1 so small inputs (upsampled digits in tests) still build
    return keras.layers.MaxPooling2D()(x) if x.shape[1] > 1 and x.shape[2] > 1 else x


@register_arch("resnet9", ResNet9, inputs="images")
def build_resnet9(cfg: ResNet9, x, out_units: int):
    import keras

    L = keras.layers
    prep, f1, f2, f3 = cfg.filters
    x = _conv_bn(cfg, x, prep)
    for filters, residual in ((f1, True), (f2, False), (f3, True)):
        x = _pool(_conv_bn(cfg, x, filters))
        if residual:
            x = L.Add()([x, _conv_bn(cfg, _conv_bn(cfg, x, filters), filters)])
    x = L.GlobalMaxPooling2D()(x)
    if cfg.dropout:
        x = L.Dropout(cfg.dropout)(x)
    return head(L.Rescaling(cfg.head_scale)(x), cfg, out_units)
