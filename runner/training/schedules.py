"""Learning-rate schedules by YAML name, counted in epochs and turned into Keras step schedules."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from runner.config.base import NonNegFloat, PositiveFloat, PositiveInt, Strict, UnitFloat
from runner.registry import Registry

SCHEDULES = Registry("schedule")


class ScheduleBase(Strict):
    base: PositiveFloat = Field(1e-3, description="peak learning rate")
    warmup_epochs: NonNegFloat = Field(0.0, description="linear warm-up from 0 to `base`, in epochs")
    warmup_steps: Optional[int] = Field(None, ge=0, description="warm-up in steps (overrides warmup_epochs)")

    def warmup(self, steps_per_epoch: int) -> int:
        return self.warmup_steps if self.warmup_steps is not None else round(self.warmup_epochs * steps_per_epoch)


class Constant(ScheduleBase):
    schedule: Literal["constant"] = "constant"


class Cosine(ScheduleBase):
    schedule: Literal["cosine"]
    alpha: UnitFloat = Field(0.0, description="final learning rate as a fraction of `base`")


class Exponential(ScheduleBase):
    schedule: Literal["exponential"]
    decay_rate: PositiveFloat = Field(0.96, description="factor applied every `decay_epochs`")
    decay_epochs: PositiveFloat = Field(1.0, description="epochs per decay_rate factor")
    staircase: bool = Field(False, description="decay in discrete steps")


class Step(ScheduleBase):
    schedule: Literal["step"]
    boundaries: list[PositiveInt] = Field(description="epochs at which the rate is multiplied by `factor`")
    factor: PositiveFloat = Field(0.1, description="multiplier at each boundary")

    @model_validator(mode="after")
    def _increasing(self):
        if self.boundaries != sorted(set(self.boundaries)):
            raise ValueError(f"boundaries must be strictly increasing epochs; received {self.boundaries}")
        return self


def _with_warmup(schedule, cfg, steps_per_epoch: int):
    warm = cfg.warmup(steps_per_epoch)
    if not warm:
        return schedule
    from runner.training.warmup import Warmup

    return Warmup(schedule, warmup_steps=warm)


@SCHEDULES.register("constant", config=Constant)
def build_constant(cfg, steps_per_epoch: int, epochs: int):
    return _with_warmup(cfg.base, cfg, steps_per_epoch)


@SCHEDULES.register("cosine", config=Cosine)
def build_cosine(cfg, steps_per_epoch: int, epochs: int):
    import keras

    warm = cfg.warmup(steps_per_epoch)
    total = steps_per_epoch * epochs
    # Keras's CosineDecay has the linear warm-up built in: 0 -> warmup_target, then cosine.
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warm else cfg.base, decay_steps=max(1, total - warm), alpha=cfg.alpha,
        warmup_target=cfg.base if warm else None, warmup_steps=warm)


@SCHEDULES.register("exponential", config=Exponential)
def build_exponential(cfg, steps_per_epoch: int, epochs: int):
    import keras

    decay = keras.optimizers.schedules.ExponentialDecay(
        cfg.base, decay_steps=max(1, round(cfg.decay_epochs * steps_per_epoch)),
        decay_rate=cfg.decay_rate, staircase=cfg.staircase)
    return _with_warmup(decay, cfg, steps_per_epoch)


@SCHEDULES.register("step", config=Step)
def build_step(cfg, steps_per_epoch: int, epochs: int):
    import keras

    values = [cfg.base * cfg.factor**i for i in range(len(cfg.boundaries) + 1)]
    decay = keras.optimizers.schedules.PiecewiseConstantDecay(
        [b * steps_per_epoch for b in cfg.boundaries], values)
    return _with_warmup(decay, cfg, steps_per_epoch)


def build_schedule(cfg, steps_per_epoch: int, epochs: int):
    return SCHEDULES.get(cfg.schedule).builder(cfg, steps_per_epoch, epochs)
