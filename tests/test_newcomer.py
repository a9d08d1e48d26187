"""A newcomer's first hour (issue 20): each surprise met as a new user, through the CLI, with its exact message."""

from __future__ import annotations

import json
import os

import yaml

from conftest import ROOT, digits_spec, run_cli, write_spec
from runner.cli.main import main


def _validate(capsys, path, *sets) -> tuple[int, list[str]]:
    code = main(["validate", str(path), *(a for s in sets for a in ("--set", s))])
    captured = capsys.readouterr()
    return code, (captured.err or captured.out).splitlines()


def _line(path, key: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith(f"{key}:"))


# 1. a `splits` map is the whole set

def test_a_splits_map_without_validation_has_none(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs")
    spec["data"]["splits"] = {"train": "[:80%]", "test": "[80%:]"}
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (0, [f"{path}: ok"])
    rendered = yaml.safe_load(run_cli("render", path, check_code=0).stdout)
    assert rendered["data"]["splits"] == {"train": "[:80%]", "validation": None, "test": "[80%:]"}
    # the design's own --set example, on a recipe without a val_* monitor
    iris = ROOT / "experiments" / "iris.yaml"
    assert _validate(capsys, iris, 'data.splits={train: "[:50%]", test: "[50%:]"}',
                     "callbacks.early_stopping.monitor=loss") == (0, [f"{iris}: ok"])
    # with k-fold, each fold's held-out part is its validation split
    assert _validate(capsys, iris, 'data.splits={train: "[:80%]", test: "[80%:]"}', "data.kfold={k: 3}") == (
        0, [f"{iris}: ok"])


def test_a_val_monitor_without_a_validation_split_is_still_refused(tmp_path, capsys):
    digits = ROOT / "experiments" / "digits.yaml"
    code, lines = _validate(capsys, digits, 'data.splits={train: "[:50%]", test: "[50%:]"}')
    assert (code, lines) == (2, [
        f"{os.path.relpath(digits)}:{_line(digits, 'early_stopping')}: callbacks.early_stopping.monitor: 'val_loss' needs a "
        "validation split, and data.splits.validation is null; monitor 'loss' or add a validation split"])
    spec = digits_spec(tmp_path / "runs")
    spec["data"]["splits"] = {"train": "[:80%]", "validation": None, "test": "[80%:]"}
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (0, [f"{path}: ok"])


def test_training_without_validation_monitors_the_training_loss(tmp_path):
    spec = digits_spec(tmp_path / "runs", model={"arch": "mlp", "units": [16]})
    spec["data"]["splits"] = {"train": "[:30%]", "test": "[80%:]"}
    spec["train"]["epochs"] = 2
    run_dir = tmp_path / "run"
    run_cli("train", write_spec(tmp_path, spec), "--run-dir", run_dir, check_code=0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best"]["monitor"] == "loss"
    assert "validation" not in metrics and set(metrics["test"]) == {"loss", "accuracy"}


# 2. a sweep blames no sampled value for the base spec's own error

def test_a_sweep_reports_the_base_specs_own_error_at_its_line(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs")
    spec["train"] = {"epochs": 2, "lr": {"schedule": "cosine", "base": 0.003, "warmup_epochs": 2}}
    spec["sweep"] = {"method": "random", "trials": 2, "metric": "val_accuracy",
                     "params": {"train.lr.base": {"loguniform": [1.0e-4, 1.0e-1]},
                                "model.filters": {"choice": [[8], [-1]]}}}
    path = write_spec(tmp_path, spec)
    code, lines = _validate(capsys, path)
    assert (code, lines) == (2, [
        f"{os.path.relpath(path)}:{_line(path, 'warmup_epochs')}: train.lr.warmup_epochs: warm-up must be shorter than training "
        "(2 epochs); received 2.0",
        f"{os.path.relpath(path)}:{_line(path, 'model.filters')}: sweep.params.model.filters: value [-1] is rejected: "
        "model.filters[0]: must be >= 1; received -1"])
