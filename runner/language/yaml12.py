"""YAML 1.2 text -> plain values with the line of every key: a hardened reader and its matching writer."""

from __future__ import annotations

import re

import yaml
from yaml.events import (AliasEvent, CollectionEndEvent, CollectionStartEvent, DocumentStartEvent, MappingStartEvent,
                         NodeEvent)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from runner.kernel.errors import ConfigError

MAX_DEPTH = 64
MAX_NODES = 10_000
_STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_DROPPED = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp", "value", "merge")}

# libyaml's parser keeps a 1 MiB file well under a second; the pure-Python one takes seconds.
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeBase):
    """SafeLoader with YAML 1.2 core-schema numbers (`1e-3` is a float, `010` is ten, no `1:30` or `1_000`)
    and only true/false as booleans."""


_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                      |[-+]?\.(?:inf|Inf|INF)
                      |\.(?:nan|NaN|NAN))$""", re.X)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


def _int(text: str) -> int:
    return int(text, 0) if text.startswith(("0o", "0x")) else int(text, 10)


def _float(text: str) -> float:
    return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))


def _strict(pattern, convert):
    """A constructor that takes only the core schema's spellings, also under an explicit tag (`!!bool yes` fails)."""

    def construct(loader, node):
        text = loader.construct_scalar(node)
        if not pattern.match(text):
            raise ValueError(f"{text!r} is not a {node.tag.rsplit(':', 1)[-1]}")
        return convert(text)

    return construct


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _first, _convert in (
        ("bool", _BOOL, "tTfF", lambda text: text.lower() == "true"),
        ("int", _INT, "-+0123456789", _int),
        ("float", _FLOAT, "-+0123456789.", _float),
        ("null", _NULL, None, lambda text: None)):
    if _first:
        _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", _pattern, list(_first))
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _strict(_pattern, _convert))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that _Loader would read as something else (`'1e3'`, `'0o17'`), so output reloads as is."""

    def ignore_aliases(self, data) -> bool:
        return True  # the loader refuses anchors and aliases: a value used twice is written out twice


_Dumper.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def dump_yaml(data) -> str:
    """YAML text that parse_yaml reads back to `data`."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def dotted(path) -> str:
    """('data', 'augment', 0, 'mode') -> 'data.augment[0].mode'; other keys quoted: "model['my key']"."""
    out = ""
    for part in path:
        if isinstance(part, int) or not _PLAIN_KEY.match(str(part)):
            out += f"[{part!r}]"  # repr keeps a key with a space or a newline on one line
        else:
            out += f".{part}" if out else str(part)
    return out


def line_order(line: str):
    """Sort key: problems of one file in line order; `--set` arguments after the file."""
    where = line.partition(": ")[0]
    file, _, number = where.rpartition(":")
    argument = where.startswith("--set")
    return (argument, file, int(number)) if number.isdigit() else (argument, where, 0)


class _KeyPaths:
    """The key path of each node of a YAML event stream, so problems found before any tree exists say where."""

    def __init__(self, prefix=()):
        self.prefix = tuple(prefix)
        self.frames: list[list] = []  # [is_map, path, key, expecting_a_key, index]

    def depth(self) -> int:
        return len(self.frames)

    def enter(self, event) -> tuple:
        """The path of the node this event starts (a mapping's key is placed at the mapping itself)."""
        if not self.frames:
            path = self.prefix
        else:
            is_map, parent, key, expecting_key, index = self.frames[-1]
            path = parent if is_map and expecting_key else parent + ((key,) if is_map else (index,))
        if isinstance(event, CollectionStartEvent):
            self.frames.append([isinstance(event, MappingStartEvent), path, None, True, 0])
        else:
            self._done(getattr(event, "value", None))
        return path

    def leave(self) -> None:
        self.frames.pop()
        self._done(None)

    def _done(self, scalar) -> None:
        if not self.frames:
            return
        frame = self.frames[-1]
        if frame[0] and frame[3]:
            frame[2], frame[3] = scalar if isinstance(scalar, str) else "?", False
        elif frame[0]:
            frame[3] = True
        else:
            frame[4] += 1


def _precheck(text: str, shown: str, located: str | None = None, prefix=()) -> None:
    """Reject tags, anchors/aliases, deep nesting, huge node counts and extra documents from the
    event stream, before any tree is built."""
    nodes = documents = 0
    anchored = False
    problems = []
    paths = _KeyPaths(prefix)

    def at(event, path):
        return f"{located or f'{shown}:{event.start_mark.line + 1}'}: {dotted(path) or '<top>'}"

    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    problems.append(f"{located or f'{shown}:{event.start_mark.line + 1}'}: a spec is a single "
                                    "YAML document; remove the second document (after '---') or move it to its "
                                    "own file")
                    break
            if isinstance(event, CollectionEndEvent):
                paths.leave()
                continue
            if not isinstance(event, NodeEvent):
                continue
            path = paths.enter(event)
            nodes += 1
            if nodes > MAX_NODES:
                problems.append(f"{at(event, path)}: more than {MAX_NODES} values; a spec is a small file "
                                "(put bulk data in a data file and point data.path at it)")
                break
            if event.anchor is not None and not anchored:
                # the first anchor says it all; an alias bomb would repeat it hundreds of times
                anchored = True
                sign = "*" if isinstance(event, AliasEvent) else "&"
                problems.append(f"{at(event, path)}: YAML anchors and aliases ({sign}{event.anchor}) are not "
                                "supported, since they can expand exponentially; use `extends:` to share settings")
            tag = getattr(event, "tag", None)
            if tag is not None and tag != "!" and tag not in _STANDARD_TAGS:
                problems.append(f"{at(event, path)}: tag '{tag}' is not allowed; "
                                "specs hold plain values, maps and lists only")
            if paths.depth() > MAX_DEPTH:
                problems.append(f"{at(event, path[:3])}...: nesting deeper than {MAX_DEPTH} levels")
                break
            if len(problems) >= 20:
                break
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = located or (f"{shown}:{mark.line + 1}" if mark else shown)
        problems.append(f"{where}: invalid YAML: {e.problem or e.context}")
    except yaml.YAMLError as e:
        problems.append(f"{located or shown}: invalid YAML: {e}")
    if problems:
        raise ConfigError(problems)


def parse_yaml(text: str, shown: str, where: dict | None = None, prefix=(), located=None, kept: list | None = None):
    """YAML text -> Python value; records 'shown:line' of every key path in `where`.

    Syntax problems raise at once. Problems that leave a usable tree (a duplicate key keeps its first value, a
    mistagged value becomes null) raise too, unless `kept` collects them as (key path or None, line) so that
    validation can report them together with its own.
    """
    _precheck(text, shown, located, prefix)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    where = {} if where is None else where
    problems: list[tuple[tuple | None, str]] = []

    def at(n):
        return located or f"{shown}:{n.start_mark.line + 1}"

    def mismatch(n, path, expected: str) -> bool:
        """An explicit tag that contradicts the node (`!!seq {a: 1}`) is a problem, not a silent reinterpretation."""
        if n.tag in (f"tag:yaml.org,2002:{expected}", "!"):
            return False
        problems.append((path, f"{at(n)}: {dotted(path) or '<top>'}: tag !!{n.tag.rsplit(':', 1)[-1]} does not "
                                f"fit a {'mapping' if expected == 'map' else 'list'}; remove the tag"))
        return True

    def build(n, path):
        if isinstance(n, MappingNode):
            if mismatch(n, path, "map"):
                return None
            out, first = {}, {}
            for knode, vnode in n.value:
                if not isinstance(knode, ScalarNode):
                    problems.append((None, f"{at(knode)}: {dotted(path) or '<top>'}: keys must be strings; "
                                           f"received a {'list' if isinstance(knode, SequenceNode) else 'mapping'}"))
                    continue
                key = loader.construct_object(knode, deep=True)
                if not isinstance(key, str):
                    problems.append((None, f"{at(knode)}: {dotted(path) or '<top>'}: keys must be strings; "
                                           f"received {key!r}"))
                    continue
                line = knode.start_mark.line + 1
                if key in first:
                    problems.append((None, f"{at(knode)}: {dotted(path + (key,))}: duplicate key; "
                                           f"first defined at line {first[key]}"))
                    continue
                first[key] = line
                where[path + (key,)] = at(knode)
                out[key] = build(vnode, path + (key,))
            return out
        if isinstance(n, SequenceNode):
            if mismatch(n, path, "seq"):
                return None
            items = []
            for i, item in enumerate(n.value):
                where[path + (i,)] = at(item)
                items.append(build(item, path + (i,)))
            return items
        if "\0" in n.value:  # no path or name takes it; os functions raise on it
            problems.append((path, f"{at(n)}: {dotted(path) or '<top>'}: a NUL character (\\0) is not allowed; "
                                   f"received {n.value!r}"))
            return None
        try:
            return loader.construct_object(n, deep=True)
        except (ValueError, yaml.YAMLError):  # only an explicit tag (`!!int abc`) gets here
            problems.append((path, f"{at(n)}: {dotted(path) or '<top>'}: {n.value!r} is not a valid "
                                   f"!!{n.tag.rsplit(':', 1)[-1]} value; remove the tag or fix the value"))
            return None

    value = None if node is None else build(node, tuple(prefix))
    if problems and kept is None:
        raise ConfigError([line for _, line in problems])
    if problems:
        kept.extend(problems)
    return value
