"""Focal and Huber losses: built with their settings, and the loss a run reports is that formula on held-out data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import digits_spec, write_spec


def _loss(spec: dict, mode: str, from_logits: bool = False):
    from runner.training.losses import LOSSES, build_loss

    entry = LOSSES.get(spec["name"])
    return build_loss(entry.config.model_validate(spec), entry.tasks[0], mode, from_logits)


def _value(loss, y_true, y_pred) -> float:
    return float(loss(np.asarray(y_true, "float32"), np.asarray(y_pred, "float32")))


def test_focal_follows_lin_et_al():
    # -alpha * (1 - p)^gamma * log(p) of the true class, averaged over examples
    loss = _loss({"name": "focal", "gamma": 2.0, "alpha": 0.25}, "one_hot")
    p = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    want = np.mean([-0.25 * 0.3**2 * np.log(0.7), -0.25 * 0.7**2 * np.log(0.3)])
    assert _value(loss, [[0, 1, 0], [0, 1, 0]], p) == pytest.approx(want, rel=1e-5)
    plain = _loss({"name": "focal", "gamma": 0.0, "alpha": 1.0}, "one_hot")  # gamma 0, alpha 1: cross-entropy
    assert _value(plain, [[0, 1, 0]], p[:1]) == pytest.approx(-np.log(0.7), rel=1e-5)


def test_huber_is_quadratic_within_delta_and_linear_beyond():
    loss = _loss({"name": "huber", "delta": 2.0}, "regression")
    # |e| = 1 <= 2: e^2 / 2 = 0.5; |e| = 5 > 2: delta * (|e| - delta / 2) = 2 * 4 = 8
    assert _value(loss, [[0.0], [5.0]], [[1.0], [0.0]]) == pytest.approx((0.5 + 8.0) / 2, rel=1e-6)


def _train(tmp_path, spec):
    from runner.kernel import run_dir as rd
    from runner.run.experiment import run_experiment
    from runner.spec import load_config

    cfg, _ = load_config(write_spec(tmp_path, spec))
    result = run_experiment(cfg, rd.RunDir.at(str(tmp_path / "run")))
    return cfg, result


def _test_split(cfg):
    from runner.data.build import build_data

    x, y = zip(*build_data(cfg.data, cfg.seed).splits["test"].as_numpy_iterator())
    return np.stack(x), np.stack(y)


def test_a_focal_run_learns_and_reports_the_focal_loss(tmp_path):
    import keras

    spec = digits_spec(tmp_path, train={"epochs": 3, "optimizer": "adam", "lr": 0.003,
                                        "loss": {"name": "focal", "gamma": 2.0, "alpha": 0.25}},
                       callbacks={"tensorboard": None})
    cfg, result = _train(tmp_path, spec)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.8  # held-out digits; chance is 0.1
    x, y = _test_split(cfg)
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    from runner.models import outputs_logits

    assert outputs_logits(model)  # the head's logits; the loss applies the softmax
    p = np.clip(keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, verbose=0))), 1e-7, 1 - 1e-7)
    true = p[np.arange(len(y)), y.astype(int).reshape(-1)]
    assert metrics["test"]["loss"] == pytest.approx(np.mean(-0.25 * (1 - true) ** 2 * np.log(true)), rel=1e-3)


def test_a_huber_regression_reports_the_huber_loss(tmp_path):
    import keras

    spec = digits_spec(tmp_path, train={"epochs": 3, "optimizer": "adam", "lr": 0.01,
                                        "loss": {"name": "huber", "delta": 1.0}},
                       data={"source": "sklearn", "name": "diabetes", "batch_size": 32,
                             "splits": {"train": "[:70%]", "validation": "[70%:80%]", "test": "[80%:]"}},
                       model={"arch": "mlp", "units": [16]}, callbacks={"tensorboard": None})
    cfg, result = _train(tmp_path, spec)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    x, y = _test_split(cfg)
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    error = np.abs(model.predict(x, verbose=0).reshape(-1) - y.reshape(-1))
    huber = np.where(error <= 1.0, error**2 / 2, error - 0.5)
    assert metrics["test"]["loss"] == pytest.approx(float(np.mean(huber)), rel=1e-3)
