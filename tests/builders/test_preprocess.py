"""Preprocessing steps on real data: what `whiten` learns from the training split, exactly, and numeric steps
refused on text."""

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


ON_TEXT = "transforms numeric features; this data is text (strings, and token ids after text_vectorize). Remove it"


@pytest.mark.parametrize("steps, line, at", [("    - whiten\n", 6, "[0].whiten"),
                                              ("    - text_vectorize\n    - normalize\n", 7, "[1].normalize")])
def test_validate_refuses_a_numeric_step_on_a_text_folder_with_file_line_and_key_path(tmp_path, steps, line, at):
    write_text_folder(tmp_path / "reviews")
    write_spec(tmp_path, f"name: reviews\ndata:\n  source: text_folder\n  path: reviews\n  preprocess:\n{steps}"
                         "model: {arch: mlp, units: [8]}\n")
    done = run_inline("validate", "spec.yaml", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"spec.yaml:{line}: data.preprocess{at}: {ON_TEXT}\n"


def test_a_run_refuses_numeric_steps_on_strings_the_spec_could_not_tell_were_text():
    """A TFDS text set is known as text only once its metadata is read: the model's build refuses it then."""
    from runner.data.preprocess import PREPROCESS, build_preprocess
    from runner.kernel.errors import ConfigError

    steps = [PREPROCESS.get(name).config.model_validate({name: {}}) for name in ("text_vectorize", "rescale", "whiten")]
    with pytest.raises(ConfigError) as e:
        build_preprocess(steps, DataInfo(input_shape=(), input_dtype="string"))
    assert e.value.problems == [f"data.preprocess[1].rescale: {ON_TEXT}", f"data.preprocess[2].whiten: {ON_TEXT}"]
