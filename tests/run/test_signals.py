"""SIGTERM/SIGINT: a backup at the next step boundary, status `preempted`, exit 143/130, and a resume that finishes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, digits_spec, require, run_cli, run_inline, write_spec
from runner.callbacks.backup import backup_files, read_backup
from runner.run.signals import Preemption

EPOCHS = 6


def spec(out_dir):
    return digits_spec(out_dir, train={"epochs": EPOCHS, "optimizer": "adam", "steps_per_execution": 4,
                                       "lr": {"schedule": "constant", "base": 0.003}},
                       callbacks={"tensorboard": {"write_graph": False, "images": 0, "confusion_matrix": None}})


def start_training(tmp_path, prefix=()) -> tuple[subprocess.Popen, Path, Path]:
    run, log = tmp_path / "run", tmp_path / "stderr.txt"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    cmd = [*prefix, sys.executable, "-m", "runner", "train", write_spec(tmp_path, spec(tmp_path)), "--run-dir", run]
    proc = subprocess.Popen(list(map(str, cmd)), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    return proc, run, log


def wait_for_epoch(proc, run: Path, epoch: int = 1, timeout: float = 120) -> None:
    """Until status.json counts `epoch` completed epochs (the train step is traced and running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before it could be signalled"
        try:
            if json.loads((run / "status.json").read_text())["epoch"] >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no epoch {epoch} within {timeout} s")


def signal_and_wait(proc, pid: int, signum) -> None:
    os.kill(pid, signum)
    proc.wait(timeout=60)  # a hang guard


def assert_preempted(run: Path, log: Path, name: str) -> dict:
    status = json.loads((run / "status.json").read_text())
    newest = backup_files(run / "backup")[0]
    meta, _ = read_backup(newest)
    assert status["state"] == "preempted"
    assert status["step"] == meta["global_step"] and status["epoch"] == meta["epoch"] >= 1
    where = (f"stopped in epoch {meta['epoch'] + 1} after step {meta['step']}" if meta["step"]
             else f"stopped after epoch {meta['epoch']}")
    assert status["error"] == (f"dlrun: {name}: {where} (global step {meta['global_step']}) with a backup in "
                               f"{run / 'backup'}; continue with `dlrun resume {run}`")
    assert status["error"] in log.read_text()
    assert not list((run / "backup").glob(".*"))  # no temp files left behind
    return status


@pytest.mark.slow
def test_sigterm_backs_up_exits_143_and_resume_completes(tmp_path):
    proc, run, log = start_training(tmp_path)
    wait_for_epoch(proc, run)
    signal_and_wait(proc, proc.pid, signal.SIGTERM)  # its latency: bench/startup.py
    assert proc.returncode == 143, log.read_text()[-2000:]
    status = assert_preempted(run, log, "SIGTERM")
    events = list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)  # flushed on the way out

    run_inline("resume", run, check_code=0)
    done = json.loads((run / "status.json").read_text())
    assert done["state"] == "completed" and done["epoch"] == EPOCHS
    assert done["resumed_from"] == {"epoch": status["epoch"], "step": status["step"]}
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == EPOCHS


def test_sigint_backs_up_and_exits_130(tmp_path):
    proc, run, log = start_training(tmp_path)
    wait_for_epoch(proc, run)
    signal_and_wait(proc, proc.pid, signal.SIGINT)
    assert proc.returncode == 130, log.read_text()[-2000:]
    assert_preempted(run, log, "SIGINT")


@pytest.mark.slow
def test_sigterm_works_when_dlrun_is_pid_1(tmp_path):
    require("unshare", shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-fp", "--mount-proc", "true"], capture_output=True).returncode == 0,
        "unshare --pid must work (root, util-linux) for dlrun to be PID 1 of its own namespace")
    # the kernel drops signals without a handler for PID 1; dlrun installs its own, so SIGTERM still works
    proc, run, log = start_training(tmp_path, prefix=["unshare", "-fp", "--mount-proc"])
    wait_for_epoch(proc, run)
    assert (run / "dlrun.lock").read_text() == "1\n"  # the lock holder's pid, as seen inside the namespace
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    signal_and_wait(proc, int(children[0]), signal.SIGTERM)
    assert proc.returncode == 143, log.read_text()[-2000:]
    assert_preempted(run, log, "SIGTERM")


def test_a_second_sigint_interrupts_at_once():
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under a non-interactive shell's `&`, else Python's own
    with Preemption() as preemption:
        os.kill(os.getpid(), signal.SIGINT)
        assert preemption.requested == signal.SIGINT  # the first only asks for a backup at the next step
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs in the main thread between bytecodes
    assert signal.getsignal(signal.SIGINT) is before
