"""Figures of a run: learning curves and the confusion matrix, as PNG files and bytes."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import weakref

import numpy as np

NOT_CURVES = ("epoch", "learning_rate", "epoch_seconds")


def _figure(width: float, height: float, left: float = 0.2, right: float = 0.2, bottom: float = 0.2,
            top: float = 0.2, wspace: float = 0.2):
    """A Figure with fixed margins in inches: a layout engine (constrained) would double the drawing time."""
    # matplotlib.figure.Figure renders with Agg without pyplot: no global state, no display needed
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace)
    return fig


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def read_history(path) -> list[dict]:
    """history.csv as a list of {column: float} rows (empty cells are NaN)."""
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(f)]


def learning_curves(rows: list[dict]):
    """Loss and each metric, train vs validation, per epoch; the learning rate on a second axis of the loss."""
    from matplotlib.ticker import MaxNLocator

    columns = list(dict.fromkeys(k for r in rows for k in r))
    names = [c for c in columns if c not in NOT_CURVES and not c.startswith("val_")]
    names.sort(key=lambda n: n != "loss")
    # margins: tick labels and the y label on the left, the learning rate's axis and label on the right
    fig = _figure(5.0 * max(1, len(names)), 4.0, left=0.8, right=0.9, bottom=0.6, top=0.4, wspace=0.45)
    epochs = [r["epoch"] for r in rows]
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        ax.plot(epochs, [r.get(name, math.nan) for r in rows], marker="o", label=f"train {name}")
        if f"val_{name}" in columns:
            ax.plot(epochs, [r.get(f"val_{name}", math.nan) for r in rows], marker="o", label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if name == "loss" and "learning_rate" in columns:
            lr_ax = ax.twinx()
            lines = lr_ax.plot(epochs, [r.get("learning_rate", math.nan) for r in rows], color="gray",
                               linestyle="--", label="learning rate")
            lr_ax.set_ylabel("learning rate")
            handles, labels = handles + lines, labels + ["learning rate"]
        ax.legend(handles, labels, loc="best", fontsize="small")
    return fig


def _class_ids(values: np.ndarray, from_logits: bool | None) -> np.ndarray:
    """Sparse ids from sparse labels, one-hot rows or probabilities, or a single binary column."""
    if values.ndim == 2 and values.shape[1] > 1:
        return values.argmax(axis=1)
    flat = values.reshape(-1)
    if from_logits is None:  # labels
        return np.rint(flat).astype(np.int64)
    return (flat > (0.0 if from_logits else 0.5)).astype(np.int64)


def confusion_matrix(model, dataset, num_classes: int, from_logits: bool) -> np.ndarray:
    """Counts[true, predicted] of `model` over a batched (x, y) dataset."""
    true, pred = [], []
    for x, y in dataset:
        true.append(_class_ids(np.asarray(y), None))
        # a plain call: predict_on_batch feeds the whole batch to every replica under a strategy (Keras 3.15)
        pred.append(_class_ids(np.asarray(model(x, training=False)), from_logits))
    # a bincount of (true, predicted) pairs: sklearn.metrics would cost its import (seconds under load) for this
    pairs = np.concatenate(true).astype(np.int64) * num_classes + np.concatenate(pred).astype(np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_figure(cm: np.ndarray, class_names, title: str):
    k = len(cm)
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    side = min(12.0, 2.0 + 0.5 * k)
    label = 0.1 * max(len(n) for n in names) + 0.4  # room for the longest class name and the axis label
    fig = _figure(side + 1.0, side, left=label + 0.1, right=0.1, bottom=(label if k > 10 else 0.3) + 0.3,
                  top=0.4)
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), names, rotation=90 if k > 10 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(cm) / max(1, cm.sum())
    ax.set_title(f"{title}: accuracy {accuracy:.4f} ({cm.sum()} examples)")
    if k <= 30:  # beyond that the numbers overlap; the colours still show where the errors are
        high = cm.max() / 2 if cm.size else 0
        for (i, j), n in np.ndenumerate(cm):
            ax.text(j, i, str(n), ha="center", va="center", fontsize="small",
                    color="white" if n > high else "black")
    return fig


_drawn: dict = {}  # the last confusion_png: {"key": ..., "model": weakref, "dataset": weakref, "png": bytes}


def _weights_digest(model) -> str:
    h = hashlib.blake2b(digest_size=16)
    for value in model.get_weights():
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def confusion_png(model, dataset, info, from_logits: bool, title: str) -> bytes:
    """The confusion figure of `model` on `dataset` as PNG; drawn once per state of the weights, so the
    TensorBoard image at the end of training and confusion_matrix.png cost one evaluation and one drawing."""
    key = (_weights_digest(model), title, from_logits)
    same = (_drawn.get("key") == key and _drawn["model"]() is model and _drawn["dataset"]() is dataset)
    if not same:
        cm = confusion_matrix(model, dataset, info.num_classes, from_logits)
        png = png_bytes(confusion_figure(cm, info.class_names, title))
        _drawn.update(key=key, model=weakref.ref(model), dataset=weakref.ref(dataset), png=png)
    return _drawn["png"]


def write_plots(run_dir, model, info, from_logits: bool, splits: dict, task_artifacts=None) -> list[str]:
    """learning_curves.png from history.csv; then the task's own figures through `task_artifacts` (classification:
    confusion_matrix.png, segmentation: segmentation_samples.png) on the first split of `splits` ({name: batched
    dataset or None}) that exists."""
    from runner.kernel import run_dir as rd

    written = []
    if run_dir.file(rd.HISTORY).exists():
        rows = read_history(run_dir.file(rd.HISTORY))
        if rows:
            data = png_bytes(learning_curves(rows))
            rd.atomic_write(run_dir.file(rd.LEARNING_CURVES), lambda f: f.write(data), mode="wb")
            written.append(rd.LEARNING_CURVES)
    split, dataset = next(((k, v) for k, v in splits.items() if v is not None), (None, None))
    if dataset is not None and task_artifacts is not None:
        written += task_artifacts(run_dir, model, info, from_logits, split, dataset)
    return written


def label_text(y, class_names) -> str:
    """'cat' for a class index; 'cat 0.70 / dog 0.30' for a mixed one-hot label."""
    names = class_names or []
    name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    if np.ndim(y) == 0:
        return name(int(y))
    top = [int(i) for i in np.argsort(y)[::-1][:2] if y[i] > 1e-3]
    return " / ".join(f"{name(i)} {y[i]:.2f}" for i in top) if len(top) > 1 else name(top[0])


def write_grid(images, labels, info, out) -> str:
    """Save images (raw range) as a PNG grid titled with their labels; `out` is a path or a binary file.

    One image of all the samples on one Axes, the titles as text on it: a subplot per sample (and
    tight_layout) cost seconds of the first epoch, this a tenth of that.
    """
    low, high = info.value_range or (float(images.min()), float(images.max()))
    shown = np.clip((images - low) / max(high - low, 1e-12), 0, 1)
    n, height, width, channels = shown.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gap_x, gap_y = max(1, width // 8), max(2, height // 3)  # gap_y: room for a title above each sample
    mosaic = np.ones((rows * (height + gap_y), cols * (width + gap_x) - gap_x, 3))  # white between samples
    for i, image in enumerate(shown):
        top, left = (i // cols) * (height + gap_y) + gap_y, (i % cols) * (width + gap_x)
        mosaic[top:top + height, left:left + width] = image[..., :3] if channels >= 3 else image[..., :1]
    fig = _figure(cols * 1.6, rows * 1.8)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.imshow(mosaic, vmin=0, vmax=1, interpolation="nearest")
    for i, y in enumerate(labels[:n]):
        top, left = (i // cols) * (height + gap_y) + gap_y, (i % cols) * (width + gap_x)
        ax.text(left + width / 2, top - 0.5, label_text(y, info.class_names), ha="center", va="bottom",
                fontsize=7)
    fig.savefig(out, format="png", dpi=100)
    return out
