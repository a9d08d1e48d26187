"""Losses by YAML name, matched to the task, the label encoding and the model's last activation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.language.fields import PositiveFloat, Strict, UnitFloat
from runner.kernel.registry import Registry

# each entry: its builder (config, label mode, from_logits) -> a Keras loss, and the facts `tasks` (the tasks it
# serves) and `labels` (the label encoding it needs: sparse follows the smoothing and batch augmentations)
LOSSES = Registry("loss")


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
    labels = LOSSES.get(loss_cfg.name).labels
    if labels == "binary":
        return "binary"
    if labels == "one_hot" or getattr(loss_cfg, "label_smoothing", 0.0) > 0 or batch_augment:
        return "one_hot"
    return "sparse"


def build_loss(cfg, task: str, mode: str, from_logits: bool):
    """The Keras loss of `train.loss` for this task (a ConfigError if the loss serves another)."""
    from runner.kernel.errors import ConfigError

    entry = LOSSES.get(cfg.name)
    if task not in entry.tasks:  # decided by `dlrun validate` already where the spec tells the task
        raise ConfigError(f"train.loss.name: '{cfg.name}' is a {entry.tasks[0]} loss; this data is {task}")
    return entry.builder(cfg, mode, from_logits)


def _crossentropy(cfg, mode: str, from_logits: bool):
    import keras

    if mode == "one_hot":
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=cfg.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


@LOSSES.register("auto", config=Auto, tasks=("classification", "regression", "segmentation"), labels="sparse")
def _auto(cfg, mode: str, from_logits: bool):
    import keras

    return keras.losses.MeanSquaredError() if mode == "regression" else _crossentropy(cfg, mode, from_logits)


LOSSES.register("sparse_categorical_crossentropy", config=SparseCCE, tasks=("classification", "segmentation"),
                labels="sparse")(_crossentropy)
LOSSES.register("categorical_crossentropy", config=CCE, tasks=("classification", "segmentation"),
                labels="one_hot")(_crossentropy)


@LOSSES.register("binary_crossentropy", config=BCE, tasks=("classification", "segmentation"), labels="binary")
def _binary_crossentropy(cfg, mode: str, from_logits: bool):
    import keras

    return keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=cfg.label_smoothing)


@LOSSES.register("focal", config=Focal, tasks=("classification", "segmentation"), labels="one_hot")
def _focal(cfg, mode: str, from_logits: bool):
    import keras

    return keras.losses.CategoricalFocalCrossentropy(alpha=cfg.alpha, gamma=cfg.gamma, from_logits=from_logits,
                                                     label_smoothing=cfg.label_smoothing)


@LOSSES.register("mse", config=MSE, tasks=("regression",), labels=None)
def _mse(cfg, mode: str, from_logits: bool):
    import keras

    return keras.losses.MeanSquaredError()


@LOSSES.register("mae", config=MAE, tasks=("regression",), labels=None)
def _mae(cfg, mode: str, from_logits: bool):
    import keras

    return keras.losses.MeanAbsoluteError()


@LOSSES.register("huber", config=Huber, tasks=("regression",), labels=None)
def _huber(cfg, mode: str, from_logits: bool):
    import keras

    return keras.losses.Huber(delta=cfg.delta)


class Dice(Strict):
    """Soft Dice loss (1 - mean Dice over classes) of per-pixel softmax probabilities (Milletari et al. 2016)."""

    name: Literal["dice"]
    smooth: PositiveFloat = Field(1.0, description="added to numerator and denominator: empty classes score 1")


class BceDice(Strict):
    """Binary cross-entropy plus soft Dice for binary masks (one logit per pixel)."""

    name: Literal["bce_dice"]
    smooth: PositiveFloat = Field(1.0, description="added to the Dice numerator and denominator")
    dice_weight: PositiveFloat = Field(1.0, description="weight of the Dice term against the cross-entropy")


@LOSSES.register("dice", config=Dice, tasks=("segmentation",), labels="sparse")
@LOSSES.register("bce_dice", config=BceDice, tasks=("segmentation",), labels="binary")
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


def class_weighted(stream, spec, data, mode: str, per_pixel: bool):
    """Wrap a `position -> train dataset` function so each batch carries per-example (per-pixel: per-pixel) class
    weights."""
    import numpy as np
    import tensorflow as tf

    labels = None
    if spec == "balanced":  # one pass over the training labels
        # a mask's pixels each count as an example of their class
        labels = np.concatenate([np.asarray(y, "int64").reshape(-1) for y in
                                 data.splits["train"].map(lambda x, y: y).batch(4096).as_numpy_iterator()])
    weights = class_weights(spec, labels, data.info)
    table = tf.constant([weights[c] for c in range(data.info.num_classes)], tf.float32)

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
