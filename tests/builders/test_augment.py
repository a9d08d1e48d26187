"""The augmentation catalogue on cifar-shaped batches: shapes, dtypes, value ranges, seeding, mixup/cutmix labels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from runner.spec import load_config
from runner.data.augment import AUGMENTATIONS, augment_fn
from runner.data.info import DataInfo
from runner.kernel.errors import ConfigError
from helpers import write_spec

RGB = DataInfo((32, 32, 3), num_classes=10, value_range=(0.0, 255.0))
BATCH = 16


@pytest.fixture(scope="module")
def batch():
    """16 real digits upsampled to 32x32x3 in 0..255, with one-hot labels."""
    bunch = load_digits()
    x = tf.image.resize(bunch.images[:BATCH, :, :, None] * (255 / 16), (32, 32), method="nearest")
    x = tf.tile(tf.cast(x, tf.float32), [1, 1, 1, 3]) * tf.constant([1.0, 0.8, 0.6])  # a little colour
    return x, tf.one_hot(bunch.target[:BATCH], 10)


def fn_for(tmp_path, augment=(), batch_augment=(), info=RGB):
    # a spec of RGB images (`dlrun validate` refuses colour augmentations on sklearn's grayscale digits);
    # only its augment blocks are used, on `info`
    spec = {"name": "aug", "data": {"source": "tfds", "name": "cifar10", "augment": list(augment),
                                    "batch_augment": list(batch_augment)}, "model": {"arch": "mlp"}}
    cfg = load_config(str(write_spec(tmp_path, spec)), [])[0]
    return augment_fn(cfg.data, info)


def run(fn, x, y, seed):
    """Apply `fn` the way the pipeline does: inside a tf.data map, seed (seed, epoch-and-step) as a tensor."""
    ds = tf.data.Dataset.from_tensors((x, y)).map(lambda a, b: fn(a, b, tf.constant(seed, tf.int64)))
    out_x, out_y = next(iter(ds))
    return out_x.numpy(), out_y.numpy()


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS.names()))
def test_each_augmentation_keeps_shape_dtype_range_and_is_seeded(tmp_path, batch, name):
    x, y = batch
    fn = fn_for(tmp_path, augment=[name])
    a, ya = run(fn, x, y, [7, 0])
    b, _ = run(fn, x, y, [7, 0])
    c, _ = run(fn, x, y, [8, 0])
    assert a.shape == (BATCH, 32, 32, 3) and a.dtype == np.float32
    assert a.min() >= -1e-3 and a.max() <= 255 + 1e-3, (a.min(), a.max())
    assert np.array_equal(a, b), "same (seed, epoch, step): same augmentation"
    assert not np.array_equal(a, c), "another epoch: another augmentation"
    assert not np.array_equal(a, x.numpy()), "the augmentation changes the batch"
    assert np.array_equal(ya, y.numpy()), "per-example augmentations leave labels alone"


def test_crop_pads_then_crops_back_to_size_with_shifted_content(tmp_path, batch):
    x, y = batch
    out, _ = run(fn_for(tmp_path, augment=[{"random_crop": {"padding": 4}}]), x, y, [1, 2])
    # each output is the input shifted by at most 4 pixels each way, zeros filling the border
    for i in range(BATCH):
        padded = np.pad(x[i].numpy(), ((4, 4), (4, 4), (0, 0)))
        assert any(np.array_equal(out[i], padded[dy:dy + 32, dx:dx + 32]) for dy in range(9) for dx in range(9))


def test_flip_mirrors_whole_images(tmp_path, batch):
    x, y = batch
    out, _ = run(fn_for(tmp_path, augment=[{"random_flip": {"mode": "horizontal"}}]), x, y, [3, 0])
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x.numpy())]
    same = [np.array_equal(o, i) for o, i in zip(out, x.numpy())]
    assert all(f or s for f, s in zip(flipped, same)) and 0 < sum(flipped) < BATCH


def test_grayscale_images_are_gray(tmp_path, batch):
    x, y = batch
    out, _ = run(fn_for(tmp_path, augment=[{"random_grayscale": {"factor": 1.0}}]), x, y, [0, 0])
    assert np.allclose(out[..., 0], out[..., 1], atol=1e-3) and np.allclose(out[..., 1], out[..., 2], atol=1e-3)


def test_mixup_labels_sum_to_one_with_the_image_mix_ratio(tmp_path):
    # image i is constant i + 1 and labelled class i: the pixel value tells the mix, the label must agree
    x = tf.ones((10, 32, 32, 3)) * tf.reshape(tf.range(1.0, 11.0), (10, 1, 1, 1))
    y = tf.eye(10)
    out, labels = run(fn_for(tmp_path, batch_augment=[{"mixup": {"alpha": 0.4}}]), x, y, [5, 1])
    assert np.allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    for i in range(10):
        own = labels[i, i]
        partner = int(np.argmax(np.where(np.arange(10) == i, -1, labels[i]))) if own < 1 - 1e-6 else i
        expected = own * (i + 1) + (1 - own) * (partner + 1)
        assert np.allclose(out[i], expected, atol=1e-3), (i, own, partner)
    assert len({round(float(w), 4) for w in labels.max(axis=1)}) > 1  # a Beta draw per example


def test_cutmix_labels_sum_to_one_and_equal_the_pasted_area(tmp_path):
    x = tf.ones((10, 32, 32, 3)) * tf.reshape(tf.range(1.0, 11.0), (10, 1, 1, 1))
    y = tf.eye(10)
    out, labels = run(fn_for(tmp_path, batch_augment=[{"cutmix": {"alpha": 2.0}}]), x, y, [9, 4])
    assert np.allclose(labels.sum(axis=1), 1.0, atol=1e-6)
    for i in range(10):
        values, counts = np.unique(out[i, ..., 0], return_counts=True)
        share = dict(zip(np.round(values).astype(int) - 1, counts / counts.sum()))
        nonzero = {k: v for k, v in enumerate(labels[i]) if v > 1e-6}
        assert set(nonzero) == set(share) and all(abs(nonzero[k] - share[k]) < 1e-5 for k in share), (i, share, nonzero)


def test_mixup_after_augmentations_is_reproducible(tmp_path, batch):
    x, y = batch
    fn = fn_for(tmp_path, augment=[{"random_crop": {}}, "random_flip"], batch_augment=["mixup", "cutmix"])
    a, ya = run(fn, x, y, [2, 3])
    b, yb = run(fn, x, y, [2, 3])
    assert np.array_equal(a, b) and np.array_equal(ya, yb) and np.allclose(ya.sum(axis=1), 1, atol=1e-6)


def test_colour_augmentations_need_rgb(tmp_path):
    gray = DataInfo((8, 8, 1), num_classes=10, value_range=(0.0, 16.0))
    with pytest.raises(ConfigError, match=r"^data.augment\[1\].random_hue: needs RGB images \(3 channels\); "
                                          r"the data has input shape \[8, 8, 1\]$"):
        fn_for(tmp_path, augment=["random_flip", "random_hue"], info=gray)


def test_preview_batch_shows_augmented_samples_with_mixed_labels(tmp_path):
    from runner.artifacts.plots import label_text, write_grid
    from runner.tools.preview import preview_batch

    spec = {"name": "prev", "seed": 1, "model": {"arch": "mlp"}, "train": {"loss": "categorical_crossentropy"},
            "data": {"source": "sklearn", "name": "digits", "augment": ["random_flip"],
                     "batch_augment": [{"mixup": {"alpha": 0.4}}]}}
    cfg = load_config(str(write_spec(tmp_path, spec)), [])[0]
    images, labels = preview_batch(cfg, 12)
    again, _ = preview_batch(cfg, 12)
    assert images.shape == (12, 8, 8, 1) and labels.shape == (12, 10) and np.array_equal(images, again)
    assert np.allclose(labels.sum(axis=1), 1, atol=1e-6) and 0 <= images.min() and images.max() <= 16 + 1e-4
    names = [str(i) for i in range(10)]
    assert label_text(np.int64(3), names) == "3"
    assert label_text(np.eye(10)[7] * 0.7 + np.eye(10)[2] * 0.3, names) == "7 0.70 / 2 0.30"
    assert label_text(np.eye(10)[5], names) == "5"
    info = DataInfo((8, 8, 1), num_classes=10, class_names=names, value_range=(0.0, 16.0))
    out = write_grid(images, labels, info, str(tmp_path / "grid.png"))
    from PIL import Image

    with Image.open(out) as grid:
        assert grid.format == "PNG" and grid.size == (4 * 160, 3 * 180)  # ceil(sqrt(12)) = 4 columns, 3 rows


def test_augmentations_on_feature_rows_are_a_config_error(tmp_path):
    """A numpy file of feature rows: the spec cannot tell validate, so building the pipeline refuses it."""
    with pytest.raises(ConfigError) as e:
        fn_for(tmp_path, batch_augment=[{"mixup": {}}], info=DataInfo((4,), num_classes=3))
    assert str(e.value) == ("data.batch_augment: image augmentations need images (height x width x channels); "
                            "this data's examples have shape [4]. Remove data.batch_augment")
