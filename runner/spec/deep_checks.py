"""What only Keras can judge (layer classes and arguments, activation and initializer names), located in the spec."""

from __future__ import annotations

from runner.kernel.errors import ConfigError


def deep_check(cfg, loaded) -> None:
    import keras

    from runner.models.layer_list import make_layers
    from runner.kernel.registry import did_you_mean

    problems = []
    model = cfg.model
    if model.arch == "layers":
        _, found = make_layers(model)
        for i, name, message in found:
            path = ("model", "layers", i, name)
            problems.append(f"{loaded.locate(path)}: model.layers[{i}].{name}: {message}")
    for key, getter, module in (("activation", keras.activations.get, keras.activations),
                                ("kernel_initializer", keras.initializers.get, keras.initializers)):
        value = getattr(model, key, None)
        if value is None:
            continue
        try:
            getter(value)
        except (ValueError, TypeError):
            names = [n for n in dir(module) if not n.startswith("_") and n.islower()]
            problems.append(f"{loaded.locate(('model', key))}: model.{key}: unknown Keras name "
                            f"{value!r}{did_you_mean(value, names)}")
    if problems:
        raise ConfigError(problems)
