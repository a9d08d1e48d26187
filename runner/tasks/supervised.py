"""classification and regression: one label per example (a class id, or a target value)."""

from __future__ import annotations

from runner.kernel.errors import DataError
from runner.tasks.registry import TASKS, Task


def _shape(shape) -> str:
    return "x".join(map(str, shape))


class Classification(Task):
    name = "classification"

    def check_labels(self, x_shape, y_shape, where: str) -> None:
        if len(y_shape) > 1 and not (len(y_shape) == 2 and y_shape[1] == 1):
            taker = (" (a mask per image, which the segmentation task takes: set data.task: segmentation)"
                     if len(x_shape) >= 3 and tuple(y_shape[1:3]) == tuple(x_shape[1:3]) else "")
            raise DataError(f"{where}: the classification task takes one class id per example; the labels have "
                            f"shape {_shape(y_shape)}{taker}")

    def write_artifacts(self, run_dir, model, info, from_logits, split, dataset):
        from runner.artifacts import plots
        from runner.kernel import run_dir as rd

        if not info.num_classes:
            return []
        data = plots.confusion_png(model, dataset, info, from_logits, split)
        rd.atomic_write(run_dir.file(rd.CONFUSION_MATRIX), lambda f: f.write(data), mode="wb")
        return [rd.CONFUSION_MATRIX]

    def eval_report(self, model, x, y, mode, from_logits, info, folder, title):
        from runner.artifacts.export_formats import as_model_input, predicted_classes

        outputs = model.predict(as_model_input(x), batch_size=256, verbose=0)
        return classification_report(y, predicted_classes(outputs, mode, from_logits), info.class_names, folder,
                                     title)

    def predictions(self, names, outputs, from_logits, class_names, top_k, folder):
        """The top-k classes of each input with their probabilities."""
        import numpy as np

        probs = probabilities(outputs, from_logits)
        class_names = class_names or [str(i) for i in range(probs.shape[-1])]
        k = min(top_k, probs.shape[-1])
        records = []
        for name, p in zip(names, probs):
            order = np.argsort(-p, kind="stable")[:k]
            records.append({"input": name, "top_k": [{"class": str(class_names[i]), "index": int(i),
                                                       "probability": float(p[i])} for i in order]})
        return records

    def export_check(self, expected, got, y, mode, from_logits):
        import numpy as np

        from runner.artifacts.export_formats import predicted_classes

        return {"keras_accuracy": float(np.mean(predicted_classes(expected, mode, from_logits) == y)),
                "accuracy": float(np.mean(predicted_classes(got, mode, from_logits) == y))}


class Regression(Task):
    name = "regression"

    def predictions(self, names, outputs, from_logits, class_names, top_k, folder):
        return [{"input": n, "value": [float(v) for v in row] if len(row) > 1 else float(row[0])}
                for n, row in zip(names, outputs)]


def probabilities(outputs, from_logits: bool):
    """Class probabilities: softmax (or sigmoid for one output unit) when the model outputs logits."""
    import numpy as np
    from scipy.special import expit, softmax

    if outputs.shape[-1] == 1:  # binary: one unit for class 1
        p1 = expit(outputs[:, 0]) if from_logits else outputs[:, 0]
        return np.stack([1.0 - p1, p1], axis=-1)
    return softmax(outputs, axis=-1) if from_logits else outputs


def classification_report(y_true, y_pred, class_names, folder, title: str) -> dict:
    """Per-class precision/recall/F1 (report.txt and the dict) and the confusion matrix (PNG and the dict)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, classification_report as report_of, confusion_matrix

    from runner.kernel import run_dir as rd

    labels = list(range(len(class_names)))
    kwargs = {"labels": labels, "target_names": [str(c) for c in class_names], "zero_division": 0, "digits": 4}
    text = report_of(y_true, y_pred, **kwargs)
    report = report_of(y_true, y_pred, output_dict=True, **kwargs)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    rd.atomic_write(folder / rd.EVAL_REPORT, lambda f: f.write(text))

    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(matrix, display_labels=kwargs["target_names"]).plot(ax=ax, colorbar=False)
    ax.set_title(title)
    fig.tight_layout()
    rd.atomic_save(folder / rd.CONFUSION_MATRIX, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return {"report": report, "report_text": text, "confusion_matrix": matrix.tolist(),
            "class_names": list(class_names)}


TASKS.register("classification", data_task=True, per_pixel=False, default_metrics=("accuracy",),
               class_weights=True)(Classification())
TASKS.register("regression", data_task=True, per_pixel=False, default_metrics=("mae",),
               class_weights=False)(Regression())
