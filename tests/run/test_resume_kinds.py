"""Every kind of run directory resumes to the result of an uninterrupted run: k-fold parent, mirrored, multi-worker
and a distilled student whose teacher was interrupted. Each is killed from the outside (a real signal to a real
process), resumed with `dlrun resume`, and compared bitwise with an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, digits_spec, free_ports, run_cli, run_inline, wait_all, write_spec

pytestmark = pytest.mark.slow
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def _start(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runner", *map(str, args)], cwd=ROOT, env={**ENV, **(env or {})},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _status(run: Path) -> dict:
    try:
        return json.loads((run / "status.json").read_text())
    except (OSError, ValueError):  # not written yet
        return {}


def _wait_for(predicate, procs, what: str, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, f"exited ({dead[0].returncode}) before {what}: {dead[0].stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _weights(model_file: Path) -> list:
    import keras

    return [np.asarray(w) for w in keras.saving.load_model(model_file, compile=False).get_weights()]


def _assert_bitwise(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def _digest(folder: Path) -> dict:
    """Every file below `folder`: (size, mtime_ns, sha256) — what "untouched" means."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "dlrun.lock"}


def test_kfold_parent_resumes_the_interrupted_fold_runs_the_rest_and_aggregates(tmp_path):
    spec = write_spec(tmp_path, digits_spec(
        tmp_path / "runs", deterministic=True,
        data={**digits_spec(tmp_path)["data"], "kfold": {"k": 3}},
        train={"epochs": 6, "optimizer": "adam", "lr": {"schedule": "constant", "base": 0.003}},
        callbacks={"tensorboard": None, "early_stopping": None}))
    reference, run = tmp_path / "reference", tmp_path / "run"
    run_inline("train", spec, "--run-dir", reference, check_code=0)

    proc = _start("train", spec, "--run-dir", run)
    fold2 = run / "folds" / "fold-2"
    # at fold 2's first epoch, 5 of its 6 still to go: the stop lands inside fold 2 on a loaded host too (sent at
    # its third epoch, it came after fold 2 had ended once in a make test)
    _wait_for(lambda: _status(fold2).get("epoch", 0) >= 1, [proc], "fold 2 epoch 1")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1].endswith(f"continue with `dlrun resume {run}`")
    assert _status(run)["state"] == "preempted" and not (run / "folds" / "fold-3").exists()
    fold1 = _digest(run / "folds" / "fold-1")

    resumed = run_inline("resume", run, check_code=0)
    assert "3-fold cross-validation" in resumed.stdout
    assert _digest(run / "folds" / "fold-1") == fold1  # the finished fold is not retrained or rewritten
    assert _status(fold2)["resumed_from"]["epoch"] >= 1
    assert _status(run / "folds" / "fold-1")["resumed_from"] is None
    metrics = json.loads((run / "metrics.json").read_text())
    expected = json.loads((reference / "metrics.json").read_text())
    assert metrics["kfold"]["folds_run"] == 3 and _status(run)["state"] == "completed"
    assert metrics["test"] == expected["test"] and metrics["validation"] == expected["validation"]
    for i in (1, 2, 3):
        _assert_bitwise(run / "folds" / f"fold-{i}" / "model.keras", reference / "folds" / f"fold-{i}" / "model.keras")


def _kill_and_resume(spec, run: Path, reference: Path, after_epoch: int = 1) -> None:
    proc = _start("train", spec, "--run-dir", run)
    # the backup of the initial state, then one per epoch
    _wait_for(lambda: len(list((run / "backup").glob("backup-*.npz"))) >= 1 + after_epoch, [proc], "an epoch's backup")
    proc.kill()
    proc.wait()
    resumed = run_cli("resume", run, check_code=0)
    assert f"dlrun: resuming {run} at epoch" in resumed.stderr
    assert _status(run)["resumed_from"]["epoch"] >= after_epoch
    _assert_bitwise(run / "model.keras", reference / "model.keras")


def test_mirrored_run_killed_then_resumed_is_bitwise_equal(tmp_path):
    spec = write_spec(tmp_path, digits_spec(tmp_path / "runs", deterministic=True,
                                            distribute={"strategy": "mirrored", "cpu_replicas": 2},
                                            callbacks={"tensorboard": None}))
    run_cli("train", spec, "--run-dir", tmp_path / "reference", check_code=0)
    _kill_and_resume(spec, tmp_path / "run", tmp_path / "reference")
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert (env["strategy"], env["replicas"]) == ("MirroredStrategy", 2)


def _workers(*args, env=None) -> list:
    return [_start(*args, "--set", f"distribute.task_index={i}", env=env) for i in range(2)]


def test_two_workers_train_with_only_the_chief_writing_then_killed_on_both_resume_bitwise_equal(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    spec = write_spec(tmp_path, digits_spec(
        tmp_path / "runs", deterministic=True, callbacks={"tensorboard": None},
        train={"epochs": 4, "optimizer": "adam", "lr": {"schedule": "constant", "base": 0.003}},
        distribute={"strategy": "multi_worker", "workers": workers, "connect_timeout": 120}))
    reference, run = tmp_path / "reference", tmp_path / "run"
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    outs = wait_all(_workers("train", spec, "--run-dir", reference, env={"TMPDIR": str(worker_tmp)}))
    # the uninterrupted run: the chief alone wrote a run directory, the second worker a temp one, gone at its
    # exit, and both computed the same numbers
    assert f"run directory: {reference}" in outs[0][0] and not (tmp_path / "runs").exists()
    assert f"run directory: {worker_tmp}/dlrun-worker-" in outs[1][0] and not list(worker_tmp.glob("dlrun-worker-*"))
    env = json.loads((reference / "env.json").read_text())
    # CollectiveAllReduceStrategy: MultiWorkerMirroredStrategy's class
    assert (env["strategy"], env["replicas"]) == ("CollectiveAllReduceStrategy", 2)
    metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4 and metrics["test"]["accuracy"] >= 0.88
    tables = [out[out.index("split "):].splitlines()[:-1] for out, _ in outs]
    assert tables[0] == tables[1] and len(tables[0]) == 4  # header, train, validation, test

    procs = _workers("train", spec, "--run-dir", run)
    _wait_for(lambda: len(list((run / "backup").glob("backup-*.npz"))) >= 2, procs, "the chief's epoch-1 backup")
    for p in procs:
        p.kill()
        p.wait()
    outs = wait_all(_workers("resume", run))
    assert f"dlrun: resuming {run} at epoch" in outs[0][1] and f"dlrun: resuming {run} at epoch" in outs[1][1]
    assert _status(run)["resumed_from"]["epoch"] >= 1 and _status(run)["state"] == "completed"
    _assert_bitwise(run / "model.keras", reference / "model.keras")
    # both workers ended with the same numbers: the second restored the chief's backup too
    tables = [out[out.index("split "):].splitlines()[:-1] for out, _ in outs]
    assert tables[0] == tables[1]


def test_distilled_student_resumes_its_interrupted_teacher_then_trains_as_without_interruption(tmp_path):
    runs = tmp_path / "runs"
    teacher = write_spec(tmp_path, digits_spec(runs, name="teacher", deterministic=True, callbacks={"tensorboard": None},
                                               train={"epochs": 8, "optimizer": "adam",
                                                      "lr": {"schedule": "constant", "base": 0.003}}),
                         "teacher.yaml")
    student = write_spec(tmp_path, digits_spec(runs, name="student", deterministic=True,
                                               model={"arch": "mlp", "units": [32]}, callbacks={"tensorboard": None},
                                               distill={"teacher": str(teacher), "temperature": 4.0, "alpha": 0.1}),
                         "student.yaml")
    reference, run = tmp_path / "reference", tmp_path / "run"
    run_inline("train", student, "--run-dir", reference, check_code=0)

    proc = _start("train", student, "--run-dir", run)
    record = run / "teacher.json"
    # three epochs done: the backup of epoch 1 at least is on disk (the writer writes backups in order)
    _wait_for(lambda: record.is_file() and _status(Path(json.loads(record.read_text())["run_dir"])).get("epoch", 0) >= 3,
              [proc], "the teacher's epoch 3")
    proc.kill()
    proc.wait()
    teacher_dir = Path(json.loads(record.read_text())["run_dir"])
    resumed = run_inline("resume", run, check_code=0)
    assert f"dlrun: resuming {teacher_dir} at epoch" in resumed.stderr
    assert _status(teacher_dir)["resumed_from"]["epoch"] >= 1 and _status(teacher_dir)["state"] == "completed"
    assert len(list((runs / "teacher").iterdir())) == 2  # the reference's teacher and this one: none retrained anew
    reference_teacher = next(p for p in (runs / "teacher").iterdir() if p != teacher_dir)
    _assert_bitwise(teacher_dir / "model.keras", reference_teacher / "model.keras")
    _assert_bitwise(run / "model.keras", reference / "model.keras")
