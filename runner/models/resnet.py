"""resnet: the CIFAR ResNet of He et al. 2016 (depth 6n+2), option A or B shortcuts, v1 or v2 (pre-activation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from runner.language.fields import PositiveInt
from runner.models.registry import Activated, ArchCommon, BatchNormed, head, register_arch


class ResNet(ArchCommon, Activated, BatchNormed):
    arch: Literal["resnet"]
    depth: PositiveInt = Field(20, description="6n+2: 20, 32, 44, 56, 110, ... (3 stages of n basic blocks)")
    shortcut: Literal["A", "B"] = Field(
        "A", description="A: zero-padded identity, no parameters (the CIFAR paper's); B: 1x1 conv projection")
    version: Literal[1, 2] = Field(1, description="1: post-activation (He et al. 2016a); 2: pre-activation (2016b)")
    base_filters: PositiveInt = Field(16, description="filters of the first stage; doubled at each stage")
    kernel_initializer: str = Field("he_normal", description="any keras.initializers name")
    batchnorm: bool = Field(True, description="batch normalization after (v1) or before (v2) each conv")

    @field_validator("depth")
    @classmethod
    def _six_n_plus_two(cls, depth):
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110); received {depth}")
        return depth


def _shortcut_a(x, filters: int, stride: int):
    """Option A: subsample by striding, then zero-pad the new channels (no parameters)."""
    import keras

    if stride > 1:
        # a 1x1 max pool with stride s is a strided slice x[:, ::s, ::s, :]
        x = keras.layers.MaxPooling2D(pool_size=1, strides=stride)(x)
    extra = filters - x.shape[-1]
    if extra:
        x = keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])
    return x


def _conv(cfg: ResNet, filters: int, kernel: int, stride: int):
    import keras

    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=not cfg.batchnorm,
                               **cfg.layer_kwargs())


def _norm_act(cfg: ResNet, x, activate: bool = True):
    import keras

    if cfg.batchnorm:
        x = keras.layers.BatchNormalization()(x)
    return keras.layers.Activation(cfg.activation)(x) if activate else x


def _block(cfg: ResNet, x, filters: int, stride: int):
    import keras

    needs_projection = stride > 1 or x.shape[-1] != filters
    if cfg.version == 1:
        y = _norm_act(cfg, _conv(cfg, filters, 3, stride)(x))
        y = _norm_act(cfg, _conv(cfg, filters, 3, 1)(y), activate=False)
        short = x
        if needs_projection:
            short = (_shortcut_a(x, filters, stride) if cfg.shortcut == "A"
                     else _norm_act(cfg, _conv(cfg, filters, 1, stride)(x), activate=False))
        return keras.layers.Activation(cfg.activation)(keras.layers.Add()([y, short]))
    pre = _norm_act(cfg, x)
    y = _conv(cfg, filters, 3, stride)(pre)
    y = _conv(cfg, filters, 3, 1)(_norm_act(cfg, y))
    short = x
    if needs_projection:
        short = _shortcut_a(x, filters, stride) if cfg.shortcut == "A" else _conv(cfg, filters, 1, stride)(pre)
    return keras.layers.Add()([y, short])


@register_arch("resnet", ResNet, inputs="images")
def build_resnet(cfg: ResNet, x, out_units: int):
    import keras

    n = (cfg.depth - 2) // 6
    x = _conv(cfg, cfg.base_filters, 3, 1)(x)
    if cfg.version == 1:
        x = _norm_act(cfg, x)
    for stage in range(3):
        filters = cfg.base_filters * 2**stage
        for block in range(n):
            x = _block(cfg, x, filters, 2 if stage and not block else 1)
    if cfg.version == 2:
        x = _norm_act(cfg, x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout)(x)
    return head(x, cfg, out_units)
