"""`dlrun summary`: the model a spec builds, its layer table and parameter counts, without training."""

from __future__ import annotations

import io


def build_for_summary(cfg):
    """(model, info): the spec's model built from the data's shapes (no training, no augmentation)."""
    import keras

    from runner.data.build import build_data
    from runner.data.preprocess import build_preprocess
    from runner.models import build_model
    from runner.training.losses import label_mode

    from runner.data.sources import SOURCES

    describe = SOURCES.get(cfg.data.source).describe
    if describe is not None:  # metadata only: no download, no decoding; adapting layers stay unadapted
        info, train_x = describe(cfg.data), None
    else:
        data = build_data(cfg.data, cfg.seed)
        info, train_x = data.info, data.train_x
    mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
    keras.utils.set_random_seed(cfg.seed)
    if cfg.task == "gan":  # task gan: both networks, side by side in one functional model
        from runner.gan.model import build_discriminator, build_generator

        generator = build_generator(cfg.model, tuple(info.input_shape), info.num_classes)
        discriminator = build_discriminator(cfg.model, tuple(info.input_shape), info.num_classes)
        inputs = [*generator.inputs, *discriminator.inputs]
        return keras.Model(inputs, [generator(generator.input), discriminator(discriminator.input)],
                           name="gan"), info
    model = build_model(cfg.model, info, build_preprocess(cfg.data.preprocess, info, train_x), mode)
    return model, info


def parameter_counts(model) -> dict:
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(sum(np.prod(w.shape) for w in model.weights))
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def model_summary(cfg) -> str:
    model, info = build_for_summary(cfg)
    buf = io.StringIO()
    model.summary(print_fn=lambda line, **_: buf.write(line + "\n"), line_length=100)
    counts = parameter_counts(model)
    return (f"{buf.getvalue()}input shape: {list(info.input_shape)}  task: {info.task}  "
            f"classes: {info.num_classes}\n"
            f"total parameters: {counts['total']:,}\ntrainable parameters: {counts['trainable']:,} "
            f"({counts['trainable'] / 1e6:.2f}M)")
