"""What only Keras can judge (layer classes and arguments, activation and initializer names), located in the spec."""

from __future__ import annotations

from runner.kernel.errors import ConfigError
from runner.language.yaml12 import dotted, line_order


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
    if cfg.compress is not None and cfg.compress.prune is not None:
        problems += sorted((f"{loaded.locate(path)}: {dotted(path)}: {rule}" for path, rule in _compress(cfg)),
                           key=line_order)
    if problems:
        raise ConfigError(problems)


def _compress(cfg):
    """compress.prune's rules on the spec's model, built from the data's shapes like `dlrun summary`."""
    import keras

    from runner.compress.checks import model_problems
    from runner.compress.prune import prunable_layers
    from runner.data.build import build_data
    from runner.data.preprocess import build_preprocess
    from runner.data.sources import SOURCES
    from runner.models import build_model
    from runner.training.losses import label_mode

    describe = SOURCES.get(cfg.data.source).describe
    if describe is not None:  # metadata only: no download, no decoding
        info, train_x = describe(cfg.data), None
    else:
        data = build_data(cfg.data, cfg.seed)
        info, train_x = data.info, data.train_x
    mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
    keras.backend.clear_session()  # layer names as a run's own model gets them (prepare clears the session too)
    model = build_model(cfg.model, info, build_preprocess(cfg.data.preprocess, info, train_x), mode)
    layers = [(layer.name, tuple(layer.kernel.shape)) for layer in prunable_layers(model)]
    keras.backend.clear_session()  # the run that may follow builds the same model: same automatic layer names
    return list(model_problems(cfg.compress.prune, layers))
