"""Losses by YAML name, matched to the task, the label encoding and the model's last activation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.config.base import PositiveFloat, Strict, UnitFloat
from runner.registry import Registry

LOSSES = Registry("loss")
CLASSIFICATION_LOSSES = {"auto", "sparse_categorical_crossentropy", "categorical_crossentropy",
                         "binary_crossentropy", "focal"}


class _Smoothed(Strict):
    label_smoothing: UnitFloat = Field(0.0, description="label smoothing (works with integer labels too)")


class Auto(_Smoothed):
    """Sparse categorical cross-entropy for classification, mean squared error for regression."""

    name: Literal["auto"] = "auto"


class SparseCCE(_Smoothed):
    name: Literal["sparse_categorical_crossentropy"]


class CCE(_Smoothed):
    name: Literal["categorical_crossentropy"]


class BCE(_Smoothed):
    name: Literal["binary_crossentropy"]


class Focal(_Smoothed):
    name: Literal["focal"]
    gamma: float = Field(2.0, ge=0, description="focusing parameter (Lin et al. 2017)")
    alpha: UnitFloat = Field(0.25, description="class balance weight")


class MSE(Strict):
    name: Literal["mse"]


class MAE(Strict):
    name: Literal["mae"]


class Huber(Strict):
    name: Literal["huber"]
    delta: PositiveFloat = Field(1.0, description="where the loss turns from quadratic to linear")


def label_mode(loss_cfg, task: str, batch_augment: bool) -> str:
    """How labels reach the loss: 'sparse' ints, 'one_hot', 'binary' (one logit) or 'regression'."""
    if task == "regression":
        return "regression"
    if loss_cfg.name == "binary_crossentropy":
        return "binary"
    smoothing = getattr(loss_cfg, "label_smoothing", 0.0)
    if loss_cfg.name in ("categorical_crossentropy", "focal") or smoothing > 0 or batch_augment:
        return "one_hot"
    return "sparse"


@LOSSES.register("auto", config=Auto)
@LOSSES.register("sparse_categorical_crossentropy", config=SparseCCE)
@LOSSES.register("categorical_crossentropy", config=CCE)
@LOSSES.register("binary_crossentropy", config=BCE)
@LOSSES.register("focal", config=Focal)
@LOSSES.register("mse", config=MSE)
@LOSSES.register("mae", config=MAE)
@LOSSES.register("huber", config=Huber)
def build_loss(cfg, mode: str, from_logits: bool):
    import keras

    smoothing = getattr(cfg, "label_smoothing", 0.0)
    if mode == "regression":
        if cfg.name == "huber":
            return keras.losses.Huber(delta=cfg.delta)
        return keras.losses.MeanAbsoluteError() if cfg.name == "mae" else keras.losses.MeanSquaredError()
    if mode == "binary":
        return keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    if cfg.name == "focal":
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=cfg.alpha, gamma=cfg.gamma, from_logits=from_logits, label_smoothing=smoothing)
    if mode == "one_hot":
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
