"""Strategies and their preflight: mirrored over CPU replicas, the global-batch rule, unreachable workers,
clipping after the all-reduce."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from helpers import ROOT, digits_spec, free_ports, run_cli, write_spec
from runner.distribute.strategy import check_batch, wait_for_peers
from runner.kernel.errors import ConfigError, EnvironmentProblem

# the floor test_train's single-device digits runs are held to for this 3-epoch spec
ACCURACY_FLOOR = 0.88


@pytest.mark.slow
def test_mirrored_over_two_cpu_replicas_reaches_the_single_device_floor(tmp_path):
    spec = digits_spec(tmp_path / "runs", distribute={"strategy": "mirrored", "cpu_replicas": 2})
    run = tmp_path / "run"
    run_cli(write_spec(tmp_path, spec), "--run-dir", run, check_code=0)
    metrics = json.loads((run / "metrics.json").read_text())
    env = json.loads((run / "env.json").read_text())
    assert metrics["test"]["accuracy"] >= ACCURACY_FLOOR
    assert metrics["validation"]["accuracy"] >= ACCURACY_FLOOR
    assert (env["strategy"], env["replicas"]) == ("MirroredStrategy", 2)
    assert env["speed"] == {"precision": "float32", "jit_compile": False, "steps_per_execution": 1}
    # resuming the completed run trains nothing and finishes it again: under a strategy Keras's fit reads a batch
    # before its (zero) epochs, which the exhausted stream of a completed run did not have (StopIteration)
    resumed = run_cli("resume", run, check_code=0)
    assert "Traceback" not in resumed.stderr
    again = json.loads((run / "metrics.json").read_text())
    assert again["test"] == metrics["test"] and again["epochs_run"] == metrics["epochs_run"]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["resumed_from"]["epoch"] == metrics["epochs_run"]


def test_global_batch_not_divisible_by_replicas_exits_2_before_training(tmp_path):
    spec = digits_spec(tmp_path / "runs", distribute={"strategy": "mirrored", "cpu_replicas": 3})
    path = write_spec(tmp_path, spec)
    proc = run_cli(path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "data.batch_size: the global batch must divide evenly over 3 replicas; received 64 (try 63)")
    assert not (tmp_path / "runs").exists()


def test_runtime_batch_check_names_the_strategy_and_a_fix():
    four = SimpleNamespace(num_replicas_in_sync=4)
    with pytest.raises(ConfigError) as e:
        check_batch(four, 66)
    assert e.value.message == ("data.batch_size: the global batch must divide evenly over the 4 replicas of "
                               "SimpleNamespace; received 66 (try 64 or 68)")
    with pytest.raises(ConfigError) as e:
        check_batch(four, 2)
    assert e.value.message == ("data.batch_size: the global batch gives each of the 4 replicas of SimpleNamespace "
                               "less than one example; received 2 (use at least 4)")
    check_batch(four, 64)


def test_unreachable_worker_exits_5_naming_it(tmp_path):
    me, absent = free_ports(2)
    spec = digits_spec(tmp_path / "runs", distribute={
        "strategy": "multi_worker", "workers": [f"127.0.0.1:{me}", f"127.0.0.1:{absent}"], "task_index": 0,
        "connect_timeout": 2.0})
    proc = run_cli(write_spec(tmp_path, spec), timeout=60)
    assert proc.returncode == 5, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"multi_worker: cannot reach 127.0.0.1:{absent} (worker 1) within 2 s (distribute.connect_timeout); "
        "check that every worker runs with the same cluster, the host names resolve and the ports are open")
    assert not (tmp_path / "runs").exists()


def test_handshake_returns_once_every_worker_reached_every_other():
    spec = {"worker": [f"127.0.0.1:{port}" for port in free_ports(3)]}
    errors = []

    def worker(i):
        try:
            wait_for_peers(spec, "worker", i, timeout=20)
        except EnvironmentProblem as e:
            errors.append(e.message)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.3)  # workers start at different times
    for t in threads:
        t.join(30)
    assert errors == []
    # every listener is closed again: TensorFlow's server can take the ports
    for address in spec["worker"]:
        with socket.socket() as s:
            s.bind(("", int(address.rpartition(":")[2])))


def test_own_port_in_use_exits_5():
    with socket.create_server(("", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(EnvironmentProblem) as e:
            wait_for_peers({"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]}, "worker", 0, timeout=1)
    assert e.value.message.startswith(f"multi_worker: this worker (worker 0) cannot listen on 127.0.0.1:{port}: ")
    assert e.value.message.endswith("; free the port or change it in the cluster")


def test_multi_worker_without_a_cluster_is_a_config_error(tmp_path):
    spec = digits_spec(tmp_path / "runs", distribute={"strategy": "multi_worker"})
    proc = run_cli(write_spec(tmp_path, spec), env={"TF_CONFIG": ""}, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "distribute.strategy: multi_worker needs the cluster: set distribute.workers (every worker's host:port) "
        "and distribute.task_index, or the TF_CONFIG environment variable; received neither")


@pytest.mark.parametrize("override, message", [
    ("distribute.task_index=null", "distribute.task_index: distribute.workers needs this worker's index in the "
                                   "list (0 for the chief); received none"),
    ("distribute.task_index=2", "distribute.task_index: must index one of the 2 workers listed (0..1); received 2"),
    ("distribute.workers=[10.0.0.1:1, host]", "distribute.workers[1]: must be host:port, like 10.0.0.2:12345; "
                                              "received 'host'"),
])
def test_cluster_keys_are_checked_without_tensorflow(tmp_path, override, message):
    spec = digits_spec(tmp_path / "runs", distribute={
        "strategy": "multi_worker", "workers": ["10.0.0.1:2222", "10.0.0.2:2222"], "task_index": 0})
    proc = run_cli("validate", write_spec(tmp_path, spec), "--set", override, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"--set {override}: {message}"


CLIP_SCRIPT = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from runner.training.compile_options import clip_after_all_reduce
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
x = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0, 1, 2, 3]] * 100
y = np.zeros((8, 1), "float32")
norms = []
for fix in (False, True):
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, kernel_initializer="ones")])
        model.compile(keras.optimizers.SGD(1.0, global_clipnorm=0.5), "mse")
        if fix:
            clip_after_all_reduce(model.optimizer)
    before = model.get_weights()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    norms.append(float(np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(model.get_weights(), before)))))
print(" ".join(f"{n:.6f}" for n in norms))
"""


@pytest.mark.slow
def test_global_clipnorm_bounds_the_summed_gradient_of_two_replicas():
    proc = subprocess.run([sys.executable, "-c", CLIP_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    stock, fixed = map(float, proc.stdout.split())
    # stock Keras 3.15 clips each replica's half to 0.5 and then sums them: a step of 1.0
    assert stock == pytest.approx(1.0, abs=1e-5)
    assert fixed == pytest.approx(0.5, abs=1e-5)


RELEASE_SCRIPT = """
import gc, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tensorflow.python.framework import ops
from tensorflow.python.framework.func_graph import FuncGraph
from runner.spec import load_config
from runner.run.train import train
for run in range(2):
    cfg, _ = load_config(sys.argv[1], [f"output.dir={sys.argv[2]}"])
    result = train(cfg)
    gc.collect()
    entries = sum(n.startswith("CustomGradient-") for n in ops._gradient_registry.list())
    print(result.metrics["test"]["accuracy"], entries, sum(isinstance(o, FuncGraph) for o in gc.get_objects()))
"""


@pytest.mark.slow
def test_runs_with_two_replicas_in_one_process_release_their_train_step_graphs(tmp_path):
    # the all-reduce of two replicas is a custom gradient, registered process-wide: without the release each run
    # left 2 registry entries and the graphs they hold behind (a sweep's trials, k-fold's folds)
    spec = {"name": "iris2", "seed": 1, "distribute": {"strategy": "mirrored", "cpu_replicas": 2},
            "data": {"source": "sklearn", "name": "iris", "batch_size": 16,
                     "splits": {"train": "[:60%]", "validation": "[60%:80%]", "test": "[80%:]"},
                     "preprocess": [{"normalize": {}}]},
            "model": {"arch": "mlp", "units": [16]}, "train": {"epochs": 3, "optimizer": "adam", "lr": 0.05}}
    argv = [sys.executable, "-c", RELEASE_SCRIPT, str(write_spec(tmp_path, spec)), str(tmp_path / "runs")]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert [row[1:] for row in rows] == [["0", "0"], ["0", "0"]]
    assert rows[0][0] == rows[1][0] and float(rows[0][0]) >= 0.8  # the same seeded run, trained
