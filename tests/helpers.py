"""The shared test helpers: run the CLI in a subprocess, write specs, a small fast digits spec, free ports,
sweep specs; test modules import these, never each other."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import optuna
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


def run_inline(*args, cwd=None, check_code=None) -> subprocess.CompletedProcess:
    """`dlrun ARGS` through the CLI's `main` in this process, which has TensorFlow imported already (4 s less per
    call). For verbs whose process is not under test: signals, environment and stderr noise need run_cli."""
    from runner.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(cwd or ROOT):
        code = main(list(map(str, args)))
        if "runner.kernel.writer" in sys.modules:  # as the program does before it exits
            sys.modules["runner.kernel.writer"].flush()
    proc = subprocess.CompletedProcess(["dlrun", *map(str, args)], code, out.getvalue(), err.getvalue())
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


def free_ports(n: int) -> list[int]:
    """n distinct free ports: held open together, since a port just released may be handed out again."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def custom_gradients() -> int:
    """Gradient functions TensorFlow registered for custom gradients: each keeps its traced graph for ever."""
    from tensorflow.python.framework import ops

    return sum(name.startswith("CustomGradient-") for name in ops._gradient_registry.list())


def write_text_folder(root):
    """Two classes of short made-up reviews told apart by their last two words."""
    import random

    rng = random.Random(0)
    filler = "the movie film plot was really quite".split()
    for label, words in (("neg", "bad awful poor terrible boring dull"), ("pos", "good great fine lovely superb nice")):
        (root / label).mkdir(parents=True)
        for i in range(60):
            text = " ".join([rng.choice(filler) for _ in range(4)] + [rng.choice(words.split()) for _ in range(2)])
            (root / label / f"{i}.txt").write_text(text)
    return root


NAME = "digits-sweep"


def sweep_spec(tmp_path, epochs: int = 1, **sweep) -> dict:
    """A one-layer MLP on 30% of digits: a trial trains in a few seconds."""
    spec = digits_spec(tmp_path / "runs", name=NAME)
    spec["data"]["splits"] = {"train": "[:30%]", "validation": "[30%:45%]", "test": None}
    spec["model"] = {"arch": "mlp", "units": [16]}
    spec["train"] = {"epochs": epochs, "optimizer": "adam", "lr": 0.003}
    spec["callbacks"] = {"checkpoint": None}
    spec["sweep"] = {"method": "random", "trials": 4, "metric": "val_accuracy", "heartbeat_interval": 1,
                     "grace_period": 3, "params": {"train.lr.base": {"loguniform": [1.0e-3, 3.0e-2]},
                                                   "model.units": {"choice": [[16], [32]]}}, **sweep}
    return spec


def load_study(tmp_path):
    return optuna.load_study(study_name=NAME, storage=f"sqlite:///{tmp_path / 'runs' / NAME / 'sweep.db'}")


def states(study) -> list[str]:
    return [t.state.name for t in study.trials]


def popen_sweep(*args) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "runner", "sweep", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def prepare_tfds_metadata(name: str, data_dir) -> None:
    """A prepared TFDS folder holding the data set's real metadata files only; tfds.testing.mock_data supplies the
    examples."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)


def train_in_process(run, spec_dict):
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    cfg, _ = load_config(write_spec(run.parent, spec_dict, f"{run.name}.yaml"))
    return run_experiment(cfg, rd.RunDir.at(str(run)))


def wait_all(procs, timeout: float = 400) -> list:
    """(stdout, stderr) of every process once all have ended; each must exit 0 (killed if it hangs)."""
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs
