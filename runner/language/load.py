"""Spec files -> a raw dict with the location of every key: file checks, `extends` and `--set` overrides."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from runner.language.yaml12 import dotted, line_order, parse_yaml
from runner.kernel.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_EXTENDS = 16


@dataclass
class Loaded:
    """A raw spec and where each key path came from ('file:line' or '--set k=v')."""

    data: dict
    where: dict = field(default_factory=dict)
    origin: str = "<spec>"
    problems: list = field(default_factory=list)  # (key path or None, line) the loader kept for validation

    def locate(self, path) -> str:
        path = tuple(path)
        while path:
            if path in self.where:
                return self.where[path]
            path = path[:-1]
        return self.origin


def display_path(path: Path) -> str:
    """The path relative to the working directory, as every message shows it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def _read_text(path: Path, chain: list[str]) -> str:
    shown = display_path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        via = f" (extends chain: {' -> '.join(chain + [shown])})" if chain else ""
        raise ConfigError(f"{shown}: file not found{via}") from None
    except OSError as e:
        raise ConfigError(f"{shown}: cannot read: {e.strerror}") from None
    if path.is_dir():
        raise ConfigError(f"{shown}: is a directory, not a YAML file")
    if size > MAX_BYTES:
        raise ConfigError(f"{shown}: file is {size} bytes; specs are limited to {MAX_BYTES} bytes")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded: a pipe or a device (/dev/zero) reports no size
    except OSError as e:
        raise ConfigError(f"{shown}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{shown}: more than {MAX_BYTES} bytes; specs are limited to {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{shown}: not UTF-8 text (invalid byte at offset {e.start}); "
                          "save the file as UTF-8") from None


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_file(path: Path, chain: list[str], kept: list) -> tuple[dict, dict]:
    shown = display_path(path)
    text = _read_text(path, chain)
    where: dict = {}
    data = parse_yaml(text, shown, where, kept=kept)
    if data is None and not kept:
        raise ConfigError(f"{shown}: the file is empty; a spec is a YAML mapping (name:, data:, model: ...)")
    if not isinstance(data, dict):
        raise ConfigError(sorted([line for _, line in kept] + [
            f"{shown}:1: the top level must be a mapping of keys (name:, data:, model: ...); "
            f"received {'null' if data is None else 'a ' + type(data).__name__}"], key=line_order))
    parents = data.pop("extends", None)
    if parents is None:
        return data, where
    at = where.pop(("extends",))
    if isinstance(parents, str):
        parents = [parents]
    if not (isinstance(parents, list) and all(isinstance(p, str) for p in parents)):
        raise ConfigError(f"{at}: extends: must be a path or a list of paths; received {parents!r}")
    merged, merged_where = {}, {}
    here = chain + [shown]
    if len(here) > MAX_EXTENDS:
        raise ConfigError(f"{at}: extends: more than {MAX_EXTENDS} files deep "
                          f"(chain: {' -> '.join(here[:3])} -> ... -> {here[-1]})")
    for parent in parents:
        target = (path.parent / parent).resolve()
        if str(target) in [str(Path(c).resolve()) for c in here]:
            raise ConfigError(f"{at}: extends: cycle: {' -> '.join(here + [display_path(target)])}")
        if not target.exists():
            raise ConfigError(f"{at}: extends: file not found: {parent} "
                              f"(chain: {' -> '.join(here + [display_path(target)])})")
        base, base_where = _load_file(target, here, kept)
        merged = _deep_merge(merged, base)
        merged_where.update(base_where)
    merged_where.update(where)
    return _deep_merge(merged, data), merged_where


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_0-9][A-Za-z0-9_]*)*$")


def apply_set(loaded: Loaded, override: str) -> None:
    """Apply one `--set dotted.key=value`; the value is YAML, and a list or map replaces the subtree."""
    arg = f"--set {override}"
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(f"{arg}: expected KEY=VALUE with a dotted key, such as train.epochs=5")
    path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
    value = parse_yaml(text, arg, prefix=path, located=arg) if text.strip() else None
    set_value(loaded, path, value, arg)


def set_value(loaded: Loaded, path: tuple, value, origin: str) -> None:
    """Put `value` (plain Python data) at the key `path`, creating maps on the way; problems in it point at `origin`."""
    node, created = loaded.data, []
    for i, part in enumerate(path[:-1]):
        child = node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) \
            else node.get(part) if isinstance(node, dict) else None
        if child is None:
            if not isinstance(node, dict):
                raise ConfigError(f"{origin}: {dotted(path[:i + 1])}: cannot set a key inside a "
                                  f"{type(node).__name__}")
            child = node[part] = {}
            created.append(path[:i + 1])
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"{origin}: {dotted(path[:i + 1])}: is {child!r}, not a mapping; "
                              f"set {dotted(path[:i + 1])} itself instead")
        node = child
    last = path[-1]
    if isinstance(node, list):
        if not (isinstance(last, int) and last < len(node)):
            key = ".".join(map(str, path))  # as the user typed it after --set
            raise ConfigError(f"{origin}: {key}: index out of range (the list has {len(node)} items)")
    node[last] = value
    for p in [p for p in loaded.where if p[:len(path)] == path]:
        del loaded.where[p]
    loaded.where[path] = origin
    # a map this override created has no line of its own: problems inside it point at the argument
    for p in created:
        loaded.where[p] = origin


def load_spec(path: str | os.PathLike, overrides=()) -> Loaded:
    """Read a spec file, resolve `extends`, apply `--set` overrides: defaults come from the schema."""
    p = Path(path)
    kept: list = []
    data, where = _load_file(p, [], kept)
    loaded = Loaded(data, where, display_path(p), kept)
    for override in overrides:
        apply_set(loaded, override)
    return loaded
