"""Every recipe in experiments/ validates and builds its model (tfds shapes from metadata, offline)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import ROOT

RECIPES = sorted(p.name for p in (ROOT / "experiments").glob("*.yaml"))

# trainable parameters of each recipe's model, with what makes them
TRAINABLE = {
    "breast_cancer.yaml": 30 + 1,  # mlp [] (logistic regression), one logit
    "cifar10.yaml": 269_722,  # ResNet-20, option A (He et al. 2016: 0.27M)
    "cifar10_fast.yaml": 6_573_130,  # ResNet-9 (Page 2018)
    "diabetes.yaml": 10 * 128 + 128 + 128 + 1,  # dense 128, one output (rescaled to the targets' units)
    "digits.yaml": 53_002,  # the foundation's cnn
    "digits_distill.yaml": 64 * 32 + 32 + 32 * 10 + 10,  # the student: mlp [32]
    "digits_distill_teacher.yaml": 53_002,  # the same cnn as digits.yaml
    "fashion_mnist.yaml": 269_722 - 2 * 9 * 16,  # pre-activation ResNet-20, a one-channel stem
    # embedding 20000 x 64; 2 blocks of (2 layer norms, 4-head attention, 64-128-64 MLP); final norm; 2 logits
    "imdb.yaml": 20000 * 64 + 2 * (2 * 128 + 4 * (64 * 64 + 64) + 64 * 128 + 128 + 128 * 64 + 64) + 128 + 130,
    # embedding 20000 x 128; 2 directions x 4 gates x (128 + 64 + 1) x 64; dense 64; 2 logits
    "imdb_lstm.yaml": 20000 * 128 + 2 * 4 * (128 + 64 + 1) * 64 + 128 * 64 + 64 + 64 * 2 + 2,
    "iris.yaml": 4 * 3 + 3,  # mlp [] (softmax regression)
    "mnist.yaml": 468_138,  # 2 x 2 convs with batch norm, dense 128
    "wine.yaml": 13 * 3 + 3,  # mlp [] (softmax regression) on whitened inputs
}


def test_the_model_zoo_recipes_are_there():
    assert set(TRAINABLE) <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_validates_and_builds_its_model(recipe):
    import keras

    from runner.spec import load_config
    from runner.models import output_units
    from runner.tools.summary import build_for_summary, parameter_counts
    from runner.training.losses import label_mode

    cfg, _ = load_config(str(ROOT / "experiments" / recipe))
    if cfg.task != "supervised":
        pytest.skip(f"a {cfg.task} recipe builds two networks: tests/builders/test_{cfg.task}.py trains it")
    model, info = build_for_summary(cfg)
    counts = parameter_counts(model)
    if recipe in TRAINABLE:  # a recipe added later is still validated and built
        assert counts["trainable"] == TRAINABLE[recipe]
    # a forward pass on mocked inputs of the data's shape and type (text: a vocabulary adapted on mocked reviews)
    shape = (2, *info.input_shape)
    if info.input_dtype == "string":
        x = np.array(["a fine film", "a dull film"]).reshape(shape)
        for layer in model.layers:
            if isinstance(layer, keras.layers.TextVectorization):
                layer.adapt(x.reshape(-1))
    else:
        x = np.zeros(shape, info.input_dtype)
    out = keras.ops.convert_to_numpy(model(x))
    from runner.tasks import TASKS

    mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
    pixels = tuple(info.input_shape[:2]) if TASKS.get(info.task).per_pixel else ()  # segmentation: per pixel
    assert out.shape == (2, *pixels, output_units(info, mode)) and np.isfinite(out).all()
