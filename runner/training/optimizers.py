"""Keras optimizers by YAML name; the arguments each accepts mirror its Keras constructor."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, create_model

from runner.language.fields import PositiveFloat, PositiveInt, Strict, UnitFloat
from runner.kernel.registry import Registry

OPTIMIZERS = Registry("optimizer")

_F = Optional[float]
_B = Optional[bool]


class OptimizerCommon(Strict):
    """Arguments every Keras optimizer takes; unset ones keep the Keras default."""

    weight_decay: Optional[float] = Field(None, ge=0, description="decoupled weight decay")
    clipnorm: Optional[PositiveFloat] = Field(None, description="clip each gradient's norm")
    clipvalue: Optional[PositiveFloat] = Field(None, description="clip each gradient value")
    global_clipnorm: Optional[PositiveFloat] = Field(
        None, description="clip the global norm (applied after the cross-replica all-reduce)")
    use_ema: bool = Field(False, description="keep an exponential moving average of the weights")
    ema_momentum: UnitFloat = Field(0.99, description="EMA momentum when use_ema is true")
    gradient_accumulation_steps: Optional[PositiveInt] = Field(
        None, description="apply the update every N steps")


# name -> {argument: type}; defaults stay Keras's own (unset arguments are not passed).
_ARGUMENTS = {
    "sgd": {"momentum": _F, "nesterov": _B},
    "adam": {"beta_1": _F, "beta_2": _F, "epsilon": _F, "amsgrad": _B},
    "adamw": {"beta_1": _F, "beta_2": _F, "epsilon": _F, "amsgrad": _B},
    "rmsprop": {"rho": _F, "momentum": _F, "epsilon": _F, "centered": _B},
    "adagrad": {"initial_accumulator_value": _F, "epsilon": _F},
    "adadelta": {"rho": _F, "epsilon": _F},
    "adamax": {"beta_1": _F, "beta_2": _F, "epsilon": _F},
    "nadam": {"beta_1": _F, "beta_2": _F, "epsilon": _F},
    "lion": {"beta_1": _F, "beta_2": _F},
    "lamb": {"beta_1": _F, "beta_2": _F, "epsilon": _F},
    "ftrl": {"learning_rate_power": _F, "initial_accumulator_value": _F, "l1_regularization_strength": _F,
             "l2_regularization_strength": _F, "l2_shrinkage_regularization_strength": _F, "beta": _F},
    "adafactor": {"beta_2_decay": _F, "epsilon_1": _F, "epsilon_2": _F, "clip_threshold": _F,
                  "relative_step": _B},
}


def build_optimizer(cfg, learning_rate):
    """A Keras optimizer through `keras.optimizers.get`, with the schedule as its learning rate."""
    import keras

    kwargs = cfg.model_dump(exclude={"name"}, exclude_none=True)
    if not kwargs.get("use_ema"):
        kwargs.pop("ema_momentum", None)
    cls = type(keras.optimizers.get(cfg.name))
    return cls(learning_rate=learning_rate, **kwargs)


for _name, _args in _ARGUMENTS.items():
    _model = create_model(
        f"Optimizer_{_name}", __base__=OptimizerCommon,
        name=(Literal[_name], Field(description="optimizer name (keras.optimizers)")),
        **{arg: (typ, Field(None, description=f"Keras `{arg}`; unset keeps Keras's default"))
           for arg, typ in _args.items()})
    OPTIMIZERS.register(_name, config=_model)(build_optimizer)
