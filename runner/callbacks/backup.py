"""backup: everything a resume needs (variables, optimizer, metrics, position, callback state), written atomically."""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
from pathlib import Path
from typing import ClassVar, Literal, Union

from pydantic import Field

from runner.kernel import writer
from runner.callbacks.registry import CALLBACKS
from runner.language.fields import PositiveInt, Strict

FORMAT = 1
KEEP = 2  # the newest backup and the previous good one


class Backup(Strict):
    ENABLED: ClassVar[bool] = True
    every: Union[Literal["epoch"], PositiveInt] = Field(
        "epoch", description="'epoch', or every N training steps (taken at the first steps_per_execution "
                             "boundary at or after each multiple of N)")


class BackupInvalid(Exception):
    """A backup file that cannot be trusted: truncated, corrupt or from another format."""


@CALLBACKS.register("backup", config=Backup)
def build(cfg: Backup, ctx):
    return []  # run.py builds BackupCallback itself: it needs the model's other callbacks and the position


def backup_path(folder: Path, global_step: int) -> Path:
    return Path(folder) / f"backup-{global_step:010d}.npz"


def backup_files(folder: Path) -> list[Path]:
    """Backups newest first (the global step is in the name, zero-padded), queued ones included."""
    writer.wait()
    return sorted(Path(folder).glob("backup-*.npz"), reverse=True)


def _digest(arrays: dict) -> str:
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def encode(meta: dict, arrays: dict) -> bytes:
    import numpy as np

    meta = {**meta, "format": FORMAT, "sha256": _digest(arrays)}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def read_backup(path: Path) -> tuple[dict, dict]:
    """(meta, arrays) of a backup file, or BackupInvalid saying why it cannot be used."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/numpy raise many types for truncated or garbled files
        raise BackupInvalid(f"unreadable ({type(e).__name__}: {e})") from None
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes())
    except (KeyError, ValueError) as e:
        raise BackupInvalid(f"no readable metadata ({e})") from None
    if meta.get("format") != FORMAT:
        raise BackupInvalid(f"format {meta.get('format')!r}, expected {FORMAT}")
    if meta.get("sha256") != _digest(arrays):
        raise BackupInvalid("checksum mismatch")
    return {**meta, "file": str(path)}, arrays


def write_backup(path: Path, meta: dict, arrays: dict) -> None:
    """Temp file + fsync + os.replace (run_dir.atomic_write): a reader sees the old file or the new one."""
    from runner.kernel import run_dir as rd

    data = encode(meta, arrays)
    rd.atomic_write(path, lambda f: f.write(data), mode="wb")


def _write_and_prune(folder: Path, path: Path, meta: dict, arrays: dict) -> None:
    write_backup(path, meta, arrays)
    for old in backup_files(folder)[KEEP:]:  # only once the new one is complete
        old.unlink(missing_ok=True)


class AttributeState:
    """Backup state of a Keras callback whose state is plain attributes that its on_train_begin resets."""

    def __init__(self, callback, names: tuple):
        self.callback, self.names, self.pending = callback, names, None

    def get_state(self):
        values = {n: getattr(self.callback, n) for n in self.names}
        return {n: v if v is None or isinstance(v, int) else float(v) for n, v in values.items()}, []

    def set_state(self, state: dict, arrays) -> None:
        self.pending = state

    def apply_pending(self) -> None:
        """Called from BackupCallback.on_train_begin, which runs after every other callback's reset."""
        if self.pending is not None:
            for name, value in self.pending.items():
                setattr(self.callback, name, value)
            self.pending = None


@functools.cache
def scaled_schedule_class():
    """A schedule times a constant: how a NaN rollback lowers a learning rate that a schedule computes."""
    import keras

    @keras.saving.register_keras_serializable(package="dlrun")
    class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, schedule, scale: float):
            self.schedule, self.scale = schedule, float(scale)

        def __call__(self, step):
            return self.schedule(step) * self.scale

        def get_config(self):
            return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "scale": self.scale}

        @classmethod
        def from_config(cls, config):
            return cls(keras.optimizers.schedules.deserialize(config["schedule"]), config["scale"])

    return ScaledSchedule


def _values(variables, plain: bool) -> list:
    import keras

    if plain:
        # the backend's own read, half the time of Keras's conversion, which also copies (save() copies once)
        return [v.numpy() for v in variables]
    # the variable, not v.value: a SyncOnRead metric variable under a strategy reads its replicas' sum
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _assign(variables, arrays: dict, prefix: str, count: int) -> None:
    if len(variables) != count:
        raise BackupInvalid(f"{prefix}: the backup has {count} variables, the model {len(variables)}")
    for i, v in enumerate(variables):
        value = arrays[f"{prefix}/{i}"]
        if tuple(value.shape) != tuple(v.shape):
            raise BackupInvalid(f"{prefix}/{i} ({v.path}): shape {value.shape} in the backup, {v.shape} in the model")
        v.assign(value)


def _optimizers(model) -> list:
    """The model's optimizer, then any it also trains with (a GAN's discriminator optimizer, built by compile)."""
    return [model.optimizer, *getattr(model, "extra_optimizers", ())]


def make_backup_callback(folder: Path, every, steps_per_epoch: int, stateful: dict, preemption=None):
    """The Keras callback that writes backups and restores one at the start of fit (see docs/fault-tolerance.md)."""
    import keras

    from runner.kernel.errors import EnvironmentProblem, Preempted

    class BackupCallback(keras.callbacks.Callback):
        """Writes backups at epoch ends or every N steps, on a signal, and restores `pending` at train begin."""

        def __init__(self):
            super().__init__()
            self.folder = Path(folder)
            self.folder.mkdir(parents=True, exist_ok=True)
            self.every = every  # "epoch", N steps, or None: backups disabled (signals still stop cleanly)
            self.steps_per_epoch = steps_per_epoch
            self.stateful = stateful  # state key -> callback with get_state()/set_state()
            self.preemption = preemption
            self.pending = None  # (meta, arrays) to restore at the next train begin
            self.step_offset = 0  # batches of the current epoch done before this fit (a resumed partial epoch)
            self.lr_scale = 1.0  # product of the NaN rollbacks' learning-rate factors
            self.epoch = 0
            self.last_saved = None
            self._due_at_epoch_end = False

        def global_step(self, epoch: int, step: int) -> int:
            return epoch * self.steps_per_epoch + step

        def save(self, epoch: int, step: int, stopped: bool = False) -> Path:
            """Back up the state after `step` batches of epoch `epoch` (0-based; step 0 = the epoch's start)."""
            model = self.model
            global_step = self.global_step(epoch, step)
            arrays, states = {}, {}
            plain = writer.plain_variables(model)
            for prefix, variables in self._groups():
                arrays.update({f"{prefix}/{i}": a for i, a in enumerate(_values(variables, plain))})
            for key, cb in self.stateful.items():
                state, extra = cb.get_state()
                states[key] = state
                arrays.update({f"cb/{key}/{i}": a for i, a in enumerate(extra)})
            meta = {"epoch": epoch, "step": step, "global_step": global_step,
                    "position": epoch * self.steps_per_epoch + step, "stopped": stopped,
                    "lr_scale": self.lr_scale, "callbacks": states,
                    "counts": {prefix: len(v) for prefix, v in self._groups()},
                    "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations))}
            path = backup_path(self.folder, global_step)
            if stopped or self.every != "epoch":
                # the process exits next, or `every: N steps` promises a SIGKILL loses at most N steps: on disk now
                _write_and_prune(self.folder, path, meta, arrays)
            else:  # beside the training loop (runner/writer.py), from copies: get_state hands out live objects
                # a writer that fell behind writes the newest backup only (fsynced): older queued ones are moot
                writer.submit(_write_and_prune, self.folder, path, copy.deepcopy(meta), copy.deepcopy(arrays),
                              supersede=f"backup:{self.folder}")
            self.last_saved = global_step
            return path

        def _groups(self):
            optimizers = _optimizers(self.model)
            return (("model", self.model.variables), ("optimizer", [v for o in optimizers for v in o.variables]),
                    ("metrics", self.model.metrics_variables))

        def on_train_begin(self, logs=None):
            optimizer = self.model.optimizer
            if not optimizer.built:
                # fit builds it lazily, at the first step; its slots must exist now, both to restore a backup and
                # in the initial backup (a NaN rollback in epoch 1 restores all of the optimizer's variables)
                with self.model.distribute_strategy.scope():
                    optimizer.build(self.model.trainable_variables)
            if self.pending is not None:
                meta, arrays = self.pending
                counts = meta["counts"]
                try:
                    _assign(self.model.variables, arrays, "model", counts["model"])
                    _assign([v for o in _optimizers(self.model) for v in o.variables], arrays, "optimizer",
                            counts["optimizer"])
                except BackupInvalid as e:
                    raise EnvironmentProblem(f"backup {meta['file']} does not fit this model: {e}") from None
                self._apply_lr_scale(meta["lr_scale"])
            for state in self.stateful.values():
                if isinstance(state, AttributeState):
                    state.apply_pending()
            if self.pending is None and self.every is not None and not backup_files(self.folder):
                self.save(0, 0)  # the initial state: a NaN rollback or a resume always has a backup to go to

        def _apply_lr_scale(self, saved_scale: float) -> None:
            """Bring each optimizer's learning rate to `lr_scale` times the configured one after restoring
            `saved_scale`."""
            scaled = scaled_schedule_class()
            for optimizer in _optimizers(self.model):
                lr = optimizer._learning_rate  # the schedule itself; the public property evaluates it
                if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
                    base = lr.schedule if isinstance(lr, scaled) else lr
                    if self.lr_scale != 1.0 or base is not lr:
                        optimizer.learning_rate = scaled(base, self.lr_scale) if self.lr_scale != 1.0 else base
                        self.model.make_train_function(force=True)  # the traced step captured the old schedule
                elif self.lr_scale != saved_scale:  # a plain rate is a variable, restored at saved_scale
                    optimizer.learning_rate = float(keras.ops.convert_to_numpy(lr)) * self.lr_scale / saved_scale

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            if self.pending is not None:
                # fit reset the metrics just before this: a resumed partial epoch keeps its running means
                meta, arrays = self.pending
                if meta["step"]:
                    try:
                        _assign(self.model.metrics_variables, arrays, "metrics", meta["counts"]["metrics"])
                    except BackupInvalid as e:
                        raise EnvironmentProblem(f"backup {meta['file']} does not fit this model: {e}") from None
                self.pending = None

        def on_train_batch_end(self, batch, logs=None):
            step = self.step_offset + batch + 1
            global_step = self.global_step(self.epoch, step)
            previous = global_step - (self.model.steps_per_execution or 1)
            due = isinstance(self.every, int) and global_step // self.every > previous // self.every
            if step >= self.steps_per_epoch:
                # the epoch's last batch: validation and the epoch-end callbacks follow, so save after them
                self._due_at_epoch_end = self._due_at_epoch_end or due
            else:
                if due:
                    self.save(self.epoch, step)
                self._check_preemption(self.epoch, step)

        def _check_preemption(self, epoch: int, step: int) -> None:
            if self.preemption is None or not self.preemption.requested:
                return
            global_step = self.global_step(epoch, step)
            if self.every is not None and self.last_saved != global_step:
                self.save(epoch, step)
            raise Preempted(self.preemption.requested, epoch, step, global_step,
                            self.folder if self.every is not None else None)

        def on_epoch_end(self, epoch, logs=None):
            self.step_offset = 0
            stopped = bool(self.model.stop_training)
            # an early stop and the last epoch are always backed up: a resume must not train past them
            if self.every is not None and (self.every == "epoch" or self._due_at_epoch_end or stopped
                                           or epoch + 1 >= self.params["epochs"]):
                self.save(epoch + 1, 0, stopped=stopped)
            self._due_at_epoch_end = False
            if not stopped and epoch + 1 < self.params["epochs"]:
                self._check_preemption(epoch + 1, 0)

        def on_train_end(self, logs=None):
            self.pending = None

    return BackupCallback()
