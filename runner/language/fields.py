"""Pydantic building blocks shared by every config model: strictness and tagged unions."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from runner.kernel.registry import Registry


class Strict(BaseModel):
    """Unknown keys are errors, no type coercion, no NaN/inf, frozen once built."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              validate_default=True, defer_build=True)


PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
UnitFloat = Annotated[float, Field(ge=0, le=1)]


def low_high(values: list) -> list:
    """A range written [low, high]: two values, low < high."""
    if len(values) != 2 or not values[0] < values[1]:
        raise ValueError(f"must be [low, high] with low < high; received {values}")
    return values


class Shorthand:
    """Annotated metadata: the JSON Schema also accepts these short forms (which a before-validator expands),
    so editors don't flag `optimizer: adam` or a bare step name."""

    def __init__(self, *alternatives: dict):
        self.alternatives = list(alternatives)

    def __get_pydantic_json_schema__(self, core_schema, handler):
        return {"anyOf": [*self.alternatives, handler(core_schema)]}


def tagged_union(registry: Registry, key: str | None, kind: str, bare_name: bool = False, also: dict | None = None,
                 more: tuple = ()):
    """A union of the registry's config models picked by `key` (or, if None, by a one-key map's key).

    bare_name: a plain string names the variant (`optimizer: adam`); also: one more JSON Schema short form;
    more: (tag, config model, predicate) variants outside the registry, picked when predicate(value) holds.
    """
    # the variant whose tag has a default (`schedule: constant`) is picked when the key is left out
    defaults = [e.name for e in registry.entries()
                if key and key in e.config.model_fields and not e.config.model_fields[key].is_required()]

    def pick(value: Any):
        for tag, model, holds in more:
            if isinstance(value, model) or holds(value):
                return tag
        if isinstance(value, dict):
            if key is None:
                return next(iter(value)) if len(value) == 1 else None
            return value.get(key, defaults[0] if defaults else None)
        if isinstance(value, BaseModel):
            return getattr(value, key) if key else next(iter(type(value).model_fields))
        return None

    variants = tuple(Annotated[e.config, Tag(e.name)] for e in registry.entries()) + tuple(
        Annotated[model, Tag(tag)] for tag, model, _ in more)
    metadata = [Discriminator(pick, custom_error_type="unknown_name", custom_error_message=f"unknown {kind}",
                              custom_error_context={"kind": kind, "key": key or "", "registry": registry.kind})]
    alternatives = ([{"type": "string", "enum": registry.names()}] if bare_name else []) + ([also] if also else [])
    if alternatives:
        metadata.append(Shorthand(*alternatives))
    return Annotated[(Union[variants], *metadata)]  # noqa: UP007 (a runtime tuple of variants)


def _step_shorthand(value):
    """`random_flip` and `{random_flip: null}` both mean `{random_flip: {}}`."""
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, dict) and len(value) == 1:
        (name, params), = value.items()
        return {name: {} if params is None else params}
    return value


def step_list(registry: Registry, kind: str):
    """A YAML list of `{name: {params}}` steps, each validated by its registered params model."""
    return list[Annotated[tagged_union(registry, None, kind, bare_name=True), BeforeValidator(_step_shorthand)]]


def step_model(name: str, params: type[Strict]) -> type[Strict]:
    """The one-key model `{name: params}` that a step list holds."""
    from pydantic import create_model

    return create_model(f"Step_{name}", __base__=Strict, **{name: (params, Field(default_factory=params))})


def step_name(step: Strict) -> str:
    """The registry name of a step built by `step_model`: its one key."""
    return next(iter(type(step).model_fields))
