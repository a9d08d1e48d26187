"""The arch registry and the options every registered arch shares."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from runner.language.fields import NonNegFloat, Strict
from runner.kernel.registry import Registry

ARCHS = Registry("arch")


class Regularizer(Strict):
    l1: NonNegFloat = Field(0.0, description="L1 penalty")
    l2: NonNegFloat = Field(0.0, description="L2 penalty")


# the options several archs share; which of them an arch takes is its entry's fact `options`
OPTIONS = ("activation", "kernel_initializer", "kernel_regularizer", "dropout", "batchnorm")


class ArchCommon(Strict):
    """The options every registered arch takes."""

    kernel_initializer: str = Field("glorot_uniform", description="any keras.initializers name (he_normal, ...)")
    kernel_regularizer: Optional[Regularizer] = Field(None, description="L1/L2 weight penalties")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout rate before each dense layer")
    output_activation: Literal["auto", "linear", "softmax", "sigmoid"] = Field(
        "auto", description="auto: logits (the loss gets from_logits=true)")

    def layer_kwargs(self) -> dict:
        import keras

        reg = None
        if self.kernel_regularizer is not None:
            reg = keras.regularizers.L1L2(l1=self.kernel_regularizer.l1, l2=self.kernel_regularizer.l2)
        return {"kernel_initializer": self.kernel_initializer, "kernel_regularizer": reg}


class Activated(Strict):
    """`activation`, for archs whose hidden layers take one by name (a pretrained keras_app base has its own)."""

    activation: str = Field("relu", description="any keras.activations name (relu, gelu, swish, ...)")


class BatchNormed(Strict):
    """`batchnorm`, for archs of conv/dense blocks (transformers and RNNs normalize their own way, or not)."""

    batchnorm: bool = Field(False, description="batch normalization after each conv/dense layer")


# what build_model (a model that cannot take its inputs) and spec/checks.py (a spec whose data are not images) say
TAKES_IMAGES = "takes images [height, width, channels]"
ANY_SHAPE = "mlp, which takes any shape"


def register_arch(name: str, config, **facts):
    """ARCHS.register with the fact `options`: the shared OPTIONS the arch's config (and so its builder) takes.

    The fact `inputs` says what the builder takes after preprocessing (build_model checks it): "images"
    [height, width, channels], "sequences" (token ids [time], or with vocab_size null feature sequences [time,
    features]); without it, any shape (mlp flattens).
    """
    return ARCHS.register(name, config=config, options=tuple(o for o in OPTIONS if o in config.model_fields), **facts)


def dense_block(x, cfg, units: int):
    """Dense -> optional batch norm -> activation -> optional dropout, with the arch's common options."""
    import keras

    L = keras.layers
    x = L.Dense(units, use_bias=not cfg.batchnorm, **cfg.layer_kwargs())(x)
    if cfg.batchnorm:
        x = L.BatchNormalization()(x)
    x = L.Activation(cfg.activation)(x)
    return L.Dropout(cfg.dropout)(x) if cfg.dropout else x


def head(x, cfg: ArchCommon, units: int):
    """The output layer: logits unless asked otherwise, float32 under mixed precision."""
    import keras

    activation = None if cfg.output_activation in ("auto", "linear") else cfg.output_activation
    return keras.layers.Dense(units, activation=activation, dtype="float32", name="head", **cfg.layer_kwargs())(x)
