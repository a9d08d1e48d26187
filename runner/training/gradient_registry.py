"""The gradient functions a run's tracing registers in TensorFlow's process-wide registry, released when it ends."""

from __future__ import annotations

import contextlib

from runner.kernel.keras_pins import pinned

CUSTOM_GRADIENT = "CustomGradient-"


@contextlib.contextmanager
def released_custom_gradients():
    """Drop the `CustomGradient-*` entries registered inside the block.

    In graph mode `tf.custom_gradient` registers its gradient function under a fresh name and never removes it, and
    the function closes over the traced graph. The gradients' all-reduce of every train step is such a custom
    gradient (Keras calls TensorFlow's `ReplicaContext.all_reduce` even under one replica), and so are the
    straight-through gradients of Keras's int8 layers (quantization-aware fine-tuning): each run kept its
    train-step graphs for the life of the process (a sweep's trials, k-fold's folds).
    Gradients are taken while tracing, so nothing looks these entries up once the run is over; a later retrace
    registers its own.
    """
    if not pinned("release_custom_gradients"):
        yield
        return
    from tensorflow.python.framework import ops

    entries = ops._gradient_registry._registry
    before = set(entries)
    try:
        yield
    finally:
        for name in set(entries) - before:
            if name.startswith(CUSTOM_GRADIENT):
                del entries[name]
