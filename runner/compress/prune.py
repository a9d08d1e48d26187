"""Magnitude pruning native to Keras 3: a mask per kernel, applied by the optimizer after every step, updated on
the polynomial ramp by a callback, carried by the backup, folded into the weights at the end."""

from __future__ import annotations

from runner.compress import schedule
from runner.compress.plan import GROUP, KEEP, LayerPlan, input_axis, plan

def prunable_layers(model) -> list:
    """The trainable Dense and Conv1D/2D/3D layers with a built kernel, nested models included."""
    import keras

    kinds = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    return [layer for layer in model._flatten_layers(include_self=False)  # what model.quantize walks too
            if isinstance(layer, kinds) and layer.trainable and getattr(layer, "kernel", None) is not None]


def magnitude_mask(w, sparsity: float):
    """Zeros at the round(sparsity * size) smallest |w| (ties broken by position, so every run agrees)."""
    import numpy as np

    mask = np.ones(w.size, dtype=w.dtype)
    k = int(round(sparsity * w.size))
    if k:
        mask[np.argsort(np.abs(w), axis=None, kind="stable")[:k]] = 0
    return mask.reshape(w.shape)


def global_magnitude_masks(weights: list, sparsity: float) -> list:
    """magnitude_mask over several kernels at once: one threshold, round(sparsity * total) zeros in all."""
    import numpy as np

    flat = magnitude_mask(np.concatenate([np.ravel(w) for w in weights]), sparsity)
    ends = np.cumsum([w.size for w in weights])[:-1]
    return [m.reshape(w.shape) for m, w in zip(np.split(flat, ends), weights)]


def two_four_mask(w):
    """Ones at the 2 largest |w| of every 4 consecutive weights along the input axis."""
    import numpy as np

    axis = input_axis(w.shape)
    moved = np.moveaxis(np.abs(w), axis, -1)
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // GROUP, GROUP)
    order = np.argsort(-groups, axis=-1, kind="stable")
    keep = np.zeros_like(groups)
    np.put_along_axis(keep, order[..., :KEEP], 1, axis=-1)
    return np.moveaxis(keep.reshape(moved.shape), -1, axis).astype(w.dtype)


def sparsity_of(model) -> dict:
    """Fraction of exact zeros in each Conv/Dense kernel and across all of them."""
    import numpy as np

    layers, zeros, total = {}, 0, 0
    for layer in prunable_layers(model):
        w = np.asarray(layer.kernel.numpy())
        layers[layer.name] = float(np.mean(w == 0))
        zeros, total = zeros + int(np.sum(w == 0)), total + w.size
    return {"overall": zeros / total if total else 0.0, "layers": layers}


class _Target:
    """A kernel, its mask (a non-trainable variable) and its plan; the mask rides on the kernel's constraint,
    which Keras's optimizer applies after every update, inside the compiled step (so every step of a
    steps_per_execution loop, on every replica)."""

    def __init__(self, layer, layer_plan: LayerPlan):
        import keras
        import numpy as np

        self.layer, self.plan, self.kernel = layer, layer_plan, layer.kernel
        self.mask = keras.Variable(np.ones(self.kernel.shape, dtype=self.kernel.dtype), trainable=False,
                                   name=f"{layer.name}_prune_mask")
        self.user_constraint = self.kernel.constraint
        user = self.user_constraint
        mask = self.mask
        self.kernel.constraint = (lambda w: keras.ops.multiply(user(w), mask)) if user else (
            lambda w: keras.ops.multiply(w, mask))

    def weights(self):
        import keras

        return keras.ops.convert_to_numpy(self.kernel)

    def update(self, sparsity: float, mask=None) -> None:
        """A new mask (given, or from this kernel's magnitudes), applied to the kernel at once."""
        w = self.weights()
        if mask is None:
            mask = two_four_mask(w) if self.plan.structured else magnitude_mask(w, sparsity)
        self.mask.assign(mask)
        self.kernel.assign(w * mask)

    def fold(self) -> None:
        """The mask into the weights, and the plain layer back: nothing of pruning is left in the model."""
        import keras

        self.kernel.assign(keras.ops.convert_to_numpy(self.kernel) * keras.ops.convert_to_numpy(self.mask))
        self.kernel.constraint = self.user_constraint


def make_pruning_callback(prune, model, epochs: int, steps_per_epoch: int, tensorboard_dir=None):
    """The callback that owns the masks: updates them on the ramp, reports sparsity, and hands them to the backup."""
    import keras

    from runner.compress.checks import model_problems
    from runner.kernel.errors import ConfigError
    from runner.language.yaml12 import dotted

    layers = prunable_layers(model)
    shapes = [(layer.name, tuple(layer.kernel.shape)) for layer in layers]
    # `validate --deep` (run before every CLI train) says where in the spec; this guards the other callers
    misfits = [f"{dotted(path)}: {rule}" for path, rule in model_problems(prune, shapes) if "2:4" in rule]
    if misfits:
        raise ConfigError(misfits)
    plans = plan(prune, shapes)
    with model.distribute_strategy.scope():  # masks mirrored like the kernels they multiply
        targets = [_Target(layer, p) for layer, p in zip(layers, plans) if p.final_sparsity() > 0]
    begin, end = schedule.ramp(prune, epochs, steps_per_epoch)

    class Pruning(keras.callbacks.Callback):
        """Mask updates at the ramp's update points; masks in the backup (get_state/set_state)."""

        def __init__(self):
            super().__init__()
            self.targets, self.begin, self.end, self.frequency = targets, begin, end, prune.frequency
            self.writer = None

        def on_train_batch_end(self, batch, logs=None):
            # the optimizer's step count is the truth across resumes, partial epochs and steps_per_execution
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            previous = step - (self.model.steps_per_execution or 1)
            if schedule.update_due(previous, step, self.begin, self.end, self.frequency):
                self.update(step)

        def update(self, step: int) -> None:
            pooled = [t for t in self.targets if t.plan.pooled]
            if pooled:
                sparsity = schedule.sparsity_at(step, prune.sparsity, self.begin, self.end)
                for target, mask in zip(pooled, global_magnitude_masks([t.weights() for t in pooled], sparsity)):
                    target.update(sparsity, mask)
            for target in self.targets:
                if not target.plan.pooled:
                    target.update(schedule.sparsity_at(step, target.plan.sparsity, self.begin, self.end))

        def on_epoch_end(self, epoch, logs=None):
            if tensorboard_dir is None:
                return
            import tensorflow as tf

            if self.writer is None:
                self.writer = tf.summary.create_file_writer(str(tensorboard_dir))
            report = sparsity_of(self.model)
            with self.writer.as_default():
                tf.summary.scalar("sparsity/overall", report["overall"], step=epoch)
                for name, value in report["layers"].items():
                    tf.summary.scalar(f"sparsity/{name}", value, step=epoch)
            self.writer.flush()

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self.writer.close()
                self.writer = None

        def get_state(self):
            return {"layers": [t.layer.name for t in self.targets]}, [
                keras.ops.convert_to_numpy(t.mask) for t in self.targets]

        def set_state(self, state: dict, arrays) -> None:
            for target, value in zip(self.targets, arrays, strict=True):
                target.mask.assign(value)

        def fold(self) -> None:
            for target in self.targets:
                target.fold()

    return Pruning()
