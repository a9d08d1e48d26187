"""Metrics by YAML name, matched to the label encoding: one name works for sparse, one-hot and binary labels."""

from __future__ import annotations

import functools

from runner.kernel.registry import Registry

METRICS = Registry("metric")
CLASSIFICATION_METRICS = {"accuracy", "top5_accuracy", "precision", "recall", "f1", "auc"}
REGRESSION_METRICS = {"mae", "mse", "rmse"}


def default_metrics(task: str | None) -> list[str]:
    """The metrics a task compiles when `train.metrics` is unset; with the task unknown (inferred from the data
    later), every task's defaults."""
    from runner.tasks import TASKS

    if task is None:
        return list(dict.fromkeys(m for e in TASKS.entries() for m in e.facts.get("default_metrics", ())))
    return list(TASKS.get(task).default_metrics)


@functools.cache
def _probabilities(name):
    """Keras metrics that want one-hot probabilities, fed from sparse labels and logits."""
    import keras

    base = {"precision": keras.metrics.Precision, "recall": keras.metrics.Recall,
            "auc": keras.metrics.AUC, "f1": keras.metrics.F1Score}[name]

    @keras.saving.register_keras_serializable(package="dlrun", name=f"Probability{base.__name__}")
    class Metric(base):
        def __init__(self, num_classes=None, sparse=False, from_logits=False, binary=False, **kwargs):
            super().__init__(**kwargs)
            self.num_classes, self.sparse, self.from_logits, self.binary = num_classes, sparse, from_logits, binary

        def update_state(self, y_true, y_pred, sample_weight=None):
            ops = keras.ops
            if self.from_logits:
                y_pred = ops.sigmoid(y_pred) if self.binary else ops.softmax(y_pred)
            if self.sparse:
                y_true = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
            return super().update_state(ops.cast(y_true, y_pred.dtype), y_pred, sample_weight)

        def get_config(self):
            return {**super().get_config(), "num_classes": self.num_classes, "sparse": self.sparse,
                    "from_logits": self.from_logits, "binary": self.binary}

    Metric.__name__ = Metric.__qualname__ = f"Probability{base.__name__}"
    return Metric


def build_metric(name: str, mode: str, from_logits: bool, num_classes: int | None):
    import keras

    m = keras.metrics
    if name == "accuracy":
        if mode == "binary":
            return m.BinaryAccuracy(name=name, threshold=0.0 if from_logits else 0.5)
        return m.CategoricalAccuracy(name=name) if mode == "one_hot" else m.SparseCategoricalAccuracy(name=name)
    if name == "top5_accuracy":
        cls = m.TopKCategoricalAccuracy if mode == "one_hot" else m.SparseTopKCategoricalAccuracy
        return cls(k=5, name=name)
    if name in ("mae", "mse", "rmse"):
        return {"mae": m.MeanAbsoluteError, "mse": m.MeanSquaredError, "rmse": m.RootMeanSquaredError}[name](name=name)
    binary = mode == "binary"
    kwargs = {"num_classes": num_classes, "sparse": mode == "sparse", "from_logits": from_logits,
              "binary": binary, "name": name}
    if name == "f1":
        kwargs.update(average="macro", threshold=0.5 if binary else None)
    if name == "auc" and not binary:
        kwargs["multi_label"] = False
    return _probabilities(name)(**kwargs)


for _name in sorted(CLASSIFICATION_METRICS | REGRESSION_METRICS):
    METRICS.register(_name)(build_metric)


def build_pixel_metric(name: str, mode: str, from_logits: bool, num_classes: int | None):
    """Segmentation metrics over every pixel: labels are sparse, one-hot or binary masks."""
    import keras

    from runner.training.dice import Dice

    threshold = 0.0 if from_logits else 0.5
    if name == "pixel_accuracy":
        if mode == "binary":
            return keras.metrics.BinaryAccuracy(name=name, threshold=threshold)
        cls = keras.metrics.CategoricalAccuracy if mode == "one_hot" else keras.metrics.SparseCategoricalAccuracy
        return cls(name=name)
    if name == "mean_iou":
        if mode == "binary":
            return keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=threshold, name=name)
        return keras.metrics.MeanIoU(num_classes, sparse_y_true=mode != "one_hot", sparse_y_pred=False, name=name)
    return Dice(num_classes or 2, binary=mode == "binary", threshold=threshold, sparse_y_true=mode != "one_hot",
                name=name)


for _name in ("pixel_accuracy", "mean_iou", "dice"):
    METRICS.register(_name, tasks=("segmentation",), direction="max")(build_pixel_metric)
