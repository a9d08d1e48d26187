"""The `whiten` preprocessing step on real data: what it learns from the training split, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets

from helpers import run_inline, write_spec, write_text_folder
from runner.data.info import DataInfo
from runner.data.preprocess import Whiten, whiten


def _standardized_wine():
    x = datasets.load_wine().data
    return (x - x.mean(0)) / x.std(0)


def _out_covariance(layer, x):
    y = np.asarray(layer(x.astype("float32")), dtype="float64").reshape(-1, x.shape[-1])
    return y.mean(0), np.cov(y, rowvar=False)


def test_whiten_decorrelates_wine_to_unit_covariance_with_a_tiny_epsilon():
    x = _standardized_wine()
    layer = whiten(Whiten(epsilon=1e-6), DataInfo(input_shape=(13,)), x)
    mean, cov = _out_covariance(layer, x)
    assert np.abs(mean).max() < 1e-5
    assert np.abs(cov - np.eye(13)).max() < 1e-3
    assert layer.name == "whiten" and not layer.trainable and layer.count_params() == 13 * 13 + 13


def test_whiten_shrinks_each_direction_by_its_eigenvalue_over_eigenvalue_plus_epsilon():
    x = _standardized_wine()
    values = np.linalg.eigvalsh(np.cov(x, rowvar=False))
    _, cov = _out_covariance(whiten(Whiten(), DataInfo(input_shape=(13,)), x), x)
    # the output's covariance has the input's eigenvectors, and eigenvalue l / (l + 0.1) in place of l
    assert np.allclose(np.linalg.eigvalsh(cov), np.sort(values / (values + 0.1)), rtol=1e-4)


def test_whiten_of_images_acts_on_the_channels_over_every_pixel():
    digits = datasets.load_digits().images  # 1797 x 8 x 8, values 0..16: three correlated channels from each
    x = np.stack([digits, digits ** 2 / 16, 16 - digits + digits[:, ::-1]], axis=-1)
    layer = whiten(Whiten(epsilon=1e-6), DataInfo(input_shape=(8, 8, 3)), x)
    mean, cov = _out_covariance(layer, x)
    assert layer(x[:2].astype("float32")).shape == (2, 8, 8, 3)
    assert np.abs(mean).max() < 1e-4 and np.abs(cov - np.eye(3)).max() < 1e-3


@pytest.mark.parametrize("steps, index, name", [(["whiten"], 0, "whiten"),
                                                ([{"text_vectorize": {}}, "normalize"], 1, "normalize")])
def test_a_numeric_step_on_text_is_refused_with_its_key_path(tmp_path, steps, index, name):
    spec = {"name": "reviews", "data": {"source": "text_folder", "path": str(write_text_folder(tmp_path / "reviews")),
                                        "preprocess": steps},
            "model": {"arch": "mlp", "units": [8]}, "train": {"epochs": 1}, "output": {"dir": str(tmp_path / "runs")}}
    done = run_inline("train", write_spec(tmp_path, spec))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"data.preprocess[{index}].{name}: transforms numeric features; this data is text (strings, and token ids "
        "after text_vectorize). Remove it")
