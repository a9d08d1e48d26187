"""Shared test helpers: run the CLI in a subprocess, write specs, a small fast digits spec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# test-only callbacks.custom classes (dlrun_faults: real SIGKILLs); importable here and, through PYTHONPATH, in
# the dlrun processes the tests start
PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_cli(*args, cwd=None, env=None, timeout=300, check_code=None) -> subprocess.CompletedProcess:
    """`dlrun ARGS` in a fresh Python process; returns the completed process (text stdout/stderr)."""
    full_env = {**CLI_ENV, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
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


# a subprocess imports this checkout's runner (and the test plugins), whatever the working directory
CLI_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS),
                                                         *filter(None, [os.environ.get("PYTHONPATH")])])}


def require(component: str, available: bool, why: str) -> None:
    """Skip a test whose real component is missing, but fail it under CI=true: CI must not pass without it."""
    if available:
        return
    message = f"{component} is missing: {why}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, why: str) -> str:
    """The path of executable `name`; skipped locally, failed under CI=true, when it is not installed."""
    path = shutil.which(name)
    require(name, path is not None, why)
    return path


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True, scope="session")
def messages():
    """dlrun's own lines on stderr, as the CLI shows them, for the tests that call library code in-process."""
    from runner.cli.output import configure_messages

    configure_messages()
