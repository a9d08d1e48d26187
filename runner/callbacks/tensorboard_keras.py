"""The Keras side of the tensorboard callback; imported only when a run builds its callbacks."""

from __future__ import annotations

import io
import time

import keras
import numpy as np
import tensorflow as tf

from runner.kernel import run_dir as rd
from runner.kernel import writer
from runner.models import outputs_logits
from runner.artifacts import plots

SAMPLES_TAG = "augmented_samples"
CONFUSION_TAG = "confusion_matrix"
MASKS_TAG = "segmentation_samples"
CONFIG_TAG = "config"


def _png_batch(png: bytes):
    return tf.expand_dims(tf.io.decode_png(png, channels=4), 0)


class RunTensorBoard(keras.callbacks.TensorBoard):
    """Counts steps from the epoch (so a resumed fit continues its curves) and adds dlrun's summaries."""

    def __init__(self, cfg, ctx):
        profile = tuple(cfg.profile_steps) if cfg.profile_steps else 0
        super().__init__(log_dir=str(ctx.run_dir.subdir(rd.TENSORBOARD)), histogram_freq=cfg.histogram_freq,
                         update_freq=cfg.update_freq, write_graph=cfg.write_graph, profile_batch=profile)
        self.cfg, self.ctx = cfg, ctx
        self.initial_step = None  # run.py sets the global step a resumed fit starts at, mid-epoch
        self.partial = False  # set by run.py while a resumed partial epoch runs as a fit of its own
        self._epoch_base = 0
        self._in_first_epoch = False  # of the current fit
        self._wrote_start = False  # the config text, graph and samples: once per process
        self._last_epoch = None
        self._epoch_t0 = 0.0
        self._samples_png: list[bytes] = []  # drawn on the writer thread, logged at the next epoch or train end
        self._samples_due = False  # submitted for drawing, not logged yet

    # Keras counts one "batch" per call of the train function and restarts at 0 on every fit; a global
    # step derived from the epoch and the batch index stays right with steps_per_execution and resumes.
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._in_first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch_base = epoch * self.ctx.steps_per_epoch
        if self._in_first_epoch and self.initial_step is not None:
            self._epoch_base = self.initial_step
        self._in_first_epoch = False
        if not self._wrote_start:
            self._wrote_start = True
            with tf.summary.record_if(True):
                self._write_run_start(epoch)
        self._epoch_t0 = time.perf_counter()

    def _push_writer(self, writer, step):
        # Keras records a call's batch summaries if its first step is a multiple of update_freq; with
        # several steps per call that misses most multiples, so record when the call spans one
        if self.update_freq == "epoch":
            return
        per_call = getattr(self.model, "steps_per_execution", 1) or 1
        record = (step + per_call - 1) // self.update_freq > (step - 1) // self.update_freq
        context = (writer.as_default(step), tf.summary.record_if(record))
        self._prev_summary_state.append(context)
        context[0].__enter__()
        context[1].__enter__()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch = self._epoch_base + batch + 1
        if self.update_freq != "epoch":
            self._pop_writer()
            self._push_writer(self._train_writer, self._global_train_batch)
        per_call = getattr(self.model, "steps_per_execution", 1) or 1
        if (self._should_trace and not self._is_tracing
                and self._global_train_batch <= self._start_batch < self._global_train_batch + per_call):
            self._start_trace()

    def on_train_batch_end(self, batch, logs=None):
        self._global_train_batch = self._epoch_base + batch + 1
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_t0
        steps = self._global_train_batch - self._epoch_base
        examples = self._examples(steps)
        extra = {"seconds": seconds}
        if examples:
            extra["examples_per_sec"] = examples / seconds
        self._last_epoch = epoch
        # record_if(True): epoch summaries must not depend on the step filter of the batch summaries
        with tf.summary.record_if(True):
            # a copy: the other callbacks (history, checkpoints) keep Keras's logs as they are
            super().on_epoch_end(epoch, {**(logs or {}), **extra})
            if self.cfg.confusion_matrix == "epoch":
                self._write_confusion(epoch)
            self._log_samples()
            self._write_masks(epoch)
        # Keras flushes only at the end of training; a killed run keeps its finished epochs, a live
        # TensorBoard shows them
        for summary_writer in self._writers.values():
            summary_writer.flush()

    def on_train_end(self, logs=None):
        with tf.summary.record_if(True):
            if self.cfg.confusion_matrix == "end" and self._last_epoch is not None and not self.partial:
                self._write_confusion(self._last_epoch)
            self._log_samples(wait=True)
        super().on_train_end(logs)

    def _examples(self, steps: int) -> int | None:
        info = self.ctx.info
        n = info.cardinality.get("train") if info is not None else None
        if not n:
            return None
        # the epoch's share of the split: the last batch of an epoch may be short
        return round(n * steps / self.ctx.steps_per_epoch)

    def _write_run_start(self, epoch: int):
        config = self.ctx.run_dir.file(rd.CONFIG)
        with self._train_writer.as_default(step=epoch):
            if config.exists():
                tf.summary.text(CONFIG_TAG, f"```yaml\n{config.read_text()}\n```")
            if self.write_graph:
                self._write_op_graph()
            if epoch == 0 and not self.initial_step and self.cfg.images and self.ctx.train_data is not None:
                self._write_samples()

    def _write_op_graph(self):
        # Keras 3 writes only the conceptual graph ("keras" tag); the op graph of the forward pass is
        # what the Graphs dashboard draws
        inputs = getattr(self.model, "inputs", None)  # None for subclassed models (a distiller)
        if not inputs:
            return
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in inputs]
        forward = tf.function(lambda *x: self.model(list(x) if len(x) > 1 else x[0], training=False))
        tf.summary.graph(forward.get_concrete_function(*specs).graph)

    def _write_samples(self):
        info = self.ctx.info
        # images with class labels only: the grid titles each sample with its class (or its mixup blend)
        if info is None or len(info.input_shape) != 3 or not info.num_classes:
            return
        # the first batch of the stream fit consumes: exactly what the model saw, and no second data load
        x, y = next(iter(self.ctx.train_data.take(1)))
        x, y = np.asarray(x)[: self.cfg.images], np.asarray(y)[: self.cfg.images]
        from runner.tasks import task

        own = task(info.task).tensorboard_samples(self.model, x, y, info)  # segmentation: image | true | predicted
        if own is not None:
            tf.summary.image(SAMPLES_TAG, _png_batch(own), step=0,
                             description="the first training batch after augmentation: image | true mask | "
                                         "predicted mask (the untrained model)")
            return
        if y.ndim == 2 and y.shape[1] == 1:  # a binary label column: class indices for the titles
            y = np.rint(y[:, 0]).astype(np.int64)
        # drawing (and importing matplotlib) happens beside the training loop, on the writer thread
        writer.submit(self._draw_samples, x, y, info)
        self._samples_due = True

    def _draw_samples(self, x, y, info):
        from runner.artifacts.plots import write_grid

        png = io.BytesIO()
        write_grid(x, y, info, png)
        self._samples_png.append(png.getvalue())

    def _log_samples(self, wait: bool = False):
        """The sample grid into the train events, once drawn; at train end, waiting for it."""
        if not self._samples_due:
            return
        if wait and not self._samples_png:
            writer.wait()
        if self._samples_png:
            self._samples_due = False
            with self._train_writer.as_default():
                tf.summary.image(SAMPLES_TAG, _png_batch(self._samples_png.pop()), step=0,
                                 description="the first training batch after augmentation, first epoch")

    def _write_masks(self, epoch: int):
        """Per-pixel tasks: validation samples as image | true mask | predicted mask, every epoch."""
        from runner.tasks import TASKS, task

        info, data = self.ctx.info, self.ctx.validation_data
        if data is None or info is None or not TASKS.get(info.task).per_pixel or not self.cfg.images:
            return
        x, y = next(iter(data.unbatch().batch(self.cfg.images)))
        png = task(info.task).tensorboard_samples(self.model, x, y, info, f"validation, epoch {epoch + 1}")
        with self._val_writer.as_default():
            tf.summary.image(MASKS_TAG, _png_batch(png), step=epoch,
                             description="validation examples: image | true mask | predicted mask")

    def _write_confusion(self, epoch: int):
        info = self.ctx.info
        data = self.ctx.validation_data
        if data is None or info is None or info.task != "classification" or not info.num_classes:
            return
        # at the end, the very figure of confusion_matrix.png (drawn once): the event's step says the epoch
        title = "validation" if self.cfg.confusion_matrix == "end" else f"validation, epoch {epoch + 1}"
        png = plots.confusion_png(self.model, data, info, outputs_logits(self.model), title)
        with self._val_writer.as_default():
            tf.summary.image(CONFUSION_TAG, _png_batch(png), step=epoch)
