"""Raw spec -> frozen Config, with every problem reported at once as `file:line: dotted.path: rule`."""

from __future__ import annotations

import re
import typing
from typing import Annotated, Union

from pydantic import BaseModel, Tag, ValidationError

from runner.language.load import Loaded
from runner.language.yaml12 import dotted, line_order
from runner.kernel.errors import ConfigError
from runner.kernel.registry import did_you_mean, unknown_name_message

_TYPE_NAMES = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
               "string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
               "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "null",
               "int_from_float": "an integer"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


MAX_REPORTED = 50  # beyond this many problems the rest are counted, not formatted (keeps a bad 1 MiB file fast)
_PLACEHOLDER = re.compile(r"\{(\w+)!r\}")


def _received(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(tp):
    """(type without Annotated, its metadata)."""
    meta = []
    while typing.get_origin(tp) is Annotated:
        meta += list(tp.__metadata__)
        tp = tp.__origin__
    return tp, meta


def _members(tp):
    tp, _ = _unwrap(tp)
    if typing.get_origin(tp) is Union:
        return [m for m in typing.get_args(tp) if m is not type(None)]
    return [tp]


def _tag(tp):
    _, meta = _unwrap(tp)
    return next((m.tag for m in meta if isinstance(m, Tag)), None)


def _step(tp, elem):
    members = _members(tp)
    for m in members:
        if _tag(m) == elem:
            return m
    if len(members) != 1:
        return None
    tp, _ = _unwrap(members[0])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(elem)
        return field.annotation if field else None
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list and isinstance(elem, int):
        return args[0]
    if typing.get_origin(tp) is dict and isinstance(elem, str):
        return args[1]
    return None


def _fields_at(root, loc) -> list[str]:
    tp = root
    for elem in loc:
        tp = _step(tp, elem)
        if tp is None:
            return []
    members = [_unwrap(m)[0] for m in _members(tp)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    return list(models[0].model_fields) if len(models) == 1 else []


def _variants_with(root, loc) -> list[str]:
    """The other variants of the union at loc[:-2] that do take the key loc[-1] (sgd takes no beta_1)."""
    tp = root
    for elem in loc[:-2]:
        tp = _step(tp, elem)
        if tp is None:
            return []
    found = []
    for member in _members(tp):
        model = _unwrap(member)[0]
        if _tag(member) and isinstance(model, type) and issubclass(model, BaseModel) and loc[-1] in model.model_fields:
            found.append(_tag(member))
    return found


def _raw_path(raw, loc) -> tuple:
    """Pydantic's loc holds union tags beside keys; keep the elements that exist in the YAML."""
    path, node = [], raw
    for elem in loc:
        if isinstance(node, dict) and elem in node:
            node = node[elem]
        elif isinstance(node, list) and isinstance(elem, int) and elem < len(node):
            node = node[elem]
        elif isinstance(node, dict) and not isinstance(elem, int) and elem not in node and _is_last_key(loc, elem):
            pass  # a missing or unknown key: kept below
        else:
            continue
        path.append(elem)
    return tuple(path)


def _is_last_key(loc, elem) -> bool:
    return loc[-1] == elem


def _rule(err, root, raw) -> tuple[tuple, str]:
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    path = _raw_path(raw, loc)
    value = err.get("input")
    if kind == "extra_forbidden":
        fields = _fields_at(root, loc[:-1])
        # a key other variants take is named as theirs before any look-alike key (keras_app's `activation`)
        others = _variants_with(root, loc)
        if others:
            return path, f"'{loc[-2]}' takes no {dotted(loc[-1:])}; it applies to {', '.join(others)} only"
        hint = did_you_mean(loc[-1], fields)
        return path, "unknown key" + (hint or (f"; valid keys: {', '.join(fields)}" if fields else ""))
    if kind == "missing":
        return path, "required key is missing"
    if kind == "unknown_name":
        key = ctx.get("key")
        from runner.spec import schema

        registry = schema.REGISTRIES[ctx["registry"]]
        if key:
            tag = value.get(key) if isinstance(value, dict) else None
            if tag is None:
                return path + (key,), f"required key is missing: name the {ctx['kind']} ({', '.join(registry.names())})"
            return path + (key,), unknown_name_message(ctx["kind"], tag, registry.names())
        if isinstance(value, dict) and len(value) == 1:
            tag = next(iter(value))
            return path + (tag,), unknown_name_message(ctx["kind"], tag, registry.names())
        return path, f"each {ctx['kind']} is a one-key map {{name: {{arguments}}}}; received {_received(value)}"
    if "subpath" in ctx:
        path = path + (ctx["subpath"],)
    if kind.startswith("unknown_"):
        return path, err["msg"]  # names the value and the closest valid one already
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        expected = f"'{choices[0]}'" if len(choices) == 1 else f"one of {', '.join(choices)}"
        return path, f"must be {expected}; received {_received(value)}{hint}"
    if kind in _TYPE_NAMES:
        return path, f"must be {_TYPE_NAMES[kind]}; received {_received(value)}"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return path, f"must be {op} {ctx[key]}; received {_received(value)}"
    if kind == "finite_number":
        return path, f"must be a finite number; received {_received(value)}"
    if kind == "string_pattern_mismatch":
        return path, f"must match {ctx['pattern']}; received {_received(value)}"
    if kind == "value_error":
        return path, str(ctx.get("error", err["msg"]))
    if kind in ("too_long", "too_short"):
        return path, f"{err['msg'][0].lower()}{err['msg'][1:]}; received {_received(value)}"
    # pydantic's message templates fill `{name}` only; custom errors that wrote `{name!r}` are filled here
    message = _PLACEHOLDER.sub(lambda m: repr(ctx[m[1]]) if m[1] in ctx else m[0], err["msg"])
    return path, message if "received" in message else f"{message}; received {_received(value)}"


def format_errors(error: ValidationError, loaded: Loaded, root) -> list[str]:
    """One line per problem, in file order; after MAX_REPORTED lines the rest are counted."""
    by_path: dict[tuple, list[str]] = {}
    errors = error.errors(include_url=False)
    # a value the loader already refused (`!!int abc`, now null) needs no second line
    refused = [p for p, _ in loaded.problems if p is not None]
    shown = 0
    for err in errors:
        if shown >= MAX_REPORTED:
            break
        path, rule = _rule(err, root, loaded.data)
        if any(path[:len(p)] == p for p in refused):
            continue
        by_path.setdefault(path, [])
        if rule not in by_path[path]:
            by_path[path].append(rule)
            shown += 1
    lines = []
    for path, rules in by_path.items():
        if len(rules) > 1 and all(r.startswith("must be ") for r in rules):
            # a value checked against several types (a union): one line naming them all
            kinds = [r[len("must be "):].split("; received")[0] for r in rules]
            received = rules[0].split("; received ", 1)[-1]
            rules = [f"must be {' or '.join(kinds)}; received {received}"]
        for rule in rules:
            lines.append(f"{loaded.locate(path)}: {dotted(path) or '<top>'}: {rule}")
    lines += [line for _, line in loaded.problems]
    lines.sort(key=line_order)
    if shown >= MAX_REPORTED and len(errors) > shown:
        lines.append(f"... and up to {len(errors) - shown} more problems; fix these first")
    return lines


def check(loaded: Loaded):
    """(Config, the cross-field problems as (path, rule), every problem line so far); structure, types, ranges and
    registry names raise ConfigError at once."""
    from runner.spec.checks import cross_checks
    from runner.spec.schema import Config

    try:
        cfg = Config.model_validate(loaded.data)
    except ValidationError as e:
        raise ConfigError(format_errors(e, loaded, Config)) from None
    own = list(cross_checks(cfg))
    problems = [line for _, line in loaded.problems]
    problems += [f"{loaded.locate(path)}: {dotted(path)}: {rule}" for path, rule in own]
    problems.sort(key=line_order)
    return cfg, own, problems


def validate(loaded: Loaded):
    """Structure, types, ranges and registry names, then the cross-field rules (the sweep's searched values are
    checked above this, in trials.py)."""
    cfg, _, problems = check(loaded)
    if problems:
        raise ConfigError(problems)
    return cfg
