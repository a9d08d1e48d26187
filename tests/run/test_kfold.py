"""data.kfold: stratified, disjoint folds of the training pool; k runs whose metrics are reported as mean and std,
also as the objective of a sweep trial."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from helpers import custom_gradients, write_spec
from runner.spec import load_config
from runner.data.dataset import split_pool
from runner.cli.output import kfold_summary as summary_table
from runner.data.kfold import fold_indices
from runner.run.kfold import with_fold
from runner.data.sources import SOURCES
from runner.kernel.errors import ConfigError


def iris_cv_spec(tmp_path, **kfold) -> dict:
    return {
        "name": "iris-cv", "seed": 3,
        "data": {"source": "sklearn", "name": "iris", "batch_size": 16, "preprocess": [{"normalize": {}}],
                 "splits": {"train": "[:60%]", "validation": "[60%:80%]", "test": "[80%:]"},
                 "kfold": {"k": 5, "stratified": True, **kfold}},
        "model": {"arch": "mlp", "units": [16]},
        "train": {"epochs": 3, "optimizer": "adam", "lr": 0.05},
        "callbacks": {"checkpoint": None},
        "output": {"dir": str(tmp_path / "runs")},
    }


def test_folds_are_stratified_disjoint_and_are_what_each_fold_run_trains_on(tmp_path):
    cfg, _ = load_config(write_spec(tmp_path, iris_cv_spec(tmp_path)))
    pool = SOURCES.get("sklearn").builder(cfg.data, cfg.seed)
    arrays = split_pool(pool, cfg.data, cfg.seed)
    x = np.concatenate([arrays["train"][0], arrays["validation"][0]])  # the training pool: 80% of 150
    y = np.concatenate([arrays["train"][1], arrays["validation"][1]])
    folds = fold_indices(y, cfg.data.kfold, cfg.seed, "classification")
    held = [h for _, h in folds]
    assert sorted(np.concatenate(held).tolist()) == list(range(120))  # disjoint, and together the whole pool
    for train, h in folds:
        assert not set(train) & set(h) and len(train) + len(h) == 120
    assert [np.bincount(y[h], minlength=3).tolist() for h in held] == [[8, 8, 8]] * 5  # 40 per class / 5
    for i, (train, h) in enumerate(folds):
        fold = split_pool(pool, with_fold(cfg, i).data, cfg.seed)
        assert np.array_equal(fold["validation"][0], x[h]) and np.array_equal(fold["train"][0], x[train])
        assert np.array_equal(fold["test"][1], arrays["test"][1])  # the test split stays out of every fold


def test_kfold_rules(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write_spec(tmp_path, iris_cv_spec(tmp_path, k=1, fold=5)))
    lines = [line.split(": ", 1)[1] for line in e.value.problems]
    assert lines == ["data.kfold.k: must be >= 2; received 1"]
    with pytest.raises(ConfigError) as e:
        load_config(write_spec(tmp_path, iris_cv_spec(tmp_path, fold=5)))
    assert [line.split(": ", 1)[1] for line in e.value.problems] == ["data.kfold.fold: must be < k (5); received 5"]
    spec = iris_cv_spec(tmp_path)
    spec["data"] = {"source": "tfds", "name": "mnist", "splits": {"train": "train", "validation": None,
                                                                  "test": "test"}, "kfold": {"k": 3}}
    with pytest.raises(ConfigError) as e:
        load_config(write_spec(tmp_path, spec))
    assert [line.split(": ", 1)[1] for line in e.value.problems] == [
        "data.kfold: needs a source with a single pool of examples (sklearn, numpy, csv, image_folder); remove "
        "data.kfold for this source; received {'k': 3}"]


@pytest.mark.slow
def test_five_fold_iris_reports_mean_and_std_and_is_a_sweep_objective(tmp_path, capsys):
    from runner.sweep.study import run_sweep

    spec = iris_cv_spec(tmp_path)
    spec["sweep"] = {"method": "grid", "trials": 1, "metric": "val_accuracy",
                     "params": {"train.lr.base": {"choice": [0.05]}}}
    registered = custom_gradients()
    assert run_sweep(write_spec(tmp_path, spec)).endswith(f"best spec: {tmp_path / 'runs' / 'iris-cv' / 'best.yaml'}")
    # each fold's run releases its gradients' all-reduce custom gradient: no train step stays (each kept ~4 MB)
    assert custom_gradients() == registered
    import optuna

    study = optuna.load_study(study_name="iris-cv", storage=f"sqlite:///{tmp_path / 'runs/iris-cv/sweep.db'}")
    trial = study.trials[0]
    run_dir = tmp_path / trial.user_attrs["run_dir"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["kfold"] == {"k": 5, "stratified": True, "folds_run": 5, "fold_sizes": [24] * 5}
    folds = metrics["folds"]
    assert len(folds) == 5 and metrics["epochs_run"] == 15
    for split in ("train", "validation", "test"):
        for name in ("accuracy", "loss"):
            values = np.array([f[split][name] for f in folds])
            assert metrics[split][name] == pytest.approx(values.mean(), abs=1e-12)
            assert metrics["std"][split][name] == pytest.approx(values.std(), abs=1e-12)
    assert metrics["validation"]["accuracy"] >= 0.6  # chance is 1/3
    assert 0 < metrics["std"]["validation"]["accuracy"] < 0.3
    for i, fold in enumerate(folds, 1):
        fold_dir = run_dir / "folds" / f"fold-{i}"
        env = json.loads((fold_dir / "env.json").read_text())
        assert env["data"]["cardinality"] == {"train": 96, "validation": 24, "test": 30}
        assert json.loads((fold_dir / "status.json").read_text())["state"] == "completed"
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"

    # the objective is the mean over folds of each fold's best epoch
    bests = []
    for i in range(1, 6):
        with open(run_dir / "folds" / f"fold-{i}" / "history.csv", newline="") as f:
            bests.append(max(float(row["val_accuracy"]) for row in csv.DictReader(f)))
    assert trial.value == pytest.approx(sum(bests) / 5, abs=1e-12)

    table = summary_table(metrics).splitlines()
    assert table[0] == "5-fold cross-validation (mean ± std over folds)"
    assert table[1].split() == ["split", "accuracy", "loss"]
    acc, std = metrics["validation"]["accuracy"], metrics["std"]["validation"]["accuracy"]
    assert table[3].startswith(f"validation  {acc:.4f} ± {std:.4f}")
