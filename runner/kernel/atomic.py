"""Atomic file writes: a temp file in the same folder, fsync, os.replace, then fsync of the folder.

Durability policy: every write is atomic (a reader, or a process started after a crash, sees the old file or
the new one); fsync, which makes it survive a power loss too, is for what a resume or a finished run relies
on: backups and final artifacts. Files rewritten every epoch (history.csv, status.json, checkpoints) pass
durable=False: the next epoch replaces them anyway, and their fsyncs were most of the writer thread's time.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from runner.kernel.errors import EnvironmentProblem

UMASK = os.umask(0)
os.umask(UMASK)


def atomic_write(path: Path, write, mode: str = "w", durable: bool = True) -> None:
    """Write via a temp file in the same folder, fsync, then os.replace: readers see old or new, never half."""

    def save(tmp):
        with open(tmp, mode) as f:
            write(f)

    atomic_save(path, save, durable)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable: without it a power loss can bring back the old directory entry."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard_temp_files(folder: Path) -> None:
    """Remove the temp files a killed writer left behind (they never replaced a real file)."""
    for tmp in Path(folder).glob(".*.tmp*"):
        _discard(tmp)


def atomic_save(path: Path, save, durable: bool = True) -> None:
    """Save via `save(tmp_path)` to a temp file in the same folder, fsync, then os.replace, so readers see the
    old file or the new one, never half; the previous file stays until the new one is complete. Not durable:
    no fsyncs (still atomic for readers and for a killed process; a power loss may keep the older file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        save(tmp)
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)  # whatever the writer made, artifacts get the user's usual mode
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except OSError as e:
        _discard(tmp)
        raise EnvironmentProblem(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
