"""Real faults injected from the test side through `callbacks.custom` (this folder on PYTHONPATH).

Each class does nothing unless its environment variable is set, so a resumed run (whose stored spec lists the
same classes) trains undisturbed:
  FAULT_KILL_AT_STEP=N       SIGKILL at the first step boundary with N or more training steps done
  FAULT_KILL_IN_BACKUP=N     SIGKILL half-way through writing the backup of global step N
"""

from __future__ import annotations

import os
import signal

import keras


def _number(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


class KillAtStep(keras.callbacks.Callback):
    """SIGKILL before the next batch once FAULT_KILL_AT_STEP steps are done: backups of that step are on disk."""

    def __init__(self):
        super().__init__()
        self.at = _number("FAULT_KILL_AT_STEP")
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.at is not None and self.epoch * self.params["steps"] + batch >= self.at:
            os.kill(os.getpid(), signal.SIGKILL)


class KillInBackup(keras.callbacks.Callback):
    """SIGKILL after half of the backup of global step FAULT_KILL_IN_BACKUP is written (to its temp file)."""

    def __init__(self):
        super().__init__()
        at = _number("FAULT_KILL_IN_BACKUP")
        if at is None:
            return
        from runner.callbacks import backup
        from runner.kernel import run_dir

        write_backup = backup.write_backup

        def half_then_kill(path, meta, arrays):
            if meta["global_step"] != at:
                return write_backup(path, meta, arrays)
            data = backup.encode(meta, arrays)

            def write(f):
                f.write(data[: len(data) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            run_dir.atomic_write(path, write, mode="wb")

        backup.write_backup = half_then_kill
