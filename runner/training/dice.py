"""Dice losses and the Dice metric for per-pixel class labels (segmentation), as Keras objects that reload."""

from __future__ import annotations

import keras
from keras import ops


def _soft_dice(y_true, y_prob, smooth: float):
    """Per-example soft Dice loss, averaged over classes: y_true and y_prob are (N, H, W, C)."""
    axes = (1, 2)
    overlap = ops.sum(y_true * y_prob, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_prob, axis=axes)
    return 1.0 - ops.mean((2.0 * overlap + smooth) / (total + smooth), axis=-1)


@keras.saving.register_keras_serializable(package="dlrun", name="DiceLoss")
class DiceLoss(keras.losses.Loss):
    """1 - mean soft Dice over classes, per example; sparse (N, H, W) or one-hot (N, H, W, C) masks."""

    def __init__(self, smooth=1.0, from_logits=True, one_hot=False, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth, self.from_logits, self.one_hot = smooth, from_logits, one_hot

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        prob = ops.softmax(y_pred, axis=-1) if self.from_logits else y_pred
        if not self.one_hot:
            y_true = ops.one_hot(ops.cast(y_true, "int32"), ops.shape(y_pred)[-1])
        return _soft_dice(ops.cast(y_true, "float32"), prob, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "from_logits": self.from_logits,
                "one_hot": self.one_hot}


@keras.saving.register_keras_serializable(package="dlrun", name="BceDiceLoss")
class BceDiceLoss(keras.losses.Loss):
    """Binary cross-entropy per pixel (averaged per example) plus `dice_weight` x soft Dice of the foreground."""

    def __init__(self, smooth=1.0, dice_weight=1.0, from_logits=True, name="bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth, self.dice_weight, self.from_logits = smooth, dice_weight, from_logits

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred, from_logits=self.from_logits), axis=(1, 2))
        prob = ops.sigmoid(y_pred) if self.from_logits else y_pred
        return bce + self.dice_weight * _soft_dice(y_true, prob, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "dice_weight": self.dice_weight,
                "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="dlrun", name="Dice")
class Dice(keras.metrics.MeanIoU):
    """Mean Dice (F1) over the classes present, from the pixel confusion matrix the IoU metrics keep."""

    def __init__(self, num_classes, binary=False, threshold=0.0, sparse_y_true=True, name="dice", **kwargs):
        kwargs.pop("sparse_y_pred", None)
        super().__init__(num_classes, name=name, sparse_y_true=sparse_y_true, sparse_y_pred=binary, **kwargs)
        self.binary, self.threshold = binary, threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.binary:  # one logit (or probability) per pixel: class 1 above the threshold
            y_pred = ops.cast(y_pred > self.threshold, "int32")
            y_true = ops.cast(ops.round(y_true), "int32")
        return super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        cm = ops.cast(self.total_cm, "float32")
        hits = ops.diagonal(cm)
        size = ops.sum(cm, axis=0) + ops.sum(cm, axis=1)
        present = ops.cast(size > 0, "float32")
        dice = ops.divide_no_nan(2.0 * hits, size)
        return ops.divide_no_nan(ops.sum(dice * present), ops.sum(present))

    def get_config(self):
        return {**super().get_config(), "binary": self.binary, "threshold": self.threshold}
