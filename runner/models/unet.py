"""unet: the encoder-decoder segmentation net of Ronneberger et al. 2015, per-pixel logits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.language.fields import PositiveInt
from runner.models.registry import Activated, ArchCommon, BatchNormed, head, register_arch


class UNet(ArchCommon, Activated, BatchNormed):
    arch: Literal["unet"]
    depth: PositiveInt = Field(4, description="down-sampling steps; input height and width must divide by 2**depth")
    base_filters: PositiveInt = Field(64, description="filters at the top level; doubled at each step down")
    convs_per_level: PositiveInt = Field(2, description="3x3 convs at each level")
    upsample: Literal["transpose", "bilinear"] = Field(
        "transpose", description="transpose: learned 2x2 up-convolution (the paper's); bilinear: resize + conv")
    kernel_initializer: str = Field("he_normal", description="any keras.initializers name")
    batchnorm: bool = Field(True, description="batch normalization after each conv")


def _convs(cfg: UNet, x, filters: int):
    import keras

    L = keras.layers
    for _ in range(cfg.convs_per_level):
        x = L.Conv2D(filters, 3, padding="same", use_bias=not cfg.batchnorm, **cfg.layer_kwargs())(x)
        if cfg.batchnorm:
            x = L.BatchNormalization()(x)
        x = L.Activation(cfg.activation)(x)
    return x


@register_arch("unet", UNet, outputs="pixel", inputs="images")
def build_unet(cfg: UNet, x, out_units: int):
    import keras

    from runner.kernel.errors import ConfigError

    L = keras.layers
    step = 2**cfg.depth
    height, width = x.shape[1], x.shape[2]
    if height % step or width % step:
        raise ConfigError(f"model.depth: {cfg.depth} down-sampling steps need an input height and width "
                          f"divisible by {step}; received {height}x{width}. Lower model.depth or add a "
                          f"`resize` step to data.preprocess")
    skips = []
    for level in range(cfg.depth):
        x = _convs(cfg, x, cfg.base_filters * 2**level)
        skips.append(x)
        x = L.MaxPooling2D()(x)
    if cfg.dropout:
        x = L.Dropout(cfg.dropout)(x)
    x = _convs(cfg, x, cfg.base_filters * 2**cfg.depth)
    for level in reversed(range(cfg.depth)):
        filters = cfg.base_filters * 2**level
        if cfg.upsample == "transpose":
            x = L.Conv2DTranspose(filters, 2, strides=2, **cfg.layer_kwargs())(x)
        else:
            x = L.Conv2D(filters, 1, **cfg.layer_kwargs())(L.UpSampling2D(interpolation="bilinear")(x))
        x = _convs(cfg, L.Concatenate()([skips[level], x]), filters)
    # a Dense on the channel axis is the paper's final 1x1 conv: one logit per class per pixel
    return head(x, cfg, out_units)
