"""`layers:` a plain list of any keras.layers classes by name; the list is the whole model."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from runner.language.fields import Strict
from runner.models.registry import ARCHS
from runner.kernel.registry import did_you_mean


class LayerList(Strict):
    arch: Literal["layers"] = "layers"
    layers: list[dict[str, Optional[dict[str, Any]]]] = Field(
        description="[{Conv2D: {filters: 32, kernel_size: 3}}, {Flatten: {}}, {Dense: {units: 10}}]")

    @field_validator("layers", mode="before")
    @classmethod
    def _one_class_each(cls, value):
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    value[i] = {item: {}}
                elif not (isinstance(item, dict) and len(item) == 1):
                    raise PydanticCustomError(
                        "layer", "each layer is a one-key map {ClassName: {arguments}}; received {value!r}",
                        {"value": item, "subpath": i})
            if not value:
                raise PydanticCustomError("layer", "the list is empty; name at least the output layer", {})
        return value


def _layer_classes() -> dict:
    import keras

    return {n: getattr(keras.layers, n) for n in dir(keras.layers)
            if isinstance(getattr(keras.layers, n), type) and issubclass(getattr(keras.layers, n), keras.layers.Layer)}


def make_layers(cfg: LayerList) -> tuple[list, list]:
    """(layers, problems): each problem is (index, class name, message); nothing is executed from a spec."""
    import keras

    classes = _layer_classes()
    layers, problems = [], []
    for i, item in enumerate(cfg.layers):
        (name, kwargs), = item.items()
        if name not in classes:
            problems.append((i, name, f"unknown Keras layer{did_you_mean(name, classes)}"))
            continue
        if name == "Lambda":
            problems.append((i, name, "Lambda layers run arbitrary code and are not allowed in specs"))
            continue
        try:
            # Keras 3.15 resolves built-ins by module; without it every class name is "not located"
            layers.append(keras.layers.deserialize({"module": "keras.layers", "class_name": name,
                                                    "config": dict(kwargs or {})}))
        except Exception as e:  # Keras's own argument checks: the message is the user's answer
            problems.append((i, name, f"invalid arguments: {str(e).splitlines()[0]}"))
    return layers, problems


@ARCHS.register("layers", config=LayerList, outputs="any")
def build_layer_list(cfg: LayerList, x, out_units: int):
    from runner.kernel.errors import ConfigError

    layers, problems = make_layers(cfg)
    if problems:
        raise ConfigError([f"model.layers[{i}].{name}: {msg}" for i, name, msg in problems])
    for i, (layer, item) in enumerate(zip(layers, cfg.layers)):
        try:
            x = layer(x)
        except ValueError as e:  # Keras's check of the inputs it gets, such as Conv2D on table rows
            raise ConfigError(f"model.layers[{i}].{next(iter(item))}: cannot take inputs of shape "
                              f"{list(x.shape[1:])}: {str(e).splitlines()[0]}") from None
    return x
