"""What machine and software a run used: env.json and `dlrun env`."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("dlrun", "tensorflow", "keras", "tensorflow-datasets", "tensorboard", "numpy", "pydantic",
            "scikit-learn", "optuna", "tf2onnx", "onnxruntime", "ai-edge-litert")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_info(path) -> dict | None:
    """Commit and dirty flag of the git repository holding `path`, if any."""
    folder = Path(path).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain"], capture_output=True,
                               text=True, timeout=5)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return None


def devices() -> list[dict]:
    import tensorflow as tf

    return [{"name": d.name, "type": d.device_type} for d in tf.config.list_logical_devices()]


def environment(spec_path=None, strategy=None, speed=None) -> dict:
    out = {"versions": versions(), "hostname": socket.gethostname(), "platform": platform.platform(),
           "command_line": sys.argv, "devices": devices()}
    if strategy is not None:
        out["strategy"] = type(strategy).__name__
        out["replicas"] = strategy.num_replicas_in_sync
    if speed is not None:
        out["speed"] = vars(speed)
    if spec_path is not None:
        out["git"] = git_info(spec_path)
    return out
