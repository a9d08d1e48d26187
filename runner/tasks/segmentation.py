"""segmentation: a class per pixel. Labels are masks of the image's height and width; the model gives per-pixel
class logits; figures show image | true mask | predicted mask."""

from __future__ import annotations

from runner.kernel.errors import DataError
from runner.tasks.registry import TASKS, Task

SAMPLES = 8  # examples in segmentation_samples.png and the TensorBoard image


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def mask_classes(outputs, mode: str, from_logits: bool):
    """Per-pixel class ids from per-pixel outputs (N, H, W, C), or one logit/probability per pixel."""
    import numpy as np

    if mode == "binary" or outputs.shape[-1] == 1:
        return (outputs[..., 0] > (0.0 if from_logits else 0.5)).astype("int64")
    return np.argmax(outputs, axis=-1)


def true_classes(y):
    """Per-pixel class ids from encoded labels: sparse masks, one-hot masks or one binary channel."""
    import numpy as np

    y = np.asarray(y)
    if y.ndim == 4 and y.shape[-1] > 1:
        return y.argmax(axis=-1)
    return np.rint(y.reshape(y.shape[:3])).astype("int64")


class Segmentation(Task):
    name = "segmentation"

    def spec_problems(self, cfg):
        yield from super().spec_problems(cfg)
        if cfg.data.batch_augment:
            yield ("data", "batch_augment"), ("mixup and cutmix mix class labels per example; a segmentation task "
                                              "has a label per pixel. Remove data.batch_augment")
        if cfg.train.class_weight is not None and cfg.train.loss.name in ("dice", "bce_dice"):
            yield ("train", "class_weight"), (f"class weights weight each pixel's cross-entropy; "
                                              f"{cfg.train.loss.name!r} scores whole masks. Use "
                                              "sparse_categorical_crossentropy or focal, or remove train.class_weight")

    def train_problems(self, train):
        """The loss and metrics against their `tasks` facts, naming what a segmentation task takes."""
        from runner.tasks.registry import accepts
        from runner.training.losses import LOSSES
        from runner.training.metrics import METRICS

        loss = train.loss.name
        if not accepts(LOSSES, loss, self.name):
            yield ("train", "loss", "name"), (f"{loss!r} is not a per-pixel loss; a segmentation task takes "
                                              f"{', '.join(LOSSES.where(tasks=self.name))}")
        for i, name in enumerate(train.metrics or []):
            if not accepts(METRICS, name, self.name):
                yield ("train", "metrics", i), (f"{name!r} is not a per-pixel metric; a segmentation task takes "
                                                f"{', '.join(METRICS.where(tasks=self.name))}")

    def fit_problems(self, train, info) -> list[str]:
        problems = super().fit_problems(train, info)
        from runner.training.losses import LOSSES

        if LOSSES.get(train.loss.name).labels == "binary" and info.num_classes != 2:
            problems.append(f"train.loss.name: {train.loss.name!r} is for binary masks (classes 0 and 1); this data "
                            f"has {info.num_classes} classes ({', '.join(map(str, info.class_names or []))}). Use "
                            "sparse_categorical_crossentropy or dice")
        return problems

    def check_labels(self, x_shape, y_shape, where: str) -> None:
        if len(x_shape) != 4:
            raise DataError(f"{where}: the segmentation task takes images (N x height x width x channels); the "
                            f"inputs have shape {_shape(x_shape)}")
        if len(y_shape) != 3 or tuple(y_shape[1:]) != tuple(x_shape[1:3]):
            raise DataError(f"{where}: the segmentation task takes a mask of the image's size per example "
                            f"({_shape(x_shape[:3])}); the labels have shape {_shape(y_shape)}"
                            + ("; set data.task: classification for one class per image" if len(y_shape) == 1
                               else ""))

    def write_artifacts(self, run_dir, model, info, from_logits, split, dataset):
        from runner.kernel import run_dir as rd

        x, y = next(iter(dataset.unbatch().batch(SAMPLES)))
        data = self.tensorboard_samples(model, x, y, info, f"{split} split")
        rd.atomic_write(run_dir.file(rd.SEGMENTATION_SAMPLES), lambda f: f.write(data), mode="wb")
        return [rd.SEGMENTATION_SAMPLES]

    def tensorboard_samples(self, model, x, y, info, title: str = "training batch") -> bytes:
        import numpy as np

        from runner.artifacts import plots
        from runner.models import outputs_logits

        x, y = np.asarray(x)[:SAMPLES], np.asarray(y)[:SAMPLES]
        # a plain call: predict_on_batch feeds the whole batch to every replica under a strategy (Keras 3.15)
        outputs = np.asarray(model(x, training=False))
        predicted = mask_classes(outputs, "binary" if outputs.shape[-1] == 1 else "sparse", outputs_logits(model))
        return plots.png_bytes(mask_figure(x, true_classes(y), predicted, info, title))

    def eval_report(self, model, x, y, mode, from_logits, info, folder, title):
        import numpy as np

        from runner.artifacts.export_formats import as_model_input
        from runner.kernel import run_dir as rd

        outputs = model.predict(as_model_input(x), batch_size=64, verbose=0)
        n = info.num_classes
        truth = np.asarray(y).reshape(-1).astype("int64")
        predicted = mask_classes(outputs, mode, from_logits).reshape(-1)
        cm = np.bincount(truth * n + predicted, minlength=n * n).reshape(n, n)
        names = [str(c) for c in (info.class_names or range(n))]
        iou = {}
        for c, name in enumerate(names):
            union = cm[c].sum() + cm[:, c].sum() - cm[c, c]
            iou[name] = float(cm[c, c] / union) if union else None
        lines = [f"{title}: per-class IoU over {truth.size} pixels", *(
            f"  {name:>12}: {'absent' if v is None else f'{v:.4f}'}  ({int(cm[c].sum())} true pixels)"
            for c, (name, v) in enumerate(iou.items()))]
        text = "\n".join(lines) + "\n"
        rd.atomic_write(folder / rd.EVAL_REPORT, lambda f: f.write(text))
        return {"per_class_iou": iou, "pixel_confusion_matrix": cm.tolist(), "class_names": names,
                "report_text": text}

    def predictions(self, names, outputs, from_logits, class_names, top_k, folder):
        """A PNG of class ids per input in `folder` (RUN_DIR/predictions/), and each class's share of pixels."""
        import numpy as np

        masks = mask_classes(outputs, "sparse", from_logits)
        class_names = class_names or [str(i) for i in range(max(2, outputs.shape[-1]))]
        paths = write_masks(masks, names, folder)
        return [{"input": n, "mask": p, "pixels": {str(class_names[c]): float(np.mean(m == c))
                                                   for c in range(len(class_names))}}
                for n, p, m in zip(names, paths, masks)]

    def export_check(self, expected, got, y, mode, from_logits):
        import numpy as np

        return {"pixel_agreement": float(np.mean(mask_classes(expected, mode, from_logits)
                                                 == mask_classes(got, mode, from_logits)))}


def mask_figure(images, true_masks, predicted, info, title: str):
    """A row per example: the image | the true mask | the predicted mask (None: image | mask only)."""
    import numpy as np

    from runner.artifacts.plots import _figure

    low, high = info.value_range or (float(images.min()), float(images.max()))
    shown = np.clip((images - low) / max(high - low, 1e-12), 0, 1)
    columns = [("image", None), ("true mask", true_masks)] + ([("predicted", predicted)] if predicted is not None
                                                               else [])
    rows = len(shown)
    fig = _figure(1.6 * len(columns) + 0.6, 1.6 * rows + 0.4)
    fig.suptitle(title, fontsize="small")
    classes = info.num_classes or int(np.max(true_masks)) + 1
    cmap, vmax = ("tab10", 9) if classes <= 10 else ("tab20", 19)  # one fixed colour per class id
    for r in range(rows):
        for c, (name, masks) in enumerate(columns):
            ax = fig.add_subplot(rows, len(columns), r * len(columns) + c + 1)
            ax.axis("off")
            if masks is None:
                gray = shown[r].shape[-1] == 1
                ax.imshow(shown[r][..., 0] if gray else shown[r][..., :3], cmap="gray" if gray else None, vmin=0,
                          vmax=1, interpolation="nearest")
            else:
                ax.imshow(masks[r], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
            if r == 0:
                ax.set_title(name, fontsize="small")
    return fig


def write_masks(masks, names, folder) -> list[str]:
    """Predicted masks as 8-bit PNGs of class ids (grayscale, pixel value = class), one per input."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from runner.kernel import run_dir as rd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (mask, name) in enumerate(zip(masks, names)):
        stem = Path(name.split("[")[0]).stem + (f"-{i}" if "[" in name else "")
        path = folder / f"{stem}.png"
        image = Image.fromarray(np.asarray(mask, dtype="uint8"), mode="L")
        rd.atomic_save(path, lambda tmp, im=image: im.save(tmp, format="PNG"))
        written.append(str(path))
    return written


TASKS.register("segmentation", data_task=True, per_pixel=True, default_metrics=("mean_iou", "pixel_accuracy"),
               class_weights=True)(Segmentation())
