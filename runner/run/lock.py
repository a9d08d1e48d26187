"""One process per run directory: an exclusive flock on RUN_DIR/dlrun.lock, which holds the owner's pid."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from runner.kernel.errors import EnvironmentProblem


class RunLock:
    """Held for the life of a training process; the kernel drops it when the process dies, even on SIGKILL."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = None

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise EnvironmentProblem(f"cannot open the lock file {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EnvironmentProblem(
                f"run directory locked by pid {holder}: {self.path.parent} is in use by another dlrun process; "
                "wait for it to finish, or train into another --run-dir") from None
        # written in place, not via atomic_write: the lock belongs to this inode, a replaced file would lose it
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        return False
