"""Shared test helpers: run the CLI in a subprocess, write specs, a small fast digits spec."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*args, cwd=None, env=None, timeout=300, check_code=None) -> subprocess.CompletedProcess:
    """`dlrun ARGS` in a fresh Python process; returns the completed process (text stdout/stderr)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check_code is not None:
        assert proc.returncode == check_code, (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def write_spec(folder: Path, spec, name: str = "spec.yaml") -> Path:
    path = Path(folder) / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    return path


def digits_spec(out_dir, **sections) -> dict:
    """A small CNN on digits that trains in a few seconds; `sections` replace top-level blocks."""
    spec = {
        "name": "digits-test",
        "seed": 1,
        "data": {"source": "sklearn", "name": "digits", "batch_size": 64,
                 "splits": {"train": "[:70%]", "validation": "[70%:80%]", "test": "[80%:]"},
                 "preprocess": [{"rescale": {"scale": 0.0625}}]},
        "model": {"arch": "cnn", "filters": [16, 32], "dense": [64]},
        "train": {"epochs": 3, "optimizer": "adam", "lr": {"schedule": "constant", "base": 0.003}},
        "output": {"dir": str(out_dir)},
    }
    spec.update(sections)
    return spec


# as a user's Python runs it: with cached bytecode (this sandbox sets PYTHONDONTWRITEBYTECODE, which
# recompiles every module on every start)
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(ROOT)}


def timed_cli(*args, cwd=ROOT) -> tuple[subprocess.CompletedProcess, float, float]:
    """`dlrun ARGS` in a fresh process: (result, wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd, env=CLI_ENV,
                          capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def oversubscribed() -> bool:
    return os.getloadavg()[0] >= (os.cpu_count() or 1)


def assert_fast(run, limit: float) -> subprocess.CompletedProcess:
    """Run `run()` and hold it to `limit` seconds, best of three.

    The CPU time of the command is always held to the limit. Wall time is held to it too unless the machine is
    oversubscribed (load above the core count: on the shared 2-core host a neighbour's build can triple any wall
    time, which measures the neighbour, not dlrun; retrying then only adds load).
    """
    proc, wall, cpu = run()
    for _ in range(2):
        if (wall < limit and cpu < limit) or oversubscribed():
            break
        proc, wall2, cpu2 = run()
        wall, cpu = min(wall, wall2), min(cpu, cpu2)
    assert cpu < limit, f"{cpu:.2f} s of CPU"
    if not oversubscribed():
        assert wall < limit, f"{wall:.2f} s wall"
    return proc


@pytest.fixture
def cli():
    return run_cli
