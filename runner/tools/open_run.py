"""Opening a finished run directory: its resolved config, its data info and its models, loaded with safe_mode on."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError

CHECKPOINT_FILES = {"final": rd.MODEL, "best": f"{rd.CHECKPOINTS}/{rd.BEST}", "last": f"{rd.CHECKPOINTS}/{rd.LAST}"}
UNSAFE_FLAG = "--unsafe"


@dataclass
class Run:
    """A run directory opened for eval, predict and export."""

    path: Path
    cfg: object  # runner.config.schema.Config, as config.yaml resolved it
    info: dict  # env.json's "data": DataInfo.to_json()

    def model_file(self, checkpoint: str = "final") -> Path:
        path = self.path / CHECKPOINT_FILES[checkpoint]
        if path.is_file():
            return path
        if checkpoint == "final":
            raise ConfigError(f"{self.path}: no {rd.MODEL}: the run has not finished; `dlrun resume {self.path}` "
                              "finishes it, `dlrun eval --checkpoint last` evaluates its last epoch")
        raise ConfigError(f"--checkpoint {checkpoint}: this run has no {CHECKPOINT_FILES[checkpoint]} (was "
                          f"callbacks.checkpoint off?); leave --checkpoint out to evaluate {rd.MODEL}")

    def load_model(self, checkpoint: str = "final", unsafe: bool = False):
        return load_model(self.model_file(checkpoint), unsafe)


def open_run(path) -> Run:
    """The run at `path`; a folder that is not a finished run is a usage error (exit 2)."""
    from runner.spec import load_config

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such run directory")
    missing = [name for name in (rd.CONFIG, rd.ENV) if not (path / name).is_file()]
    if missing and (path / rd.fold_dir(1)).is_dir():  # a k-fold parent: each fold trained a model of its own
        raise ConfigError(f"{path}: a k-fold parent, whose models are its folds'; pass one of them, such as "
                          f"{path / rd.fold_dir(1)}")
    if missing:
        raise ConfigError(f"{path}: not a run directory (no {missing[0]}); pass a folder that `dlrun train` wrote")
    cfg, _ = load_config(path / rd.CONFIG)
    with open(path / rd.ENV) as f:
        info = json.load(f).get("data")
    if not info:
        raise ConfigError(f"{path / rd.ENV}: no \"data\" entry; the run did not get as far as loading its data")
    return Run(path, cfg, info)


def lambda_layers(path: Path) -> list[str]:
    """Names of the Lambda layers in a .keras archive's config, read as JSON without deserializing anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(node.get("config", {}).get("name", "?"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def load_model(path, unsafe: bool = False):
    """keras.saving.load_model with safe_mode on unless `unsafe`; refusals become a ConfigError (exit 2)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: model file not found")
    try:
        # compile=False: eval recompiles with the spec's loss and metrics and predict/export need no training
        # state, so checkpoints compiled with dlrun's own metric classes load without them
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except ValueError as e:
        if unsafe or "safe_mode" not in str(e):
            raise ConfigError(f"{path}: cannot load this Keras model: {e}") from None
        names = lambda_layers(path)
        which = f" (Lambda layer{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))})" if names else ""
        raise ConfigError(
            f"{path}: refused to load: the model holds Python code{which} that Keras would have to execute to "
            "rebuild it, and a model file can carry arbitrary code (it could read or delete files, or run "
            f"programs). Nothing from it was run. If you trust where this file came from, pass {UNSAFE_FLAG} "
            "to load it anyway") from None
    except TypeError as e:  # a class Keras cannot locate: a custom object from code this process lacks
        raise ConfigError(f"{path}: cannot load this Keras model: {e}") from None
