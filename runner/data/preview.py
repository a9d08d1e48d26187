"""`dlrun data preview`: a grid of augmented training samples with their labels, as the model will see them."""

from __future__ import annotations

import math

from runner.errors import ConfigError


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


def label_text(y, class_names) -> str:
    """'cat' for a class index; 'cat 0.70 / dog 0.30' for a mixed one-hot label."""
    import numpy as np

    names = class_names or []
    name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    if np.ndim(y) == 0:
        return name(int(y))
    top = [int(i) for i in np.argsort(y)[::-1][:2] if y[i] > 1e-3]
    return " / ".join(f"{name(i)} {y[i]:.2f}" for i in top) if len(top) > 1 else name(top[0])


def write_grid(images, labels, info, out: str) -> str:
    """Save images (raw range) as a PNG grid titled with their labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    low, high = info.value_range or (float(images.min()), float(images.max()))
    shown = np.clip((images - low) / max(high - low, 1e-12), 0, 1)
    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, y in zip(axes.flat, shown, labels):
        gray = image.shape[-1] == 1
        ax.imshow(image[..., 0] if gray else image[..., :3], cmap="gray" if gray else None, vmin=0, vmax=1)
        ax.set_title(label_text(y, info.class_names), fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def preview(cfg, n: int, out: str) -> str:
    """Write the PNG grid of `n` augmented training samples to `out`; returns the path."""
    images, labels, info = augmented_samples(cfg, n)
    return write_grid(images, labels, info, out)
