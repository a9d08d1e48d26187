"""Sample grids: fixed noise through the averaged generator, as a PNG mosaic and a TensorBoard image each epoch."""

from __future__ import annotations

import numpy as np

SAMPLES_TAG = "gan/samples"
UPSCALE = 4  # 8x8 digits are unreadable at one screen pixel per image pixel


def noise(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """The fixed noise of grids and FID: the same for a seed whatever the run did before."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim)).astype("float32")


def grid_labels(n: int, columns: int, num_classes: int, label: int | None = None) -> np.ndarray:
    """One class per grid row (cycling), or `label` everywhere."""
    if label is not None:
        return np.full((n, 1), label, "int32")
    return (np.arange(n) // columns % num_classes).astype("int32")[:, None]


def generator_inputs(z: np.ndarray, labels: np.ndarray | None):
    """What the generator takes: the noise, and the classes beside it for a conditional one."""
    return [z, labels] if labels is not None else z


def generate(generator, z: np.ndarray, labels: np.ndarray | None, batch_size: int = 256) -> np.ndarray:
    return np.asarray(generator.predict(generator_inputs(z, labels), batch_size=batch_size, verbose=0))


def mosaic(images: np.ndarray, value_range, columns: int) -> np.ndarray:
    """uint8 (H, W, C) mosaic of `images` in the data's raw range, one pixel of border, upscaled."""
    low, high = value_range
    x = np.clip((images.astype("float32") - low) / (high - low), 0.0, 1.0)
    x = np.repeat(np.repeat(x, UPSCALE, axis=1), UPSCALE, axis=2)
    n, h, w, c = x.shape
    rows = -(-n // columns)
    out = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, c), "float32")
    for i, image in enumerate(x):
        r, col = divmod(i, columns)
        out[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + col * (w + 1): 1 + col * (w + 1) + w] = image
    return (out * 255).round().astype("uint8")


def png(image: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_png(image).numpy()


def sample_callback(model, run_dir, grid: int, seed: int, tensorboard_dir):
    """The Keras callback that writes samples.png (beside the loop) and the TensorBoard image each epoch."""
    import keras
    import tensorflow as tf

    from runner.kernel import run_dir as rd
    from runner.kernel.writer import submit

    class GanSamples(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            n = grid * grid
            self.z = noise(n, model.latent_dim, seed)
            self.labels = grid_labels(n, grid, model.num_classes) if model.conditional else None
            self.writer = tf.summary.create_file_writer(str(tensorboard_dir)) if tensorboard_dir else None

        def on_epoch_end(self, epoch, logs=None):
            images = generate(model.averaged_generator(), self.z, self.labels)
            data = png(mosaic(images, model.value_range, grid))
            submit(rd.atomic_write, run_dir.file(rd.SAMPLES), lambda f: f.write(data), "wb")
            if self.writer is not None:
                with self.writer.as_default():
                    tf.summary.image(SAMPLES_TAG, tf.io.decode_png(data)[None], step=epoch,
                                     description="the averaged generator on fixed noise (a class per row if "
                                                 "conditional)")
                self.writer.flush()

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self.writer.close()

    return GanSamples()
