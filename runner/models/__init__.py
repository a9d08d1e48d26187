"""Models: one builder per arch, registered under its YAML name; build_model adds the Input and preprocessing."""

from runner.models.registry import ARCHS
from runner.models import (  # noqa: F401  (register)
    cnn, keras_app, layer_list, mlp, mobilenet, resnet, resnet9, rnn, transformer, unet)


def output_units(info, mode: str) -> int:
    return info.num_classes if mode in ("sparse", "one_hot") else 1


def build_model(cfg_model, info, preprocess_layers, mode: str):
    """Input (shape from the data) -> preprocessing -> the arch. Call inside strategy.scope()."""
    import keras

    inputs = keras.Input(shape=info.input_shape, dtype=info.input_dtype, name="inputs")  # "string" for text
    x = inputs
    for layer in preprocess_layers:
        x = layer(x)
    outputs = ARCHS.get(cfg_model.arch).builder(cfg_model, x, output_units(info, mode))
    return keras.Model(inputs, outputs, name=cfg_model.arch)


def outputs_logits(model) -> bool:
    """The loss's from_logits follows the last activation: softmax/sigmoid give probabilities."""
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return False
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return name not in ("softmax", "sigmoid")


__all__ = ["ARCHS", "build_model", "outputs_logits", "output_units"]
