"""Make Keras 3.15's model.fit/evaluate work under a multi-worker MultiWorkerMirroredStrategy.

Stock Keras (3.x through 3.15.1 with TF 2.16..2.21; keras-team/keras#20585, tensorflow/tensorflow#72388)
fails there twice: `TensorFlowTrainer._maybe_symbolic_build` eagerly MEAN-reduces the first distributed
batch ("Attempt to convert a value (PerReplica...) to a Tensor"), and `reduce_per_replica` mean-reduces
each replica's scalar logs with `axis=0` ("Invalid reduction dimension 0 for input with 0 dimensions").
`install` overrides both on one model instance, nothing global, after kernel/keras_pins.py has checked that the
installed Keras is the code this works around; when Keras fixes it, delete this module and its one call in
training/compile_options.py.
"""

from __future__ import annotations

import types

from runner.kernel.keras_pins import require


def in_multi_worker_mode(strategy) -> bool:
    import tensorflow as tf

    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def install(model) -> None:
    """Give `model` a symbolic build from a local batch and rank-1 logs, if it trains across workers."""
    if not in_multi_worker_mode(model.distribute_strategy):
        return
    require("multi_worker_fit")
    model._maybe_symbolic_build = types.MethodType(_maybe_symbolic_build, model)
    # Keras's own `axis=0` mean then averages the replicas' one-element logs back into scalars
    model.train_step = _with_rank1_logs(model.train_step)
    model.test_step = _with_rank1_logs(model.test_step)


def _with_rank1_logs(step):
    import tensorflow as tf

    def wrapped(data):
        logs = step(data)
        return tf.nest.map_structure(lambda v: tf.reshape(v, [1]) if v.shape.rank == 0 else v, logs)

    return wrapped


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Keras's version, building from this worker's first local replica batch instead of a cross-worker mean:
    the symbolic build only needs shapes and dtypes."""
    import tensorflow as tf

    if iterator is not None:
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tf.nest.map_structure(
                lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, batch)
            break
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)
