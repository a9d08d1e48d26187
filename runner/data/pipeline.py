"""The tf.data pipeline: cache, per-epoch seeded shuffle, batch, vectorized augmentation, prefetch."""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
_GRAPH_SEED = 20_261_123
log = logging.getLogger("dlrun")


def static_tuning(ds: tf.data.Dataset) -> tf.data.Dataset:
    """The stream without tf.data's autotuning thread: an AUTOTUNE map runs one call per CPU (at most 16), and
    prefetch buffers keep their own sizing.

    Freeing an autotuned iterator joins its model thread, and TensorFlow's CancellationManager runs the wake-up
    callback before it marks itself cancelled: a thread that wakes in between sleeps out its optimization period,
    which doubles up to 60 s over a stream's life. Keras frees the training stream as `fit` returns, so a run
    stalled there for up to that long in some runs (5 s after 30 digits epochs; docs/performance.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def label_fn(mode: str, num_classes: int | None):
    """Labels as the loss wants them: sparse ints, one-hot floats, or float columns (per example or per pixel)."""
    if mode == "one_hot":
        return lambda y: tf.one_hot(tf.cast(y, tf.int32), num_classes)
    if mode == "binary":  # one column per example, or one channel per pixel for a batch of masks
        return lambda y: tf.cast(y, tf.float32)[..., None] if y.shape.rank == 3 else tf.reshape(
            tf.cast(y, tf.float32), (-1, 1))
    if mode == "regression":
        return lambda y: tf.reshape(tf.cast(y, tf.float32), (-1, 1))
    return lambda y: y


def as_float(x):
    """Integer inputs (tfds's uint8 images) become float32 after batching: the cache keeps the 4x smaller uint8."""
    return tf.cast(x, tf.float32) if x.dtype.is_integer else x


def split_bytes(ds: tf.data.Dataset, n: int) -> int | None:
    """Memory of n unbatched examples, from the element spec; None when a size is unknown (strings, ragged)."""
    total = 0
    for spec in tf.nest.flatten(ds.element_spec):
        if spec.dtype == tf.string or not spec.shape.is_fully_defined():
            return None
        total += int(np.prod(spec.shape, dtype=np.int64)) * spec.dtype.size
    return total * n


def available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that reports it
        return None


def _cached(ds: tf.data.Dataset, cache, n: int | None = None) -> tf.data.Dataset:
    if cache is True:
        size, free = (split_bytes(ds, n), available_memory()) if n else (None, None)
        if size is not None and free is not None and size > free // 2:
            # an in-memory cache that does not fit ends in swapping or the OOM killer, mid-epoch
            log.warning("data.cache: the training split needs %.1f GiB and %.1f GiB of memory is free; not "
                        "caching it (set data.cache to a file path to cache on disk)", size / 2**30, free / 2**30)
            return ds
        return ds.cache()
    if isinstance(cache, str) and cache:
        return ds.cache(cache)
    return ds


def train_dataset(ds, n: int, cfg_data, seed: int, epochs: int, labels, augment=None,
                  initial_epoch: int = 0, skip_batches: int = 0):
    """Batches of epochs [initial_epoch, epochs): epoch e's order and augmentation depend on (seed, e) only,
    so a resumed run sees exactly the batches the interrupted one would have."""
    batch = cfg_data.batch_size
    base = _cached(ds, cfg_data.cache, n)
    buffer = min(cfg_data.shuffle_buffer, n)

    def one_epoch(epoch):
        # a graph-level seed of this function's own: TF's get_seed compares (graph seed, op seed) with (0, 0),
        # which fails on a tensor op seed whenever the process-wide seed is 0 (`seed: 0` in a spec)
        tf.random.set_seed(_GRAPH_SEED)
        order = base.shuffle(buffer, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False)
        return order.batch(batch).enumerate().map(lambda step, xy: ((epoch, step), xy))

    out = tf.data.Dataset.range(initial_epoch, epochs).flat_map(one_epoch).skip(skip_batches)

    def transform(key, xy):
        x, y = xy
        x, y = as_float(x), labels(y)
        if augment is not None:
            epoch, step = key
            x, y = augment(x, y, tf.stack([tf.cast(seed, tf.int64) + epoch, step]))
        return x, y

    # map keeps its input order by default, and randomness is keyed by (seed, epoch, step), not by
    # which thread runs first: the pipeline is reproducible with parallel calls
    return static_tuning(out.map(transform, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE))


def eval_dataset(ds, cfg_data, labels):
    """Validation and test: batched, labels encoded, cached, prefetched; never augmented."""
    out = ds.batch(cfg_data.batch_size).map(lambda x, y: (as_float(x), labels(y)), num_parallel_calls=AUTOTUNE)
    return static_tuning(_cached(out, bool(cfg_data.cache)).prefetch(AUTOTUNE))


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))
