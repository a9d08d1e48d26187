"""End to end on real bundled data: the recipes train, artifacts are complete, numbers are right."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from helpers import ROOT, digits_spec, run_cli, run_inline, write_spec

RUN_FILES = {"config.yaml", "status.json", "metrics.json", "history.csv", "env.json", "tensorboard",
             "checkpoints", "model.keras"}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("digits") / "run"
    proc = run_inline("experiments/digits.yaml", "--run-dir", run, check_code=0)
    return run, proc


def test_digits_recipe_reaches_098_test_accuracy(digits_run):
    run, proc = digits_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.98
    assert f"run directory: {run}" in proc.stdout
    assert proc.stdout.splitlines()[-5].split() == ["split", "accuracy", "loss"]


def test_digits_run_directory_is_complete(digits_run):
    run, _ = digits_run
    assert {p.name for p in run.iterdir()} >= RUN_FILES
    status = json.loads((run / "status.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert status["state"] == "completed" and status["resumed_from"] is None and status["error"] is None
    assert status["epoch"] == metrics["epochs_run"]
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, metrics["epochs_run"] + 1))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"} <= set(rows[0])
    assert metrics["best"]["monitor"] == "val_accuracy" and 1 <= metrics["best"]["epoch"] <= metrics["epochs_run"]
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.keras", "last.keras"}
    env = json.loads((run / "env.json").read_text())
    # throughput: the train split once per epoch after the first (tracing), over those epochs' seconds. They are
    # timed after the epoch's writes, so a little longer than history.csv's, and within the run's wall time
    n, steady = env["data"]["cardinality"]["train"], [float(r["epoch_seconds"]) for r in rows[1:]]
    rate = metrics["throughput"]["examples_per_sec"]
    assert n * len(steady) / metrics["wall_s"] < rate <= n * len(steady) / sum(steady)
    assert env["versions"]["tensorflow"].startswith("2.21") and env["replicas"] == 1
    assert env["data"]["input_shape"] == [8, 8, 1] and env["data"]["cardinality"]["test"] == 359


def test_digits_tensorboard_tags(digits_run):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    run, _ = digits_run
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(run / "tensorboard"))
    mux.Reload()
    tags = {name: set(t["tensors"]) for name, t in mux.Runs().items()}
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= tags["train"]
    assert {"epoch_loss", "epoch_accuracy"} <= tags["validation"]


def test_model_keras_reloads_in_a_fresh_process_with_the_same_test_accuracy(digits_run):
    run, _ = digits_run
    code = f"""
import sys, json, warnings
import keras
with warnings.catch_warnings():
    warnings.simplefilter("error")  # e.g. Keras's "Skipping variable loading for optimizer"
    model = keras.saving.load_model({str(run / 'model.keras')!r})
assert 'runner' not in sys.modules  # the saved model needs no dlrun code
# the optimizer's state as the run ended: its step count
assert int(model.optimizer.iterations.numpy()) == {json.loads((run / 'status.json').read_text())['step']}
from runner.spec import load_config
from runner.data.build import build_data
cfg, _ = load_config({str(run / 'config.yaml')!r})
data = build_data(cfg.data, cfg.seed)
x, y = zip(*data.splits['test'].as_numpy_iterator())
pred = model.predict(keras.ops.convert_to_numpy(keras.ops.stack(x)), verbose=0).argmax(-1)
print(json.dumps(float((pred == list(y)).mean())))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)


def test_iris_mlp_trains_above_floor(tmp_path):
    run = tmp_path / "run"
    run_inline("experiments/iris.yaml", "--run-dir", run, "--set", "train.epochs=40", check_code=0)
    assert json.loads((run / "metrics.json").read_text())["test"]["accuracy"] >= 0.9


def test_summary_parameter_counts():
    out = run_inline("summary", "experiments/digits.yaml", check_code=0).stdout
    # conv 3x3x1x32+32, conv 3x3x32x64+64, dense 256x128+128, head 128x10+10
    assert "trainable parameters: 53,002" in out
    iris = run_inline("summary", "experiments/iris.yaml", check_code=0).stdout
    # softmax regression, 4x3+3; the normalization's mean and variance (4 each) and count are not trainable
    assert "trainable parameters: 15" in iris and "total parameters: 24" in iris


def test_numpy_source_trains_and_metrics_by_name(tmp_path):
    digits = load_digits()
    np.savez(tmp_path / "digits.npz", x=digits.data.astype("float32") / 16.0, y=digits.target)
    spec = digits_spec(tmp_path / "runs",
                       data={"source": "numpy", "path": str(tmp_path / "digits.npz"), "batch_size": 64},
                       model={"arch": "mlp", "units": [64]},
                       train={"epochs": 8, "optimizer": "adam", "lr": 0.01,
                              "metrics": ["accuracy", "top5_accuracy", "precision", "recall", "f1", "auc"],
                              "loss": {"name": "sparse_categorical_crossentropy", "label_smoothing": 0.1}})
    run = tmp_path / "run"
    run_inline("train", write_spec(tmp_path, spec), "--run-dir", run, check_code=0)
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["accuracy"] >= 0.93 and test["top5_accuracy"] >= test["accuracy"]
    for name in ("precision", "recall", "f1", "auc"):
        assert 0.85 <= test[name] <= 1.0, (name, test[name])


def test_regression_on_diabetes(tmp_path):
    spec = digits_spec(tmp_path / "runs",
                       data={"source": "sklearn", "name": "diabetes", "batch_size": 32,
                             "preprocess": [{"normalize": {}}]},
                       model={"arch": "mlp", "units": [32]},
                       train={"epochs": 60, "optimizer": "adam", "lr": 0.05, "metrics": ["mae"]})
    run = tmp_path / "run"
    run_inline("train", write_spec(tmp_path, spec), "--run-dir", run, check_code=0)
    metrics = json.loads((run / "metrics.json").read_text())
    # predicting the mean target gives a mean absolute error of about 64 on this data
    assert metrics["test"]["mae"] < 50
    assert metrics["best"]["monitor"] == "val_mae"


def test_non_finite_loss_exits_4_naming_epoch_and_step(tmp_path):
    x = load_digits().data.astype("float32")
    x[:, 0] = np.inf
    np.savez(tmp_path / "bad.npz", x=x, y=load_digits().target)
    spec = digits_spec(tmp_path / "runs", data={"source": "numpy", "path": str(tmp_path / "bad.npz")},
                       model={"arch": "mlp", "units": [8]}, train={"epochs": 2, "steps_per_execution": 1})
    run = tmp_path / "run"
    proc = run_inline("train", write_spec(tmp_path, spec), "--run-dir", run, check_code=4)
    assert "non-finite loss nan at epoch 1, step 1" in proc.stderr and "Traceback" not in proc.stderr
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["step"]) == ("failed", 1)


def test_missing_data_file_exits_3(tmp_path):
    spec = digits_spec(tmp_path / "runs", data={"source": "numpy", "path": str(tmp_path / "none.npz")})
    proc = run_inline("train", write_spec(tmp_path, spec), check_code=3)
    assert proc.stderr.strip().endswith(f"data.path: {tmp_path / 'none.npz'}: file not found")
    # the run failed before writing anything: no run directory of only its lock file is left behind
    assert list((tmp_path / "runs").iterdir()) == []
