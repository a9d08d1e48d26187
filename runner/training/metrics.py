"""Metrics by YAML name, matched to the label encoding: one name works for sparse, one-hot and binary labels."""

from __future__ import annotations

import functools

from runner.kernel.registry import Registry

# each entry: its builder (name, label mode, from_logits, classes) -> a Keras metric, and the facts `task` (the
# task it measures), `direction` (max: higher is better) and `default` (what a task logs without train.metrics)
METRICS = Registry("metric")


def metric_names(task: str) -> list[str]:
    """The metrics that measure `task`, in registry order."""
    return METRICS.where(tasks=task)


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
    return METRICS.get(name).builder(name, mode, from_logits, num_classes)


@METRICS.register("accuracy", tasks=("classification", "segmentation"), direction="max")
def _accuracy(name, mode, from_logits, num_classes):
    import keras

    m = keras.metrics
    if mode == "binary":
        return m.BinaryAccuracy(name=name, threshold=0.0 if from_logits else 0.5)
    return m.CategoricalAccuracy(name=name) if mode == "one_hot" else m.SparseCategoricalAccuracy(name=name)


@METRICS.register("top5_accuracy", tasks=("classification",), direction="max")
def _top5_accuracy(name, mode, from_logits, num_classes):
    import keras

    m = keras.metrics
    return (m.TopKCategoricalAccuracy if mode == "one_hot" else m.SparseTopKCategoricalAccuracy)(k=5, name=name)


@METRICS.register("auc", tasks=("classification",), direction="max")
@METRICS.register("f1", tasks=("classification",), direction="max")
@METRICS.register("recall", tasks=("classification",), direction="max")
@METRICS.register("precision", tasks=("classification",), direction="max")
def _from_probabilities(name, mode, from_logits, num_classes):
    binary = mode == "binary"
    kwargs = {"num_classes": num_classes, "sparse": mode == "sparse", "from_logits": from_logits,
              "binary": binary, "name": name}
    if name == "f1":
        kwargs.update(average="macro", threshold=0.5 if binary else None)
    if name == "auc" and not binary:
        kwargs["multi_label"] = False
    return _probabilities(name)(**kwargs)


def _keras_metric(class_name: str):
    def build(name, mode, from_logits, num_classes):
        import keras

        return getattr(keras.metrics, class_name)(name=name)

    return build


METRICS.register("mae", tasks=("regression",), direction="min")(_keras_metric("MeanAbsoluteError"))
METRICS.register("mse", tasks=("regression",), direction="min")(_keras_metric("MeanSquaredError"))
METRICS.register("rmse", tasks=("regression",), direction="min")(_keras_metric("RootMeanSquaredError"))


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
