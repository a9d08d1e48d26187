"""Models: one builder per arch, registered under its YAML name; build_model adds the Input and preprocessing."""

from runner.models.registry import ANY_SHAPE, ARCHS, TAKES_IMAGES
from runner.models import (  # noqa: F401  (register)
    cnn, keras_app, layer_list, mlp, mobilenet, resnet, resnet9, rnn, transformer, unet)


def output_units(info, mode: str) -> int:
    return info.num_classes if mode in ("sparse", "one_hot") else 1


def input_problem(cfg_model, shape: tuple, dtype: str) -> str | None:
    """Why the arch cannot take inputs of this shape and dtype (after preprocessing), by its fact `inputs`."""
    kind = getattr(ARCHS.get(cfg_model.arch), "inputs", None)
    received = f"received inputs of shape {list(shape)} ({dtype})"
    fix = f"For images use {', '.join(ARCHS.where(inputs='images'))}" if len(shape) == 3 else f"Use {ANY_SHAPE}"
    arch = cfg_model.arch
    if kind == "images" and len(shape) != 3:
        return f"model.arch: {arch} {TAKES_IMAGES}; {received}. {fix}"
    if kind == "sequences" and cfg_model.vocab_size is not None and len(shape) != 1:
        return (f"model.arch: {arch} takes token ids [time] (such as data.preprocess's text_vectorize gives), or "
                f"with model.vocab_size: null feature sequences [time, features]; {received}. {fix}")
    if kind == "sequences" and cfg_model.vocab_size is None and len(shape) != 2:
        return (f"model.arch: {arch} with model.vocab_size: null takes feature sequences [time, features]; "
                f"{received}. {fix}")
    return None


def build_model(cfg_model, info, preprocess_layers, mode: str):
    """Input (shape from the data) -> preprocessing -> the arch. Call inside strategy.scope()."""
    import keras

    inputs = keras.Input(shape=info.input_shape, dtype=info.input_dtype, name="inputs")  # "string" for text
    x = inputs
    for layer in preprocess_layers:
        x = layer(x)
    problem = input_problem(cfg_model, tuple(x.shape[1:]), str(x.dtype))
    if problem:
        from runner.kernel.errors import ConfigError

        raise ConfigError(problem)
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


__all__ = ["ANY_SHAPE", "ARCHS", "TAKES_IMAGES", "build_model", "outputs_logits", "output_units"]
