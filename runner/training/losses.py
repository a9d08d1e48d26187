"""Losses by YAML name, matched to the task, the label encoding and the model's last activation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.language.fields import PositiveFloat, Strict, UnitFloat
from runner.kernel.registry import Registry

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
    """How labels reach the loss: 'sparse' ints, 'one_hot', 'binary' (one logit) or 'regression'; the task decides."""
    from runner.tasks import task as task_of

    return task_of(task).label_mode(loss_cfg, batch_augment)


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


class Dice(Strict):
    """Soft Dice loss (1 - mean Dice over classes) of per-pixel softmax probabilities (Milletari et al. 2016)."""

    name: Literal["dice"]
    smooth: PositiveFloat = Field(1.0, description="added to numerator and denominator: empty classes score 1")


class BceDice(Strict):
    """Binary cross-entropy plus soft Dice for binary masks (one logit per pixel)."""

    name: Literal["bce_dice"]
    smooth: PositiveFloat = Field(1.0, description="added to the Dice numerator and denominator")
    dice_weight: PositiveFloat = Field(1.0, description="weight of the Dice term against the cross-entropy")


@LOSSES.register("dice", config=Dice, tasks=("segmentation",))
@LOSSES.register("bce_dice", config=BceDice, tasks=("segmentation",))
def build_dice(cfg, mode: str, from_logits: bool):
    from runner.training.dice import BceDiceLoss, DiceLoss

    if cfg.name == "bce_dice":
        return BceDiceLoss(smooth=cfg.smooth, dice_weight=cfg.dice_weight, from_logits=from_logits)
    return DiceLoss(smooth=cfg.smooth, from_logits=from_logits, one_hot=mode == "one_hot")


def class_weights(spec, labels, info) -> dict[int, float] | None:
    """`train.class_weight` as Keras's {class index: weight}: 'balanced' is n / (classes * count), as in sklearn."""
    import numpy as np

    from runner.kernel.errors import ConfigError

    if spec is None:
        return None
    from runner.tasks import TASKS

    if not TASKS.get(info.task).class_weights:
        raise ConfigError(f"train.class_weight: only classification takes class weights; this data is a "
                          f"{info.task} task. Remove train.class_weight")
    n = info.num_classes
    if spec == "balanced":
        counts = np.bincount(np.asarray(labels, dtype="int64").reshape(-1), minlength=n)
        return {c: float(len(labels) / (n * counts[c])) if counts[c] else 1.0 for c in range(n)}
    names = [str(c) for c in (info.class_names or range(n))]
    weights = {c: 1.0 for c in range(n)}
    for key, weight in spec.items():
        if key in names:
            weights[names.index(key)] = float(weight)
        elif key.isdigit() and int(key) < n:
            weights[int(key)] = float(weight)
        else:
            raise ConfigError(f"train.class_weight.{key}: not a class of this data; use a class index 0..{n - 1} "
                              f"or a name: {', '.join(names)}")
    return weights


def class_weighted(stream, spec, data, mode: str):
    """Wrap a `position -> train dataset` function so each batch carries per-example class weights."""
    import numpy as np
    import tensorflow as tf

    from runner.tasks import TASKS

    labels = None
    if spec == "balanced":  # one pass over the training labels
        # a mask's pixels each count as an example of their class
        labels = np.concatenate([np.asarray(y, "int64").reshape(-1) for y in
                                 data.splits["train"].map(lambda x, y: y).batch(4096).as_numpy_iterator()])
    weights = class_weights(spec, labels, data.info)
    table = tf.constant([weights[c] for c in range(data.info.num_classes)], tf.float32)

    per_pixel = TASKS.get(data.info.task).per_pixel

    def index(y):  # class ids of the batch: one per example, or one per pixel (then the weights are per pixel)
        if per_pixel:
            return tf.argmax(y, axis=-1) if mode == "one_hot" else tf.cast(tf.round(y[..., 0]), tf.int64) if (
                mode == "binary") else y
        if mode == "one_hot":
            return tf.argmax(y, axis=-1)
        return tf.cast(tf.round(tf.reshape(y, (-1,))), tf.int64) if mode == "binary" else tf.reshape(y, (-1,))

    def weighted(position: int):
        return stream(position).map(lambda x, y: (x, y, tf.gather(table, index(y))))

    return weighted
