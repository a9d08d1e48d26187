"""Mixed precision on CPU: a few steps in bfloat16 and in float16 (with loss scaling) train with finite losses
and float32 variables; model.keras loads back with the optimizer it trained with."""

from __future__ import annotations

import math
import warnings

import pytest

from helpers import digits_spec, write_spec


@pytest.fixture
def float32_after():
    import keras

    yield
    keras.mixed_precision.set_global_policy("float32")  # the policy is process-wide; later tests expect float32


@pytest.mark.parametrize("precision, optimizer", [("mixed_bfloat16", "Adam"), ("mixed_float16", "LossScaleOptimizer")])
def test_mixed_precision_trains_with_finite_losses_and_float32_variables(tmp_path, float32_after, precision,
                                                                         optimizer):
    import keras

    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    seen = {}

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.setdefault("losses", []).append(float(logs["loss"]))
            model = self.model
            seen["optimizer"] = type(model.optimizer).__name__
            seen["compute"] = {layer.compute_dtype for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
            seen["variables"] = {v.dtype for v in model.weights} | {v.dtype for v in model.optimizer.variables
                                                                    if "momentum" in v.path or "velocity" in v.path}

    spec = digits_spec(tmp_path / "runs", train={"epochs": 1, "optimizer": "adam", "lr": 0.003,
                                                 "precision": precision, "steps_per_execution": 4},
                       callbacks={"tensorboard": None, "checkpoint": None})
    cfg, _ = load_config(write_spec(tmp_path, spec))
    result = run_experiment(cfg, rd.RunDir.at(tmp_path / "run"), extra_callbacks=[Watch()])

    assert len(seen["losses"]) == 5  # 20 steps, 4 per execution
    assert all(math.isfinite(loss) for loss in seen["losses"])
    assert seen["losses"][-1] < seen["losses"][0]
    assert seen["optimizer"] == optimizer
    assert seen["compute"] == {precision.removeprefix("mixed_")}
    assert seen["variables"] == {"float32"}
    assert math.isfinite(result.metrics["test"]["loss"]) and result.metrics["test"]["accuracy"] > 0.5
    assert result.run_dir.read_json(rd.ENV)["speed"]["precision"] == precision
    keras.mixed_precision.set_global_policy("float32")  # as a user's fresh process loads it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Skipping variable loading for optimizer"
        loaded = keras.saving.load_model(result.run_dir.file(rd.MODEL))
    assert type(loaded.optimizer).__name__ == optimizer and int(loaded.optimizer.iterations.numpy()) == 20
