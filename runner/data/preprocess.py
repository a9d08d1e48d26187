"""Preprocessing steps by YAML name: Keras layers placed at the start of the model, so exports take raw inputs."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from runner.language.fields import PositiveFloat, PositiveInt, Strict, step_model, step_name
from runner.kernel.errors import ConfigError
from runner.kernel.registry import Registry

PREPROCESS = Registry("preprocessing step")


class Rescale(Strict):
    scale: float = Field(1 / 255, description="multiply inputs by this")
    offset: float = Field(0.0, description="then add this")


class Normalize(Strict):
    mean: Optional[list[float]] = Field(None, description="per-channel mean; omit both to adapt on the training split")
    std: Optional[list[PositiveFloat]] = Field(None, description="per-channel standard deviation")

    @model_validator(mode="after")
    def _pair(self):
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither (then they are computed on the training split)")
        if self.mean is not None and len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}")
        return self


class Whiten(Strict):
    epsilon: PositiveFloat = Field(
        0.1, description="added to each eigenvalue of the training split's covariance before the inverse square "
                         "root: bounds the gain of near-constant directions (larger: closer to centering and one "
                         "uniform scale)")


class Resize(Strict):
    height: PositiveInt = Field(description="output height")
    width: PositiveInt = Field(description="output width")
    interpolation: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3"] = "bilinear"


class TextVectorize(Strict):
    max_tokens: PositiveInt = Field(20000, description="vocabulary size, padding (0) and out-of-vocabulary (1) included")
    sequence_length: PositiveInt = Field(200, description="token ids per example (padded or truncated)")
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation"] = Field(
        "lower_and_strip_punctuation", description="text clean-up before splitting on whitespace")


def _register(name, params, adapts=lambda p: False, numeric=True):
    """adapts(params): whether the step learns from the training split (then the run keeps that split in memory);
    numeric: whether it transforms numbers (text is strings, then token ids, which no such step may touch)."""
    def decorator(builder):
        PREPROCESS.register(name, config=step_model(name, params), adapts=adapts, numeric=numeric)(builder)
        return builder

    return decorator


@_register("rescale", Rescale)
def rescale(p: Rescale, info, sample=None):
    import keras

    return keras.layers.Rescaling(p.scale, p.offset, name="rescale")


@_register("normalize", Normalize, adapts=lambda p: p.mean is None)
def normalize(p: Normalize, info, sample=None):
    import keras
    import numpy as np

    if p.mean is not None:
        return keras.layers.Normalization(mean=p.mean, variance=np.square(p.std).tolist(), name="normalize")
    layer = keras.layers.Normalization(name="normalize")
    if sample is not None:  # None: `dlrun summary` builds shapes from metadata alone
        layer.adapt(sample)  # the training split, after the steps before this one
    return layer


@_register("whiten", Whiten, adapts=lambda p: True)
def whiten(p: Whiten, info, sample=None):
    """ZCA whitening of the last axis (a table's features, an image's channels), learnt on the training split:
    x -> (x - mean) @ W with W = V diag(1 / sqrt(eigenvalues + epsilon)) V^T of the covariance. A frozen Dense
    layer holds it, so model.keras and every export carry it with no custom layer."""
    import keras
    import numpy as np

    width = info.input_shape[-1]
    layer = keras.layers.Dense(width, trainable=False, name="whiten")
    if sample is None:  # shapes only (`dlrun summary`, `validate --deep` without data): the weights are not used
        return layer
    x = np.asarray(sample, dtype="float64").reshape(-1, width)
    mean = x.mean(axis=0)
    # np.cov of a single column is a 0-d array: the reshape keeps one channel a 1 x 1 matrix
    values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False).reshape(width, width))
    # rounding leaves the smallest eigenvalues of a singular covariance slightly negative
    kernel = (vectors / np.sqrt(np.clip(values, 0, None) + p.epsilon)) @ vectors.T
    layer.build((None, width))
    layer.set_weights([kernel.astype("float32"), (-mean @ kernel).astype("float32")])
    return layer


@_register("resize", Resize)
def resize(p: Resize, info, sample=None):
    import keras

    return keras.layers.Resizing(p.height, p.width, interpolation=p.interpolation, name="resize")


@_register("text_vectorize", TextVectorize, adapts=lambda p: True, numeric=False)
def text_vectorize(p: TextVectorize, info, sample=None):
    import keras

    layer = keras.layers.TextVectorization(max_tokens=p.max_tokens, output_sequence_length=p.sequence_length,
                                           standardize=p.standardize, name="text_vectorize")
    if sample is not None:  # the vocabulary comes from the training split only, and is saved in the model
        layer.adapt(sample)
    return layer


def text_problems(steps):
    """(index, name, rule) of each numeric step of a text model's `preprocess` list."""
    for i, step in enumerate(steps):
        name = step_name(step)
        if PREPROCESS.get(name).numeric:
            yield i, name, ("transforms numeric features; this data is text (strings, and token ids after "
                            "text_vectorize). Remove it")


def build_preprocess(steps, info, train_x=None) -> list:
    """Keras layers for the `preprocess` list; `normalize` without statistics adapts on `train_x`."""
    if info.input_dtype == "string" and (problems := list(text_problems(steps))):
        # validate refuses these where the spec tells text (text_folder); a TFDS text set tells only here
        raise ConfigError([f"data.preprocess[{i}].{name}: {rule}" for i, name, rule in problems])
    layers, sample = [], train_x
    for step in steps:
        name = step_name(step)
        layer = PREPROCESS.get(name).builder(getattr(step, name), info, sample)
        if sample is not None:
            import keras

            sample = keras.ops.convert_to_numpy(layer(sample))
        layers.append(layer)
    return layers
