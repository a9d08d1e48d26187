"""multi_worker: two real dlrun processes on 127.0.0.1 train together, and only the chief writes a run directory."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, digits_spec, write_spec
from test_distribute import free_port

# runner/multi_worker.py works around exactly this Keras code; a new Keras changes the hashes: then check
# whether keras-team/keras#20585 is fixed and the override can go
PINNED = {"keras": "3.15.1",
          "keras.src.backend.tensorflow.trainer.TensorFlowTrainer._maybe_symbolic_build": "92a504f5eba9b29f",
          "keras.src.backend.tensorflow.trainer.reduce_per_replica": "2e7d54b1e6edc29a"}


def test_the_override_targets_the_pinned_keras_code():
    import keras
    from keras.src.backend.tensorflow import trainer

    from runner.distribute.multi_worker_fix import PATCHED

    functions = {PATCHED[0]: trainer.TensorFlowTrainer._maybe_symbolic_build, PATCHED[1]: trainer.reduce_per_replica}
    found = {"keras": keras.version(),
             **{name: hashlib.sha256(inspect.getsource(f).encode()).hexdigest()[:16] for name, f in functions.items()}}
    assert found == PINNED


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
    try:
        outs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]

    run_dirs = list((runs / "digits-test").iterdir())
    assert len(run_dirs) == 1 and f"run directory: {run_dirs[0]}" in outs[0][0]
    env_json = json.loads((run_dirs[0] / "env.json").read_text())
    assert (env_json["strategy"], env_json["replicas"]) == ("CollectiveAllReduceStrategy", 2)  # MultiWorkerMirroredStrategy's class
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["test"]["accuracy"] >= 0.88
    # the second worker wrote into a temp dir, gone when it exited, and both computed the same numbers
    assert f"run directory: {worker_tmp}/dlrun-worker-" in outs[1][0]
    assert list(worker_tmp.iterdir()) == []
    tables = [out.split("\nsplit ", 1)[1].splitlines()[:-1] for out, _ in outs]
    assert tables[0] == tables[1] and len(tables[0]) == 4  # header, train, validation, test
