"""keras_app: any keras.applications model by name, ImageNet weights from the Keras cache, freeze for transfer learning."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from runner.kernel.registry import unknown_name_message
from runner.language.fields import NonNegInt
from runner.models.registry import ArchCommon, head, register_arch

# The model constructors of keras.applications in the pinned Keras (3.15.1), written out so that `dlrun validate`
# checks a name without importing Keras; a test compares it with the installed keras.applications.
APPLICATIONS = (
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge", "DenseNet121",
    "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3",
    "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B0",
    "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L", "EfficientNetV2M",
    "EfficientNetV2S", "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large",
    "MobileNetV3Small", "NASNetLarge", "NASNetMobile", "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2",
    "ResNet50", "ResNet50V2", "VGG16", "VGG19", "Xception")


class KerasApp(ArchCommon):
    arch: Literal["keras_app"]
    name: str = Field(description="a keras.applications model: ResNet50, MobileNetV2, EfficientNetB0, ...")
    weights: Optional[Literal["imagenet"]] = Field(
        None, description="null: random init; imagenet: pretrained (from ~/.keras/models, downloaded if online)")
    freeze: Union[bool, NonNegInt] = Field(
        False, description="true: freeze the whole base (transfer learning); N: freeze all but its last N layers")
    pooling: Literal["avg", "max"] = Field("avg", description="global pooling of the base's last feature map")
    options: dict[str, Union[float, int, bool, str]] = Field(
        {}, description="more constructor arguments of that model, e.g. {alpha: 0.35} for MobileNetV2")

    @field_validator("name")
    @classmethod
    def _application(cls, name):
        if name not in APPLICATIONS:
            raise PydanticCustomError("unknown_application", "{message}", {
                "message": unknown_name_message("keras.applications model", name, APPLICATIONS)})
        return name


def _load_base(cfg: KerasApp, shape):
    import socket

    from keras.src.backend.config import keras_home

    from runner.kernel.errors import ConfigError, DataError

    import keras

    build = getattr(keras.applications, cfg.name)
    previous = socket.getdefaulttimeout()
    # keras.utils.get_file downloads without a timeout; offline must fail fast, never hang
    socket.setdefaulttimeout(10)
    try:
        return build(include_top=False, weights=cfg.weights, input_shape=shape, pooling=cfg.pooling, **cfg.options)
    except TypeError as e:  # an argument this model's constructor does not take
        raise ConfigError(f"model.options: {cfg.name} {str(e).splitlines()[0]}") from None
    except ValueError as e:  # Keras's own checks on the input shape, options and weights of this model
        raise ConfigError(f"model.name: {cfg.name} cannot be built for inputs of shape {list(shape)}: "
                          f"{str(e).splitlines()[0]}") from None
    except Exception as e:  # keras.utils.get_file raises a bare Exception when the download fails
        if cfg.weights is None or not (isinstance(e, OSError) or "URL fetch failure" in str(e)):
            raise
        cache = keras_home()
        raise DataError(f"model.weights: the imagenet weights of {cfg.name} are not in the Keras cache "
                        f"({cache}/models) and could not be downloaded (offline?). Run once on a machine "
                        f"with internet and copy {cache}/models here, or set model.weights: null") from None
    finally:
        socket.setdefaulttimeout(previous)


@register_arch("keras_app", KerasApp, inputs="images")
def build_keras_app(cfg: KerasApp, x, out_units: int):
    import keras

    base = _load_base(cfg, tuple(x.shape[1:]))
    if cfg.freeze is True:
        base.trainable = False
    elif cfg.freeze:
        for layer in base.layers[:-cfg.freeze]:
            layer.trainable = False
    # a frozen base runs in inference mode so its batch-norm statistics stay the pretrained ones
    x = base(x, training=False) if cfg.freeze is True else base(x)
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout)(x)
    return head(x, cfg, out_units)
