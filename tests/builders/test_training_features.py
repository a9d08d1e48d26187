"""Schedules one_cycle and cosine_restarts, reduce_on_plateau, class weights: exact values against their formulas."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from helpers import digits_spec, write_spec


def _schedule(spec: dict, steps_per_epoch: int, epochs: int):
    from runner.training.schedules import SCHEDULES, build_schedule

    return build_schedule(SCHEDULES.get(spec["schedule"]).config.model_validate(spec), steps_per_epoch, epochs)


def _values(schedule, steps):
    import keras

    return [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]


def test_one_cycle_rises_then_falls_by_cosine():
    # 10 epochs x 10 steps, rise over the first 30 steps from 0.4/20 to 0.4, then cosine down to 0.4/1000
    s = _schedule({"schedule": "one_cycle", "base": 0.4, "pct_start": 0.3, "div_factor": 20,
                   "final_div_factor": 1000}, 10, 10)
    lo, hi, end = 0.4 / 20, 0.4, 0.4 / 1000
    mid = end + (hi - end) * 0.5 * (1 + math.cos(math.pi * 35 / 70))
    np.testing.assert_allclose(_values(s, [0, 15, 30, 65, 100]),
                               [lo, lo + (hi - lo) / 2, hi, mid, end], rtol=1e-5)


def test_cosine_restarts_follow_sgdr():
    # first cycle 2 epochs of 5 steps; the second is t_mul=2 times longer and starts at m_mul=0.5 x base
    s = _schedule({"schedule": "cosine_restarts", "base": 0.1, "first_cycle_epochs": 2, "t_mul": 2.0,
                   "m_mul": 0.5}, 5, 10)
    np.testing.assert_allclose(_values(s, [0, 5, 10, 20]),
                               [0.1, 0.05, 0.05, 0.025], rtol=1e-5)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "exponential", "step"])
def test_every_warmup_rises_from_0_to_base_on_one_line(schedule):
    # docs/config.md: "linear warm-up from 0 to `base`": lr(s) = base * s / warmup for s < warmup, for every
    # schedule (Keras builds it into CosineDecay; dlrun's Warmup wraps the others)
    extra = {"boundaries": [5]} if schedule == "step" else {}
    s = _schedule({"schedule": schedule, "base": 0.1, "warmup_steps": 4, **extra}, 10, 10)
    np.testing.assert_allclose(_values(s, [0, 1, 2, 3, 4]), [0.0, 0.025, 0.05, 0.075, 0.1], rtol=1e-6, atol=1e-9)


def test_exponential_decays_by_decay_rate_every_decay_epochs():
    # 5 steps per epoch, decay_epochs 2: lr(s) = 0.1 * 0.5 ** (s / 10); staircase floors the exponent
    smooth = _schedule({"schedule": "exponential", "base": 0.1, "decay_rate": 0.5, "decay_epochs": 2}, 5, 10)
    np.testing.assert_allclose(_values(smooth, [0, 5, 10, 20]), [0.1, 0.1 * 0.5**0.5, 0.05, 0.025], rtol=1e-6)
    stairs = _schedule({"schedule": "exponential", "base": 0.1, "decay_rate": 0.5, "decay_epochs": 2,
                        "staircase": True}, 5, 10)
    np.testing.assert_allclose(_values(stairs, [0, 9, 10, 19, 20]), [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)
    warm = _schedule({"schedule": "exponential", "base": 0.1, "decay_rate": 0.5, "decay_epochs": 2,
                      "warmup_steps": 4}, 5, 10)
    np.testing.assert_allclose(_values(warm, [4, 14]), [0.1, 0.05], rtol=1e-6)  # the decay starts after it


def test_step_multiplies_by_factor_from_the_first_step_of_each_boundary_epoch():
    # 5 steps per epoch: epochs 0-1 are steps 0..9, epoch 2 (boundary 2) starts at step 10, epoch 4 at step 20
    s = _schedule({"schedule": "step", "base": 0.1, "boundaries": [2, 4], "factor": 0.1}, 5, 10)
    np.testing.assert_allclose(_values(s, [0, 9, 10, 19, 20, 49]), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_one_cycle_refuses_an_extra_warmup():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="one_cycle has its own rise"):
        _schedule({"schedule": "one_cycle", "base": 0.1, "warmup_epochs": 1}, 10, 10)


def _load(folder, spec: dict):
    from runner.spec import load_config

    folder.mkdir(parents=True, exist_ok=True)
    return load_config(write_spec(folder, spec))[0]


def _run(tmp_path, **sections):
    from runner.run.experiment import run_experiment

    spec = digits_spec(tmp_path, **sections)
    spec["callbacks"] = {"tensorboard": None, "checkpoint": None, **spec.get("callbacks", {})}
    return run_experiment(_load(tmp_path, spec))


def test_reduce_on_plateau_halves_the_rate_after_each_flat_epoch(tmp_path):
    # min_delta 10 means val_loss never improves after the first epoch: the rate halves at every later epoch end
    result = _run(tmp_path, train={"epochs": 4, "optimizer": "adam", "lr": 0.004},
                  callbacks={"reduce_on_plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1,
                                                   "min_delta": 10.0}})
    rows = list(csv.DictReader(result.run_dir.file("history.csv").open()))
    np.testing.assert_allclose([float(r["learning_rate"]) for r in rows], [0.004, 0.004, 0.002, 0.001], rtol=1e-6)


def _breast_cancer(tmp_path):
    from runner.data.build import build_data

    cfg = _load(tmp_path, {"name": "bc", "data": {"source": "sklearn", "name": "breast_cancer"},
                           "model": {"arch": "mlp"}, "output": {"dir": str(tmp_path)}})
    return build_data(cfg.data, cfg.seed)


def test_class_weights_balanced_and_by_name_or_index(tmp_path):
    from runner.training.losses import class_weights

    data = _breast_cancer(tmp_path)
    labels = np.fromiter(data.splits["train"].map(lambda x, y: y).as_numpy_iterator(), dtype="int64")
    counts = np.bincount(labels)
    assert counts.tolist() == [170, 285]  # 80% of 212 malignant / 357 benign, stratified
    balanced = class_weights("balanced", labels, data.info)
    assert balanced == pytest.approx({0: 455 / (2 * 170), 1: 455 / (2 * 285)})
    assert class_weights({"malignant": 3.0}, None, data.info) == {0: 3.0, 1: 1.0}
    assert class_weights({"1": 0.5}, None, data.info) == {0: 1.0, 1: 0.5}


def test_class_weight_errors(tmp_path):
    from runner.kernel.errors import ConfigError
    from runner.training.losses import class_weights

    data = _breast_cancer(tmp_path)
    with pytest.raises(ConfigError) as e:
        class_weights({"benign ": 2.0}, None, data.info)
    assert str(e.value) == ("train.class_weight.benign : not a class of this data; use a class index 0..1 or a "
                            "name: malignant, benign")


def test_class_weighted_stream_weights_each_example(tmp_path):
    from runner.training.losses import class_weighted

    data = _breast_cancer(tmp_path)
    stream = class_weighted(lambda position: data.splits["train"].batch(64), {"malignant": 4.0}, data, "sparse", False)
    for _, y, w in stream(0).as_numpy_iterator():
        assert w.tolist() == [4.0 if label == 0 else 1.0 for label in y]


def test_class_weight_changes_the_training_loss_by_the_weights(tmp_path):
    # all-equal weights of 2 double the first step's loss exactly: Keras weighs the per-example losses
    plain = _run(tmp_path / "a", train={"epochs": 1, "lr": 1e-9}, data=_one_batch_digits())
    doubled = _run(tmp_path / "b", train={"epochs": 1, "lr": 1e-9,
                                          "class_weight": {str(c): 2.0 for c in range(10)}}, data=_one_batch_digits())
    assert doubled.metrics["train"]["loss"] == pytest.approx(2 * plain.metrics["train"]["loss"], rel=1e-4)


def _one_batch_digits():
    return {"source": "sklearn", "name": "digits", "batch_size": 512,
            "splits": {"train": "[:20%]", "validation": None, "test": "[80%:]"},
            "preprocess": [{"rescale": {"scale": 0.0625}}]}
