"""transformer: an encoder classifier (Vaswani et al. 2017) over token ids or feature sequences, pre-norm blocks."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator

from runner.language.fields import PositiveInt
from runner.models.registry import ArchCommon, head, register_arch
from runner.models.rnn import embed_tokens


class Transformer(ArchCommon):
    arch: Literal["transformer"]
    vocab_size: Optional[PositiveInt] = Field(
        20000, description="token ids are 0..vocab_size-1 (0 = padding, masked); null: inputs are "
                           "feature sequences [time, features], projected to embed_dim")
    embed_dim: PositiveInt = Field(64, description="model width")
    heads: PositiveInt = Field(4, description="attention heads; embed_dim must divide by it")
    depth: PositiveInt = Field(2, description="encoder blocks")
    mlp_dim: PositiveInt = Field(128, description="hidden width of each block's feed-forward layer")
    positions: Literal["sinusoidal", "learned", "none"] = Field(
        "sinusoidal", description="position encoding added to the embeddings")
    pooling: Literal["mean", "max", "first"] = Field("mean", description="sequence -> vector before the head")
    attention_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the attention weights")
    activation: str = Field("gelu", description="feed-forward activation (any keras.activations name)")

    @field_validator("heads")
    @classmethod
    def _heads_divide_width(cls, heads, info: ValidationInfo):
        width = info.data.get("embed_dim")
        if width and width % heads:
            raise ValueError(f"embed_dim ({width}) must be divisible by heads; received heads={heads}")
        return heads


def sinusoid_table(length: int, dim: int):
    """The fixed sin/cos position table of Vaswani et al. 2017, section 3.5."""
    import numpy as np

    pos = np.arange(length)[:, None]
    rates = 1.0 / np.power(10000.0, (2 * (np.arange(dim) // 2)) / dim)
    angles = pos * rates[None, :]
    return np.where(np.arange(dim) % 2 == 0, np.sin(angles), np.cos(angles)).astype("float32")


def _add_positions(cfg: Transformer, x, tokens):
    import keras

    if cfg.positions == "none":
        return x
    length = x.shape[1]
    # 0..length-1 computed from the input, so the graph needs no Lambda and saves with built-in ops only
    index = keras.ops.cumsum(keras.ops.ones_like(tokens[..., 0] if tokens.ndim == 3 else tokens,
                                                 dtype="int32"), axis=1) - 1
    table = keras.layers.Embedding(length, cfg.embed_dim, trainable=cfg.positions == "learned",
                                   name=f"{cfg.positions}_positions")
    encoded = table(index)
    if cfg.positions == "sinusoidal":
        table.set_weights([sinusoid_table(length, cfg.embed_dim)])
    return keras.layers.Add()([x, encoded])


def _encoder_block(cfg: Transformer, x):
    import keras

    L = keras.layers
    kwargs = cfg.layer_kwargs()
    y = L.LayerNormalization(epsilon=1e-6)(x)
    y = L.MultiHeadAttention(cfg.heads, cfg.embed_dim // cfg.heads, dropout=cfg.attention_dropout,
                             **kwargs)(y, y)
    if cfg.dropout:
        y = L.Dropout(cfg.dropout)(y)
    x = L.Add()([x, y])
    y = L.LayerNormalization(epsilon=1e-6)(x)
    y = L.Dense(cfg.mlp_dim, activation=cfg.activation, **kwargs)(y)
    y = L.Dense(cfg.embed_dim, **kwargs)(y)
    if cfg.dropout:
        y = L.Dropout(cfg.dropout)(y)
    return L.Add()([x, y])


@register_arch("transformer", Transformer, inputs="sequences")
def build_transformer(cfg: Transformer, x, out_units: int):
    import keras

    L = keras.layers
    tokens = x
    x = embed_tokens(cfg, x)
    if cfg.vocab_size is None:
        x = L.Dense(cfg.embed_dim, **cfg.layer_kwargs())(x)
    x = _add_positions(cfg, x, tokens)
    if cfg.dropout:
        x = L.Dropout(cfg.dropout)(x)
    for _ in range(cfg.depth):
        x = _encoder_block(cfg, x)
    x = L.LayerNormalization(epsilon=1e-6)(x)
    if cfg.pooling == "first":
        x = L.Flatten()(L.Cropping1D((0, x.shape[1] - 1))(x))
    else:
        x = (L.GlobalAveragePooling1D() if cfg.pooling == "mean" else L.GlobalMaxPooling1D())(x)
    return head(x, cfg, out_units)
