"""lstm / gru / bilstm: text classifiers over token ids (embedding, stacked recurrent layers, dense head)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from runner.language.fields import PositiveInt
from runner.models.registry import Activated, ArchCommon, head, register_arch


class RecurrentCommon(ArchCommon, Activated):
    vocab_size: Optional[PositiveInt] = Field(
        20000, description="token ids are 0..vocab_size-1 (0 = padding, masked); null: inputs are "
                           "feature sequences [time, features] fed without an embedding")
    embed_dim: PositiveInt = Field(128, description="embedding width")
    units: list[PositiveInt] = Field([64], description="units of each stacked recurrent layer")
    recurrent_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the recurrent state")
    dense: list[PositiveInt] = Field([], description="dense layers between the last recurrent layer and the output")


class LSTM(RecurrentCommon):
    arch: Literal["lstm"]


class GRU(RecurrentCommon):
    arch: Literal["gru"]


class BiLSTM(RecurrentCommon):
    arch: Literal["bilstm"]


def embed_tokens(cfg, x):
    """Token ids -> vectors with padding masked; float feature sequences pass through."""
    import keras

    if cfg.vocab_size is None:
        return x
    return keras.layers.Embedding(cfg.vocab_size, cfg.embed_dim, mask_zero=True)(x)


@register_arch("lstm", LSTM, inputs="sequences")
@register_arch("gru", GRU, inputs="sequences")
@register_arch("bilstm", BiLSTM, inputs="sequences")
def build_recurrent(cfg: RecurrentCommon, x, out_units: int):
    import keras

    L = keras.layers
    kwargs = cfg.layer_kwargs()
    x = embed_tokens(cfg, x)
    for i, units in enumerate(cfg.units):
        cell = L.GRU if cfg.arch == "gru" else L.LSTM
        layer = cell(units, return_sequences=i < len(cfg.units) - 1, dropout=cfg.dropout,
                     recurrent_dropout=cfg.recurrent_dropout, **kwargs)
        x = (L.Bidirectional(layer) if cfg.arch == "bilstm" else layer)(x)
    for units in cfg.dense:
        x = L.Dense(units, activation=cfg.activation, **kwargs)(x)
        if cfg.dropout:
            x = L.Dropout(cfg.dropout)(x)
    return head(x, cfg, out_units)
