"""Augmentations by YAML name, backed by Keras preprocessing layers and keyed by (seed, epoch, step)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from runner.language.fields import NonNegInt, PositiveFloat, PositiveInt, Strict, UnitFloat, step_model, step_name
from runner.kernel.keras_pins import require
from runner.kernel.registry import Registry

AUGMENTATIONS = Registry("augmentation")
BATCH_AUGMENTATIONS = Registry("batch augmentation")

Factor = Union[UnitFloat, list[float]]
FillMode = Literal["reflect", "wrap", "constant", "nearest"]
Interpolation = Literal["bilinear", "nearest"]
_INTERPOLATION = {"default": "bilinear", "description": "resampling of the image (masks are always resampled "
                                                        "nearest); nearest keeps every pixel a pixel of the source"}


class Flip(Strict):
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"


class Rotation(Strict):
    factor: Factor = Field(0.1, description="fraction of a full turn, or [low, high]")
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = Field(**_INTERPOLATION)


class Translation(Strict):
    height_factor: Factor = Field(0.1, description="fraction of the height, or [low, high]")
    width_factor: Factor = Field(0.1, description="fraction of the width, or [low, high]")
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = Field(**_INTERPOLATION)


class Zoom(Strict):
    height_factor: Factor = Field(0.1, description="zoom range as a fraction, or [low, high]")
    width_factor: Optional[Factor] = Field(None, description="defaults to height_factor (aspect kept)")
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = Field(**_INTERPOLATION)


class Crop(Strict):
    padding: NonNegInt = Field(4, description="zero padding on each side before the random crop back to size")


class Amount(Strict):
    factor: Factor = Field(0.2, description="strength, or [low, high]")


class ColorJitter(Strict):
    brightness: Optional[Factor] = 0.2
    contrast: Optional[Factor] = 0.2
    saturation: Optional[Factor] = 0.2
    hue: Optional[Factor] = 0.05


class Erasing(Strict):
    factor: UnitFloat = Field(0.5, description="probability of erasing a patch")
    scale: list[float] = Field([0.02, 0.33], description="patch area range as a fraction of the image")
    fill_value: Optional[float] = Field(None, description="fill value (random noise when null)")


class Grayscale(Strict):
    factor: UnitFloat = Field(0.2, description="probability of turning an image gray")


class RandAugmentParams(Strict):
    num_ops: PositiveInt = Field(2, description="operations per image")
    factor: Factor = Field(0.5, description="magnitude")


class Mix(Strict):
    alpha: PositiveFloat = Field(0.2, description="Beta(alpha, alpha) mixing distribution")


class CutMixParams(Strict):
    alpha: PositiveFloat = Field(1.0, description="Beta(alpha, alpha) distribution of the kept area")


def _register(registry, name, params, rgb_only: bool = False):
    """Register a step with the fact `rgb_only`: it works on 3-channel images only (colour operations)."""
    def decorator(builder):
        registry.register(name, config=step_model(name, params), rgb_only=rgb_only)(builder)
        return builder

    return decorator


def _range(info):
    return tuple(info.value_range) if info.value_range else (0, 255)


def _keras():
    import keras

    return keras.layers


@_register(AUGMENTATIONS, "random_flip", Flip)
def _flip(p, info):
    return [_keras().RandomFlip(p.mode)]


@_register(AUGMENTATIONS, "random_rotation", Rotation)
def _rotation(p, info):
    return [_keras().RandomRotation(p.factor, fill_mode=p.fill_mode, interpolation=p.interpolation)]


@_register(AUGMENTATIONS, "random_translation", Translation)
def _translation(p, info):
    return [_keras().RandomTranslation(p.height_factor, p.width_factor, fill_mode=p.fill_mode,
                                        interpolation=p.interpolation)]


@_register(AUGMENTATIONS, "random_zoom", Zoom)
def _zoom(p, info):
    return [_keras().RandomZoom(p.height_factor, p.width_factor, fill_mode=p.fill_mode,
                                 interpolation=p.interpolation)]


@_register(AUGMENTATIONS, "random_crop", Crop)
def _crop(p, info):
    height, width = info.input_shape[:2]
    return [_keras().ZeroPadding2D(p.padding), _keras().RandomCrop(height, width)]


@_register(AUGMENTATIONS, "random_contrast", Amount)
def _contrast(p, info):
    return [_keras().RandomContrast(p.factor, value_range=_range(info))]


@_register(AUGMENTATIONS, "random_brightness", Amount)
def _brightness(p, info):
    return [_keras().RandomBrightness(p.factor, value_range=_range(info))]


@_register(AUGMENTATIONS, "random_saturation", Amount, rgb_only=True)
def _saturation(p, info):
    return [_keras().RandomSaturation(p.factor, value_range=_range(info))]


@_register(AUGMENTATIONS, "random_hue", Amount, rgb_only=True)
def _hue(p, info):
    return [_keras().RandomHue(p.factor, value_range=_range(info))]


@_register(AUGMENTATIONS, "color_jitter", ColorJitter, rgb_only=True)
def _jitter(p, info):
    return [_keras().RandomColorJitter(value_range=_range(info), brightness_factor=p.brightness,
                                       contrast_factor=p.contrast, saturation_factor=p.saturation,
                                       hue_factor=p.hue)]


@_register(AUGMENTATIONS, "random_erasing", Erasing)
def _erasing(p, info):
    return [_keras().RandomErasing(factor=p.factor, scale=tuple(p.scale), fill_value=p.fill_value,
                                   value_range=_range(info))]


@_register(AUGMENTATIONS, "random_grayscale", Grayscale, rgb_only=True)
def _grayscale(p, info):
    return [_keras().RandomGrayscale(factor=p.factor)]


@_register(AUGMENTATIONS, "rand_augment", RandAugmentParams, rgb_only=True)
def _rand_augment(p, info):
    return [_keras().RandAugment(value_range=_range(info), num_ops=p.num_ops, factor=p.factor)]


@_register(BATCH_AUGMENTATIONS, "mixup", Mix)
def _mixup(p, info):
    return [_keras().MixUp(alpha=p.alpha)]


@_register(BATCH_AUGMENTATIONS, "cutmix", CutMixParams)
def _cutmix(p, info):
    layer = _exact_cutmix()()
    layer.factor = (p.alpha, p.alpha)  # Keras draws alpha from U(factor); equal ends make it exactly alpha (> 1 too)
    return [layer]


def _exact_cutmix():
    import keras

    class ExactCutMix(keras.layers.CutMix):
        """Keras's CutMix with label weights from the pixels actually pasted, not the fractional box area."""

        def _generate_batch_mask(self, images_shape, box_corners):
            masks, _ = super()._generate_batch_mask(images_shape, box_corners)
            pasted = self.backend.numpy.mean(self.backend.cast(masks, self.compute_dtype), axis=(1, 2, 3))
            return masks, 1.0 - pasted

    return ExactCutMix


def build_layers(registry, steps, info) -> list:
    from runner.kernel.errors import ConfigError

    layers = []
    for i, step in enumerate(steps):
        name = step_name(step)
        channels = info.input_shape[-1] if len(info.input_shape) == 3 else None
        if registry.get(name).rgb_only and channels != 3:
            raise ConfigError(f"data.augment[{i}].{name}: needs RGB images (3 channels); "
                              f"the data has input shape {list(info.input_shape)}")
        layers += registry.get(name).builder(getattr(step, name), info)
    return layers


def _tensor_seed(seed):
    """A Keras SeedGenerator whose every draw is a distinct stateless seed derived from one tensor."""
    import keras

    class TensorSeed(keras.random.SeedGenerator):
        def __init__(self, seed):  # no state variable: randomness comes from (seed, epoch, step) alone
            self.seed_tensor, self.draws = seed, 0

        def next(self, ordered=True):
            import tensorflow as tf

            self.draws += 1  # counted at trace time: each random op of the layer gets its own stream
            return tf.stack([self.seed_tensor[0], self.seed_tensor[1] * 1009 + self.draws])

    return TensorSeed(seed)


def _seeded(layer, seed):
    """Make `layer` (and its sub-layers) draw from `seed` instead of its stateful generator."""
    require("stateless_augment")
    generator = _tensor_seed(seed)
    for sub in layer._flatten_layers(include_self=True):
        sub._get_seed_generator = lambda backend=None, g=generator: g
    return layer


def augment_fn(cfg_data, info):
    """(images, labels, seed[2]) -> augmented batch; None when there is nothing to do."""
    from runner.kernel.errors import ConfigError
    from runner.tasks import TASKS

    per_example = build_layers(AUGMENTATIONS, cfg_data.augment, info)
    per_batch = build_layers(BATCH_AUGMENTATIONS, cfg_data.batch_augment, info)
    if not per_example and not per_batch:
        return None
    if len(info.input_shape) != 3:  # a numpy file of feature rows: what validate cannot see in the spec
        key = "data.augment" if per_example else "data.batch_augment"
        raise ConfigError(f"{key}: image augmentations need images (height x width x channels); this data's "
                          f"examples have shape {list(info.input_shape)}. Remove {key}")
    if TASKS.get(info.task).per_pixel:
        if per_batch:
            raise ConfigError(f"data.batch_augment: mixup and cutmix mix class labels per example; a {info.task} "
                              "task has a label per pixel. Remove data.batch_augment")
        return _with_masks(per_example)

    def apply(x, y, seed):
        import tensorflow as tf

        for i, layer in enumerate(per_example):
            x = _seeded(layer, seed + tf.constant([0, i + 1], seed.dtype))(x, training=True)
        for i, layer in enumerate(per_batch):
            out = _seeded(layer, seed + tf.constant([0, 100 + i], seed.dtype))(
                {"images": x, "labels": y}, training=True)
            x, y = out["images"], out["labels"]
        return x, y

    return apply


def _with_masks(layers):
    """Augment images and their masks together: Keras's image preprocessing layers move `segmentation_masks`
    with the image in geometric transforms (nearest-neighbour) and leave them alone in colour transforms; other
    layers (random_crop's zero padding) apply to both."""
    import keras

    def apply(x, y, seed):
        import tensorflow as tf

        sparse = y.shape.rank == 3  # (N, H, W) class ids; one-hot and binary masks carry a channel axis
        masks = y[..., None] if sparse else y
        for i, layer in enumerate(layers):
            if isinstance(layer, keras.layers.Layer) and hasattr(layer, "transform_segmentation_masks"):
                out = _seeded(layer, seed + tf.constant([0, i + 1], seed.dtype))(
                    {"images": x, "segmentation_masks": masks}, training=True)
                x, masks = out["images"], tf.cast(out["segmentation_masks"], y.dtype)
            else:
                x, masks = layer(x), tf.cast(layer(tf.cast(masks, x.dtype)), y.dtype)
        return x, masks[..., 0] if sparse else masks

    return apply
