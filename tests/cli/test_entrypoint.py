"""The image's entrypoint behaviour without Docker: `tini -- dlrun ...` as PID 1 of a new PID namespace
(what `docker run` does) stops on SIGTERM with exit 143 and leaves a resumable run directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, digits_spec, require, run_inline, write_spec

TINI = shutil.which("tini")


def _namespaces_allowed() -> bool:
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    return subprocess.run([unshare, "--fork", "--pid", "--mount-proc", "true"], capture_output=True).returncode == 0


def _entrypoint() -> list[str]:
    """The container's command line, the Dockerfile's ENTRYPOINT: tini -- dlrun, as PID 1 of a new PID namespace
    where unshare works (tini's -s makes it a subreaper where it does not)."""
    prefix = ["unshare", "--fork", "--pid", "--mount-proc"] if _namespaces_allowed() else []
    return [*prefix, TINI, *([] if prefix else ["-s"]), "--", sys.executable, "-m", "runner"]


def _wait_for_epoch(run: Path, proc, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            if json.loads((run / "status.json").read_text())["epoch"] >= 1:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.2)
    raise AssertionError("the run did not finish an epoch in time")


# dlrun itself as PID 1 (`--entrypoint dlrun`): tests/run/test_signals.py::test_sigterm_works_when_dlrun_is_pid_1
def test_sigterm_to_the_container_init_exits_143_resumable(tmp_path):
    require("tini", TINI is not None, "the image's entrypoint runs under it (.ci/run installs it with apt)")
    spec = write_spec(tmp_path, digits_spec(tmp_path / "runs", train={"epochs": 10, "optimizer": "adam"}))
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([*_entrypoint(), "train", str(spec), "--run-dir", str(run)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_epoch(run, proc)
        # `docker stop` signals the container's PID 1; from outside the namespace that is unshare's child
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        target = int(children[0]) if children and _namespaces_allowed() else proc.pid
        os.kill(target, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "preempted" and 1 <= status["epoch"] < 10
    run_inline("resume", run, check_code=0)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["epoch"] == 10
    assert status["resumed_from"]["epoch"] >= 1
