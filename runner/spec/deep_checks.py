"""What only Keras can judge (layer classes and arguments, activation and initializer names), located in the spec."""

from __future__ import annotations

from runner.kernel.errors import ConfigError


def deep_check(cfg, loaded) -> None:
    import keras

    from runner.models.layer_list import make_layers
    from runner.kernel.registry import did_you_mean

    problems = []
    # a gan's model holds two networks, each an arch of its own
    networks = [(k, getattr(cfg.model, k)) for k in ("generator", "discriminator")] if hasattr(cfg.model, "generator") else [
        (None, cfg.model)]
    for sub, model in networks:
        at = ("model",) if sub is None else ("model", sub)
        where = ".".join(at)
        if model.arch == "layers":
            _, found = make_layers(model)
            for i, name, message in found:
                path = (*at, "layers", i, name)
                problems.append(f"{loaded.locate(path)}: {where}.layers[{i}].{name}: {message}")
        for key, getter, module in (("activation", keras.activations.get, keras.activations),
                                    ("kernel_initializer", keras.initializers.get, keras.initializers)):
            value = getattr(model, key, None)
            if value is None:
                continue
            try:
                getter(value)
            except (ValueError, TypeError):
                names = [n for n in dir(module) if not n.startswith("_") and n.islower()]
                problems.append(f"{loaded.locate((*at, key))}: {where}.{key}: unknown Keras name "
                                f"{value!r}{did_you_mean(value, names)}")
    if problems:
        raise ConfigError(problems)
