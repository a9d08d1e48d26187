"""What machine and software a run used: env.json and `dlrun env`."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("dlrun", "tensorflow", "keras", "tensorflow-datasets", "tensorboard", "numpy", "pydantic",
            "scikit-learn", "matplotlib", "optuna", "tf2onnx", "onnxruntime", "ai-edge-litert")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def python() -> dict:
    return {"version": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": sys.executable}


def git_info(path) -> dict | None:
    """Commit and dirty flag of the git repository holding `path` (a file or a folder), if any."""
    path = Path(path).resolve()
    folder = path if path.is_dir() else path.parent
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

    out = []
    for d in tf.config.list_logical_devices():
        entry = {"name": d.name, "type": d.device_type}
        if d.device_type == "GPU":
            physical = tf.config.list_physical_devices("GPU")
            index = int(d.name.rsplit(":", 1)[-1])
            if index < len(physical):
                details = tf.config.experimental.get_device_details(physical[index])
                entry.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in details.items()})
        out.append(entry)
    return out


def build() -> dict:
    """The CUDA and cuDNN versions TensorFlow was built against (absent on CPU-only builds)."""
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    return {k: info.get(k) for k in ("is_cuda_build", "cuda_version", "cudnn_version")}


def environment(spec_path=None, strategy=None, speed=None) -> dict:
    out = {"versions": versions(), "python": python(), "hostname": socket.gethostname(),
           "platform": platform.platform(), "command_line": sys.argv, "devices": devices(),
           "tensorflow_build": build()}
    if strategy is not None:
        out["strategy"] = type(strategy).__name__
        out["replicas"] = strategy.num_replicas_in_sync
    if speed is not None:
        out["speed"] = vars(speed)
    if spec_path is not None:
        out["git"] = git_info(spec_path)
    return out
