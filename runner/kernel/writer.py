"""Artifact writes off the training loop: callers hand over copies of the values, one background thread writes
them in order, each through run_dir's atomic writes, and everything is on disk before exit or a resume reads.

Order is global: `run_dir.atomic_write`/`atomic_save` wait for the queue before a synchronous write, so a
final status.json can never be overtaken by an older queued one. A failed background write is raised to the
training loop at its next `submit` or `flush`.
"""

from __future__ import annotations

import atexit
import queue
import threading

from runner.kernel import atomic


class Writer:
    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._newest: dict = {}  # supersede key -> the newest submission's number
        self._count = 0

    def submit(self, write, *args, supersede=None) -> None:
        """Run `write(*args)` in the background; the arguments must not change afterwards (pass copies).

        `supersede`: a key (the file's path) under which a newer submission makes this one moot: when the writer
        falls behind, it skips to the newest version of a file instead of writing each one in turn.
        """
        self._raise()
        with self._lock:
            if self._thread is None:
                # a daemon, so a crashed run never hangs at exit; the atexit flush lets it finish first
                self._thread = threading.Thread(target=self._work, name="dlrun-writer", daemon=True)
                self._thread.start()
            self._count += 1
            if supersede is not None:
                self._newest[supersede] = self._count
            self._queue.put((write, args, supersede, self._count))

    def _moot(self, supersede, number: int) -> bool:
        with self._lock:
            return supersede is not None and self._newest.get(supersede) != number

    def wait(self) -> None:
        """Block until every submitted write is done (from the writer thread itself: return at once)."""
        if threading.current_thread() is not self._thread:
            self._queue.join()

    def flush(self) -> None:
        """wait(), then raise the first background failure, if any."""
        self.wait()
        self._raise()

    def _raise(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _work(self) -> None:
        while True:
            write, args, supersede, number = self._queue.get()
            try:
                # after a failure, later writes of the same run are moot
                if self._error is None and not self._moot(supersede, number):
                    write(*args)
            except BaseException as e:  # noqa: BLE001  handed to the training loop
                self._error = e
            finally:
                self._queue.task_done()


WRITER = Writer()
submit, wait, flush = WRITER.submit, WRITER.wait, WRITER.flush
atexit.register(WRITER.wait)


def save_model(model, path, durable: bool = True) -> None:
    """model.save(path), atomically, in the background: the loop pays for a copy of the variables only.

    The copy goes into a twin of the model (same config, compile config and optimizer) that only the writer
    thread touches. Models that cannot be cloned, models with layer assets, and models under a distribution
    strategy (whose variable reads may be collective operations that must stay in step on every worker) are
    saved synchronously.
    """
    copy = snapshot(model)
    if copy is None:
        atomic.atomic_save(path, model.save, durable)
        return
    save_snapshot(copy, path, durable)


def plain_variables(model) -> bool:
    """Whether the model's variables are plain ones, outside any strategy: a read of one is local and cheap.

    Under a strategy a read may be a collective operation (a sync-on-read metric sums its replicas, across
    workers too) that every worker must make in step.
    """
    import tensorflow as tf

    return not tf.distribute.has_strategy() and model.distribute_strategy is tf.distribute.get_strategy()


def snapshot(model):
    """A copy of the model's variables and optimizer slots to save later (save_snapshot), or None where the
    model has no twin (save it synchronously)."""
    twin = _twin(model)
    if twin is None:
        return None
    return twin, [v.numpy() for v in model.weights], [v.numpy() for v in model.optimizer.variables]


def save_snapshot(copy, path, durable: bool = True) -> None:
    """Save a snapshot() to `path` in the background, atomically; a newer one queued for the same path wins."""
    submit(_save_twin, *copy, path, durable, supersede=str(path))


def _save_twin(twin, layers, slots, path, durable: bool) -> None:
    for variable, value in zip(twin.weights, layers):
        variable.assign(value)
    for variable, value in zip(twin.optimizer.variables, slots):
        variable.assign(value)
    atomic.atomic_save(path, twin.save, durable)


def _twin(model):
    """The model's twin, made once per model; None where a twin cannot stand in for it."""
    import keras

    cached = getattr(model, "_dlrun_twin", False)
    if cached is not False:
        return cached
    twin = None
    # layers with assets (a TextVectorization's vocabulary) keep state outside their variables: no copy of it
    has_assets = any(hasattr(layer, "save_assets") for layer in model._flatten_layers())
    if not has_assets and plain_variables(model):
        try:
            twin = keras.models.clone_model(model)
            twin.compile_from_config(model.get_compile_config())
            if not twin.optimizer.built:
                twin.optimizer.build(twin.trainable_variables)
            if ([v.shape for v in twin.weights] != [v.shape for v in model.weights]
                    or [v.shape for v in twin.optimizer.variables] != [v.shape for v in model.optimizer.variables]):
                twin = None
        except (TypeError, ValueError, NotImplementedError, AttributeError, KeyError):
            twin = None  # subclassed or custom models: the synchronous save still works
    object.__setattr__(model, "_dlrun_twin", twin)  # bypasses Keras's attribute tracking
    return twin
