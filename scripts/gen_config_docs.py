"""Regenerate docs/dlrun.schema.json (what `dlrun schema` prints) and docs/config.md (every YAML key) from the schema.

    .venv/bin/python scripts/gen_config_docs.py          # rewrite both files
    .venv/bin/python scripts/gen_config_docs.py --check  # exit 1 if either is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "dlrun.schema.json"
DOCS_FILE = ROOT / "docs" / "config.md"

INTRO = """\
# dlrun spec reference

Generated from the spec's JSON Schema by `scripts/gen_config_docs.py`; do not edit by hand. After a change to
the config models (a new field, a new registry entry), run `.venv/bin/python scripts/gen_config_docs.py`;
a test fails while this file or `docs/dlrun.schema.json` is out of date.

## Editor completion and inline errors

`dlrun schema` prints the JSON Schema of a spec; `docs/dlrun.schema.json` is a copy kept in the repository.
Editors that use [yaml-language-server](https://github.com/redhat-developer/yaml-language-server) (VS Code with
the Red Hat YAML extension, Neovim, Emacs lsp-mode, JetBrains IDEs) pick the schema from the spec's first line:

    # yaml-language-server: $schema=../docs/dlrun.schema.json

The path is relative to the spec file: every `experiments/*.yaml` starts with exactly this line (a test checks
it). For a spec elsewhere, point the line at the repository's copy, or write your own copy with
`dlrun schema > dlrun.schema.json`. The schema gives completion, hover text (the descriptions below) and
inline errors for unknown keys, types and ranges; `dlrun validate` checks the same and more (cross-field rules,
split strings, and with `--deep` Keras layer names).

## Conventions

- Unknown keys are errors; there is no type coercion: `"5"` is not a number, `no` and `"false"` are not booleans
  (only `true`/`false` are), `.nan` and `.inf` are refused. `1e-3` is a number (YAML 1.2).
- Anchors and aliases (`&a`, `*a`) and tags beyond the standard ones (`!!python/...`, `!include`) are refused;
  share settings with `extends:`.
- Limits: a spec file holds at most 1 MiB, 10,000 values and 64 levels of nesting, one YAML document, UTF-8
  text without NUL characters; `extends` chains are at most 16 files deep. Each problem is reported as
  `file:line: key.path: rule; received value` (or `--set KEY=VALUE: key.path: ...` for an override).
- `extends: PATH` (or a list of paths, relative to the file) deep-merges the parents first; this file wins.
- A key path such as `train.lr.base` is also what `--set train.lr.base=3e-4` takes.
- Types: `a | b` is either; ranges are written as `integer >= 1`, `0 <= number < 1`.
- Blocks chosen by a name (`data.source`, `model.arch`, `train.optimizer.name`, ...) have one table per choice.
- Steps (`data.preprocess`, `data.augment`, `data.batch_augment`) are one-key maps, `- rescale: {scale: 0.1}`, or
  a bare name for the defaults, `- random_flip`; the table `data.preprocess[].rescale` lists that step's arguments.
- `train.optimizer: adam`, `train.loss: mse` and `train.lr: 0.01` are short for `{name: adam}`, `{name: mse}` and
  `{schedule: constant, base: 0.01}`.
"""


def render_schema() -> str:
    """Exactly what `dlrun schema` prints."""
    sys.path.insert(0, str(ROOT))
    from runner.spec.schema import json_schema

    return json.dumps(json_schema(), indent=2) + "\n"


class _Doc:
    def __init__(self, schema: dict):
        self.schema = schema
        self.defs = schema.get("$defs", {})
        self.sections: list[str] = []
        self.seen: set[tuple[str, str]] = set()

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            node = self.defs[node["$ref"].split("/")[-1]]
        return node

    def variants(self, node: dict) -> list[dict]:
        """The object schemas a node may be: itself, or the members of its unions."""
        node = self.resolve(node)
        if "oneOf" in node or "anyOf" in node:
            return [v for m in node.get("oneOf", node.get("anyOf")) for v in self.variants(m)]
        if node.get("type") == "array" and "items" in node:
            return []
        return [node] if "properties" in node else []

    def type_of(self, node: dict) -> str:
        node = self.resolve(node)
        if "const" in node:
            return json.dumps(node["const"])
        if "enum" in node:
            return " \\| ".join(json.dumps(v) for v in node["enum"])
        for union in ("oneOf", "anyOf"):
            if union in node:
                return " \\| ".join(dict.fromkeys(self.type_of(m) for m in node[union]))
        kind = node.get("type", "any")
        if kind == "object" and "properties" in node:
            return "mapping"
        if kind == "object":
            value = node.get("additionalProperties")
            return f"mapping of {self.type_of(value)}" if isinstance(value, dict) else "mapping"
        if kind == "array":
            return f"list of {self.type_of(node.get('items', {}))}"
        return self.ranged(kind, node)

    @staticmethod
    def ranged(kind: str, node: dict) -> str:
        low = (f"{node['minimum']} <= ", f" >= {node['minimum']}") if "minimum" in node else \
            (f"{node['exclusiveMinimum']} < ", f" > {node['exclusiveMinimum']}") if "exclusiveMinimum" in node else None
        high = f" <= {node['maximum']}" if "maximum" in node else \
            f" < {node['exclusiveMaximum']}" if "exclusiveMaximum" in node else ""
        if low and high:
            return f"{low[0]}{kind}{high}"
        text = kind + (low[1] if low else "") + high
        if "pattern" in node:
            text += f" matching `{node['pattern']}`"
        return text

    @staticmethod
    def tag_of(node: dict) -> str | None:
        """`source: sklearn` for a union member whose discriminator is a constant."""
        for key, prop in node.get("properties", {}).items():
            if "const" in prop:
                return f"{key}: {prop['const']}"
        return None

    def table(self, path: str, node: dict, note: str = "") -> None:
        title = node.get("title", "")
        if (path, title) in self.seen:
            return
        self.seen.add((path, title))
        required = set(node.get("required", []))
        rows = ["| key | type | default | description |", "|---|---|---|---|"]
        nested = []
        for key, prop in node["properties"].items():
            default = "required" if key in required else (
                f"`{json.dumps(prop['default'])}`" if "default" in prop else "")
            description = prop.get("description", self.resolve(prop).get("description", ""))
            rows.append(f"| `{key}` | {self.type_of(prop)} | {default} | {description.replace('|', '&#124;')} |")
            nested.append((f"{path}.{key}" if path else key, prop))
        heading = f"`{path}`" if path else "top level"
        description = node.get("description", "")
        self.sections.append("\n".join([f"### {heading}{note}", "", *([description, ""] if description else []),
                                        *rows, ""]))
        for child_path, prop in nested:
            self.walk(child_path, prop)

    def walk(self, path: str, node: dict) -> None:
        resolved = self.resolve(node)
        if resolved.get("type") == "array" or any(m.get("type") == "array" for m in
                                                   map(self.resolve, resolved.get("anyOf", []))):
            items = [m for m in [resolved, *map(self.resolve, resolved.get("anyOf", []))] if m.get("type") == "array"]
            for item in items:
                self.walk(f"{path}[]", item.get("items", {}))
            return
        if isinstance(resolved.get("additionalProperties"), dict):
            self.walk(f"{path}.<name>", resolved["additionalProperties"])
        members = self.variants(node)
        for member in members:
            props = member["properties"]
            if len(members) > 1 and len(props) == 1 and not any("const" in p for p in props.values()):
                (key, params), = props.items()
                if self.variants(params):  # a one-key step: its arguments are the table
                    self.walk(f"{path}.{key}", params)
                    continue
            tag = self.tag_of(member) if len(members) > 1 else None
            self.table(path, member, f" with `{tag}`" if tag else "")


def render_markdown(schema: dict) -> str:
    doc = _Doc(schema)
    doc.table("", schema)
    return INTRO + "\n## Keys\n\n" + "\n".join(doc.sections)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date; write nothing")
    args = parser.parse_args(argv)
    schema_text = render_schema()
    wanted = {SCHEMA_FILE: schema_text, DOCS_FILE: render_markdown(json.loads(schema_text))}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date; run .venv/bin/python scripts/gen_config_docs.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
