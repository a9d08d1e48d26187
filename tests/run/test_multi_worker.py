"""multi_worker: two real dlrun processes on 127.0.0.1 train together, and only the chief writes a run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT, digits_spec, free_port, wait_all, write_spec

def test_every_keras_fix_is_pinned_to_the_installed_keras_source():
    from runner.kernel.keras_pins import FIXES, PINNED_KERAS, require, source_hash

    import keras

    assert keras.version() == PINNED_KERAS
    for fix, (pins, _) in FIXES.items():
        assert {name: source_hash(name) for name in pins} == pins, fix
        require(fix)


def test_a_changed_keras_function_stops_the_fix_with_exit_5_naming_versions_and_the_way_out(monkeypatch):
    from runner.kernel import keras_pins
    from runner.kernel.errors import EnvironmentProblem

    pins, instead = keras_pins.FIXES["multi_worker_fit"]
    name = next(iter(pins))
    monkeypatch.setitem(keras_pins.FIXES, "multi_worker_fit", ({**pins, name: "0000000000000000"}, instead))
    keras_pins.require.cache_clear()
    with pytest.raises(EnvironmentProblem) as e:
        keras_pins.require("multi_worker_fit")
    keras_pins.require.cache_clear()
    assert e.value.exit_code == 5
    assert e.value.message == (
        "Keras 3.15.1 is installed; dlrun's multi_worker_fit fix was written for Keras 3.15.1 and its Keras code "
        f"changed ({name}), so dlrun will not patch it: use distribute.strategy: mirrored (one host) or default, "
        "or install keras==3.15.1")


@pytest.mark.slow
def test_two_workers_train_together_and_only_the_chief_writes(tmp_path):
    runs = tmp_path / "runs"
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    spec = digits_spec(runs, distribute={"strategy": "multi_worker", "workers": workers, "connect_timeout": 120})
    path = write_spec(tmp_path, spec)
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "TMPDIR": str(worker_tmp)}
    procs = [subprocess.Popen([sys.executable, "-m", "runner", "train", str(path), "--set",
                               f"distribute.task_index={i}"], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    outs = wait_all(procs)

    run_dirs = list((runs / "digits-test").iterdir())
    assert len(run_dirs) == 1 and f"run directory: {run_dirs[0]}" in outs[0][0]
    env_json = json.loads((run_dirs[0] / "env.json").read_text())
    assert (env_json["strategy"], env_json["replicas"]) == ("CollectiveAllReduceStrategy", 2)  # MultiWorkerMirroredStrategy's class
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["test"]["accuracy"] >= 0.88
    # the second worker wrote into a temp dir, gone when it exited, and both computed the same numbers
    assert f"run directory: {worker_tmp}/dlrun-worker-" in outs[1][0]
    assert list(worker_tmp.iterdir()) == []
    tables = [out[out.index("split "):].splitlines()[:-1] for out, _ in outs]
    assert tables[0] == tables[1] and len(tables[0]) == 4  # header, train, validation, test
