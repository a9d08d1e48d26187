"""Learning-rate schedules by YAML name, counted in epochs and turned into Keras step schedules."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from runner.language.fields import NonNegFloat, PositiveFloat, PositiveInt, Strict, UnitFloat
from runner.kernel.registry import Registry

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


class OneCycle(ScheduleBase):
    """Smith & Topin 2018: a rise from base/div_factor to base, then a cosine fall to base/final_div_factor."""

    schedule: Literal["one_cycle"]
    pct_start: float = Field(0.3, gt=0, lt=1, description="fraction of training spent rising to `base`")
    div_factor: PositiveFloat = Field(25.0, description="the rise starts at base / div_factor")
    final_div_factor: PositiveFloat = Field(1e4, description="the fall ends at base / final_div_factor")

    @model_validator(mode="after")
    def _no_extra_warmup(self):
        if self.warmup_epochs or self.warmup_steps:
            raise ValueError("one_cycle has its own rise (pct_start); remove warmup_epochs / warmup_steps")
        return self


class CosineRestarts(ScheduleBase):
    """Loshchilov & Hutter 2017 (SGDR): cosine cycles restarting at `base`, each t_mul times longer."""

    schedule: Literal["cosine_restarts"]
    first_cycle_epochs: PositiveFloat = Field(10.0, description="length of the first cycle, in epochs")
    t_mul: PositiveFloat = Field(2.0, description="each cycle is t_mul times longer than the previous")
    m_mul: PositiveFloat = Field(1.0, description="each restart's peak is m_mul times the previous")
    alpha: UnitFloat = Field(0.0, description="minimum learning rate as a fraction of the cycle's peak")


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
    # PiecewiseConstantDecay keeps values[i] up to and including boundary i; the epoch's first step
    # (step b * steps_per_epoch, counted from 0) must already have the new rate
    decay = keras.optimizers.schedules.PiecewiseConstantDecay(
        [b * steps_per_epoch - 1 for b in cfg.boundaries], values)
    return _with_warmup(decay, cfg, steps_per_epoch)


@SCHEDULES.register("one_cycle", config=OneCycle)
def build_one_cycle(cfg, steps_per_epoch: int, epochs: int):
    import keras

    total = steps_per_epoch * epochs
    rise = max(1, round(cfg.pct_start * total))
    # CosineDecay's warm-up is a linear rise from initial_learning_rate: exactly one cycle's first phase
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.base / cfg.div_factor, decay_steps=max(1, total - rise),
        alpha=1.0 / cfg.final_div_factor, warmup_target=cfg.base, warmup_steps=rise)


@SCHEDULES.register("cosine_restarts", config=CosineRestarts)
def build_cosine_restarts(cfg, steps_per_epoch: int, epochs: int):
    import keras

    restarts = keras.optimizers.schedules.CosineDecayRestarts(
        cfg.base, first_decay_steps=max(1, round(cfg.first_cycle_epochs * steps_per_epoch)),
        t_mul=cfg.t_mul, m_mul=cfg.m_mul, alpha=cfg.alpha)
    return _with_warmup(restarts, cfg, steps_per_epoch)


def build_schedule(cfg, steps_per_epoch: int, epochs: int):
    return SCHEDULES.get(cfg.schedule).builder(cfg, steps_per_epoch, epochs)
