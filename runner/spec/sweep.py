"""The `sweep:` block: searched keys and their domains, method, budget, objective, pruning and heartbeats."""

from __future__ import annotations

import builtins
import json
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError, to_jsonable_python

from runner.language.fields import NonNegInt, PositiveFloat, PositiveInt, Strict, low_high

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_0-9][A-Za-z0-9_]*)*$")
_RESERVED = ("name", "sweep")  # trial directories and the study are keyed by the name; a sweep can't sweep itself


def _bounds(values: list, positive: bool = False) -> list:
    low_high(values)
    if positive and values[0] <= 0:
        raise ValueError(f"a log scale needs low > 0; received {values}")
    return values


class Choice(Strict):
    choice: list[Any] = Field(min_length=1, description="the values to try, any YAML values")


class Uniform(Strict):
    uniform: list[float] = Field(description="[low, high]: a float drawn uniformly")

    @field_validator("uniform")
    @classmethod
    def _check(cls, v):
        return _bounds(v)


class LogUniform(Strict):
    loguniform: list[float] = Field(description="[low, high]: a float drawn uniformly on a log scale, low > 0")

    @field_validator("loguniform")
    @classmethod
    def _check(cls, v):
        return _bounds(v, positive=True)


class IntRange(Strict):
    int: list[builtins.int] = Field(description="[low, high]: an integer in low..high, both included")

    @field_validator("int")
    @classmethod
    def _check(cls, v):
        return _bounds(v)


DOMAINS = {"choice": Choice, "uniform": Uniform, "loguniform": LogUniform, "int": IntRange}


def _domain_kind(value):
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


Domain = Annotated[
    Union[tuple(Annotated[model, Tag(kind)] for kind, model in DOMAINS.items())],  # noqa: UP007
    Discriminator(_domain_kind, custom_error_type="sweep_domain", custom_error_message=(
        "a domain is one of {choice: [a, b, ...]}, {uniform: [low, high]}, {loguniform: [low, high]}, "
        "{int: [low, high]}"))]


class Median(Strict):
    name: Literal["median"]
    startup_trials: NonNegInt = Field(2, description="finished trials before any trial is pruned")
    warmup_epochs: NonNegInt = Field(0, description="epochs of each trial never pruned")


class Hyperband(Strict):
    name: Literal["hyperband"]
    min_epochs: PositiveInt = Field(1, description="epochs every trial gets before it can be stopped")
    reduction_factor: int = Field(3, ge=2, description="1/reduction_factor of trials go on at each rung")


class Sweep(Strict):
    method: Literal["grid", "random", "tpe"] = Field("tpe", description="grid: every combination (choice and int "
                                                                        "domains); random; tpe: Bayesian (Optuna)")
    trials: PositiveInt = Field(20, description="budget: finished trials (complete or pruned) in the whole study, "
                                                "over every worker and restart")
    timeout: Optional[PositiveFloat] = Field(None, description="seconds after which this worker starts no new trial")
    metric: str = Field("val_loss", description="objective: an epoch log (loss, val_accuracy, ...), best epoch of "
                                                "the trial; test_<metric> reads the test split; with data.kfold the "
                                                "mean over folds")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for accuracy-like metrics, else min")
    params: dict[str, Domain] = Field(min_length=1, description="dotted key of the spec -> its domain")
    pruner: Optional[Annotated[Union[Median, Hyperband], Field(discriminator="name")]] = Field(
        None, description="stop bad trials early from their epoch-end values: {name: median} or {name: hyperband}")
    heartbeat_interval: PositiveInt = Field(10, description="seconds between a running trial's heartbeats")
    grace_period: PositiveInt = Field(30, description="seconds without a heartbeat after which a running trial "
                                                      "counts as dead (failed, then re-run)")
    retries: NonNegInt = Field(2, description="re-runs of an interrupted trial's parameters before giving up on them")

    @model_validator(mode="before")
    @classmethod
    def _pruner_shorthand(cls, data):
        """`pruner: median` is short for `pruner: {name: median}`."""
        if isinstance(data, dict) and isinstance(data.get("pruner"), str):
            data = {**data, "pruner": {"name": data["pruner"]}}
        return data

    @model_validator(mode="after")
    def _rules(self):
        problems = []
        if self.grace_period <= self.heartbeat_interval:
            problems.append((("grace_period",), f"must be longer than heartbeat_interval ({self.heartbeat_interval} "
                                                f"s); received {self.grace_period}", self.grace_period))
        if self.method == "grid":
            problems += [(("params", key), f"method grid needs a finite set of values: use a choice or int domain, "
                                           f"or method random or tpe; received {d.model_dump()}", d.model_dump())
                         for key, d in self.params.items() if isinstance(d, (Uniform, LogUniform))]
        if self.pruner is not None and self.metric.startswith("test_"):
            problems.append((("pruner",), f"pruning needs an epoch-end metric, and {self.metric} is measured once "
                                          f"after training; use a val_ metric or pruner: null; received "
                                          f"{self.pruner.name}", self.pruner.name))
        raise_problems(problems)
        return self

    def direction(self) -> str:
        """'maximize' or 'minimize', the Optuna name of `mode`."""
        from runner.callbacks.registry import monitor_mode

        mode = self.mode if self.mode != "auto" else monitor_mode(self.metric.removeprefix("test_"))
        return "maximize" if mode == "max" else "minimize"

    def grid(self) -> dict:
        """The search space of method grid: key -> the list of its values (encoded like trial params)."""
        return {key: [encode(v) for v in (d.choice if isinstance(d, Choice) else range(d.int[0], d.int[1] + 1))]
                for key, d in self.params.items()}

    def outline(self) -> dict:
        """What defines the study: the fields whose change makes old trials incomparable."""
        return to_jsonable_python(self.model_dump(include={"method", "metric", "params", "pruner"}))


def encode(value):
    """Optuna categorical choices are scalars: lists and maps travel as JSON text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def decode(domain, value):
    if isinstance(domain, Choice) and isinstance(value, str) and value not in domain.choice:
        return json.loads(value)
    return value


def sample_values(domain) -> list:
    """The values that `dlrun validate` tries for a domain: every choice, or both ends of a range."""
    if isinstance(domain, Choice):
        return list(domain.choice)
    return list(next(iter(domain.model_dump().values())))


def override(key: str, value) -> str:
    """A trial parameter as a `--set` argument; JSON is YAML, so the value keeps its type."""
    return f"{key}={json.dumps(value)}"


def trial_params(sweep: Sweep, params: dict) -> dict:
    """An Optuna trial's params as spec values (choices that are lists or maps come back from JSON)."""
    return {key: decode(sweep.params[key], value) if key in sweep.params else value for key, value in params.items()}


def raise_problems(problems: list, prefix: tuple = ()) -> None:
    """One ValidationError holding a line per (location inside the sweep block, message, value received)."""
    if problems:
        raise ValidationError.from_exception_data("Sweep", [
            InitErrorDetails(type=PydanticCustomError("sweep_rule", "{message}", {"message": message}),
                             loc=prefix + loc, input=value) for loc, message, value in problems])
