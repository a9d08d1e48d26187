"""One small registry per kind, keyed by the YAML name, with did-you-mean on a miss."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


def did_you_mean(name: str, choices) -> str:
    """`; did you mean 'x'?` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_name_message(kind: str, name, choices) -> str:
    if not isinstance(name, str):
        return f"must be one of the {kind} names ({', '.join(sorted(map(str, choices)))}); received {name!r}"
    hint = did_you_mean(name, choices)
    if hint:
        return f"unknown {kind} {str(name)!r}{hint}"
    return f"unknown {kind} {str(name)!r}; valid: {', '.join(sorted(map(str, choices)))}"


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    config: Any = None  # the pydantic model of this entry's YAML block, if it has one
    describe: Callable[..., Any] | None = None  # cheap metadata without building (a source's DataInfo)
    facts: Mapping[str, Any] = field(default_factory=dict)  # what other code derives its lists from

    def __getattr__(self, name: str):
        """A fact by attribute: `METRICS.get("auc").direction`."""
        try:
            return self.__dict__["facts"][name]
        except KeyError:
            raise AttributeError(f"{self.name!r} has no fact {name!r}") from None


class Registry:
    """Names -> lazy builders; builder modules import TensorFlow inside functions only."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, config=None, describe=None, **facts):
        def decorator(builder):
            if name in self._entries:
                raise ValueError(f"duplicate {self.kind} '{name}'")
            self._entries[name] = Entry(name, builder, config, describe, facts)
            return builder

        return decorator

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(unknown_name_message(self.kind, name, self._entries)) from None

    def __contains__(self, name) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def where(self, **facts) -> list[str]:
        """Names of the entries whose facts equal (or, for a collection fact, contain) every given value."""
        def holds(entry, key, value):
            fact = entry.facts.get(key)
            return value in fact if isinstance(fact, (set, frozenset, tuple, list)) else fact == value

        return [e.name for e in self._entries.values() if all(holds(e, k, v) for k, v in facts.items())]
