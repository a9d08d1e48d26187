"""`dlrun data preview`: a grid of augmented training samples with their labels, as the model will see them."""

from __future__ import annotations


from runner.artifacts.plots import write_grid
from runner.kernel.errors import ConfigError


def preview_batch(cfg, n: int):
    """(images, labels) of the first n training examples of epoch 0 after augmentation (mixup/cutmix included).

    images are numpy in the source's raw value range; labels are class indices, or one-hot mixtures when a
    batch augmentation mixes them. TensorBoard's image tab reuses this."""
    images, labels, _ = augmented_samples(cfg, n)
    return images, labels


def augmented_samples(cfg, n: int):
    """(images, labels, DataInfo): see preview_batch."""
    from runner.data.build import build_data

    data = build_data(cfg.data, cfg.seed)  # first: missing data fails before TensorFlow loads
    import keras

    from runner.data.augment import augment_fn
    from runner.data.pipeline import label_fn, train_dataset

    info = data.info
    if len(info.input_shape) != 3:
        raise ConfigError(f"dlrun data preview shows images; the inputs of this spec's data (data.source: "
                          f"{cfg.data.source}) have shape {list(info.input_shape)}")
    n = min(n, info.cardinality["train"])
    one_batch = cfg.data.model_copy(update={"batch_size": n})
    mixing = bool(cfg.data.batch_augment)
    labels = label_fn("one_hot" if mixing else "sparse", info.num_classes)
    ds = train_dataset(data.splits["train"], info.cardinality["train"], one_batch, cfg.seed, 1, labels,
                       augment_fn(cfg.data, info))
    x, y = next(iter(ds))
    return keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y), info


def preview(cfg, n: int, out: str) -> str:
    """Write the PNG grid of `n` augmented training samples to `out`; returns the path."""
    from runner.tasks import TASKS

    images, labels, info = augmented_samples(cfg, n)
    if TASKS.get(info.task).per_pixel:  # image and mask side by side, one example per row
        from runner.artifacts.plots import png_bytes
        from runner.tasks.segmentation import mask_figure

        data = png_bytes(mask_figure(images, labels, None, info, "augmented training samples, epoch 1"))
        with open(out, "wb") as f:
            f.write(data)
        return out
    return write_grid(images, labels, info, out)
