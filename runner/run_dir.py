"""RunDir: the one place that knows the artifact names of a run and writes them atomically."""

from __future__ import annotations

import datetime
import json
import os
import secrets
from pathlib import Path

from runner import writer
from runner.errors import EnvironmentProblem

CONFIG = "config.yaml"
STATUS = "status.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
ENV = "env.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
MODEL = "model.keras"
BEST = "best.keras"
LAST = "last.keras"
BACKUP = "backup"  # backup-<global step>.npz: everything a resume needs (callbacks/backup.py)
LOCK = "dlrun.lock"  # flock target with the holder's pid (lock.py)

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write, mode: str = "w") -> None:
    """Write via a temp file in the same folder, fsync, then os.replace: readers see old or new, never half."""

    def save(tmp):
        with open(tmp, mode) as f:
            write(f)

    atomic_save(path, save)


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


def atomic_save(path: Path, save) -> None:
    """Save via `save(tmp_path)` to a temp file in the same folder, fsync, then os.replace, so readers see the
    old file or the new one, never half; the previous file stays until the new one is complete."""
    writer.flush()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # whatever the writer made, artifacts get the user's usual mode
        os.replace(tmp, path)
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


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, output_dir: str, name: str) -> "RunDir":
        """runs/<name>/<YYYYmmdd-HHMMSS>-<6 hex>/, refused if `name` would lead outside output.dir."""
        root = Path(output_dir).resolve()
        parent = (root / name).resolve()
        if root != parent.parent and root not in parent.parents:
            raise EnvironmentProblem(f"name: {name!r} would put the run outside output.dir {output_dir}")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        for _ in range(100):
            path = parent / f"{stamp}-{secrets.token_hex(3)}"
            try:
                path.mkdir(parents=True, exist_ok=False)
                return cls(path)
            except FileExistsError:  # two runs in the same second with the same suffix
                continue
            except OSError as e:
                raise EnvironmentProblem(f"cannot create the run directory {path}: {e.strerror}") from None
        raise EnvironmentProblem(f"cannot find a free run directory under {parent}")

    @classmethod
    def at(cls, path: str) -> "RunDir":
        p = Path(path)
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EnvironmentProblem(f"cannot create the run directory {p}: {e.strerror}") from None
        return cls(p)

    def file(self, name: str) -> Path:
        return self.path / name

    def subdir(self, name: str) -> Path:
        d = self.path / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_json(self, name: str, obj) -> None:
        atomic_write(self.file(name), lambda f: json.dump(obj, f, indent=2, sort_keys=False, default=str))

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.file(name), lambda f: f.write(text))

    def read_json(self, name: str):
        with open(self.file(name)) as f:
            return json.load(f)
