"""RunDir: the one place that knows the artifact names of a run and writes them atomically."""

from __future__ import annotations

import contextlib
import datetime
import json
import secrets
import shutil
from pathlib import Path

from runner.kernel import atomic, writer
from runner.kernel.errors import EnvironmentProblem

CONFIG = "config.yaml"
STATUS = "status.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
ENV = "env.json"
TENSORBOARD = "tensorboard"
TENSORBOARD_COMPRESS = "compress"  # tensorboard/compress/: sparsity per layer while pruning
CHECKPOINTS = "checkpoints"
MODEL = "model.keras"
MODEL_INT8 = "model_int8.keras"  # compress.quantize: the final model through Keras's model.quantize("int8")
BEST = "best.keras"
LAST = "last.keras"
BACKUP = "backup"  # backup-<global step>.npz: everything a resume needs (callbacks/backup.py)
LOCK = "dlrun.lock"  # flock target with the holder's pid (run/lock.py)
LEARNING_CURVES = "learning_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
SAMPLES = "samples.png"  # task gan: the fixed-noise sample grid of the last epoch
GAN_GRID = "samples-{n}.png"  # dlrun predict on a gan run: a grid of n new samples
SEGMENTATION_SAMPLES = "segmentation_samples.png"  # image | true mask | predicted mask, held-out examples
PREDICTIONS = "predictions"  # dlrun predict of a segmentation run: predictions/<input>.png, class id per pixel
FOLDS = "folds"  # k-fold parent: folds/fold-<i>/, each a run directory of its own
EVAL = "eval"  # dlrun eval: eval/<split>-<checkpoint>/{metrics.json, report.txt, confusion_matrix.png}
EVAL_REPORT = "report.txt"
EXPORT = "export"  # dlrun export and the spec's export: list
EXPORT_MANIFEST = "export.json"
EXPORT_FILES = {"keras": MODEL, "saved_model": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}
TEACHER = "teacher.json"  # a distilled student: the run directory of the teacher trained for it
SWEEP_DB = "sweep.db"  # runs/<name>/: the Optuna study, trials/<n>-<hex>/ and best.yaml
SWEEP_TRIALS = "trials"
BEST_SPEC = "best.yaml"


def fold_dir(k: int) -> str:
    """The folder of fold k (1-based) under a k-fold parent."""
    return f"{FOLDS}/fold-{k}"


def quantized_export(quantize: str, fmt: str = "tflite") -> str:
    return f"model_{quantize}.onnx" if fmt == "onnx" else f"model_{quantize}.tflite"

def atomic_save(path: Path, save, durable: bool = True) -> None:
    """atomic.atomic_save after the background writer's pending writes, so files land in submission order."""
    writer.flush()
    atomic.atomic_save(path, save, durable)


def atomic_write(path: Path, write, mode: str = "w", durable: bool = True) -> None:
    """atomic.atomic_write after the background writer's pending writes."""
    writer.flush()
    atomic.atomic_write(path, write, mode, durable)


discard_temp_files = atomic.discard_temp_files
UMASK = atomic.UMASK


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

    def discard(self) -> None:
        """Remove this run directory, one whose run failed before training (its config, env.json and empty
        folders only), after the background writer's pending writes; and its name folder if that is then empty."""
        writer.wait()
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):  # the name folder holds other runs: it stays
            self.path.parent.rmdir()

    def subdir(self, name: str) -> Path:
        d = self.path / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_json(self, name: str, obj, durable: bool = True) -> None:
        atomic_write(self.file(name), lambda f: json.dump(obj, f, indent=2, sort_keys=False, default=str),
                     durable=durable)

    def write_text(self, name: str, text: str, durable: bool = True) -> None:
        atomic_write(self.file(name), lambda f: f.write(text), durable=durable)

    def read_json(self, name: str):
        with open(self.file(name)) as f:
            return json.load(f)
