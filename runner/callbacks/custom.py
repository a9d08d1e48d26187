"""custom: the user's own Keras callbacks, each named by its import path `module:Class`, imported at run start."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import AfterValidator, ConfigDict, Field, RootModel
from pydantic_core import PydanticCustomError

from runner.callbacks.registry import CALLBACKS

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
IMPORT_PATH = re.compile(rf"{_DOTTED}:{_DOTTED}")


def _import_path(value: str) -> str:
    # the form only: `dlrun validate` must not import the user's module (it may import TensorFlow)
    if not IMPORT_PATH.fullmatch(value):
        raise PydanticCustomError(
            "import_path", "{message}",
            {"message": f"must be an import path module:Class, like mypackage.callbacks:LogToSlack; "
                        f"received {value!r}"})
    return value


ImportPath = Annotated[str, AfterValidator(_import_path)]


class Custom(RootModel[list[ImportPath]]):
    """`callbacks.custom: ["module:Class", ...]`: each class is built with no arguments."""

    ENABLED: ClassVar[bool] = False
    CONFIGURES: ClassVar[str] = "a list of Keras callback classes as 'module:Class' (built with no arguments)"
    model_config = ConfigDict(strict=True, frozen=True)
    root: list[ImportPath] = Field(
        description="Keras callback classes as 'module:Class' (the module on PYTHONPATH), built with no arguments")


def load_class(path: str):
    """The callback class at `path` ('module:Class'), or ConfigError saying why it cannot be used."""
    import importlib

    import keras

    from runner.kernel.errors import ConfigError

    module_name, _, qualname = path.partition(":")
    where = f"callbacks.custom: {path!r}"
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"{where}: cannot import module {module_name!r} ({e}); put it on PYTHONPATH or fix "
                          "the name") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: module {module_name!r} has no {qualname!r}; fix the class name") from None
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, keras.callbacks.Callback)):
        raise ConfigError(f"{where}: {qualname} is not a keras.callbacks.Callback subclass; received "
                          f"{type(obj).__name__} {obj!r}")
    return obj


def _built(path: str):
    """The callback at `path`, built with no arguments, or ConfigError when its class needs some."""
    from runner.kernel.errors import ConfigError

    cls = load_class(path)
    try:
        return cls()
    except TypeError as e:  # such as keras.callbacks.CSVLogger, whose filename has no default
        raise ConfigError(f"callbacks.custom: {path!r}: cannot be built with no arguments ({e}); dlrun builds "
                          "custom callbacks without any: subclass it with defaults and name the subclass") from None


@CALLBACKS.register("custom", config=Custom)
def build(cfg: Custom, ctx):
    return [_built(path) for path in cfg.root]
