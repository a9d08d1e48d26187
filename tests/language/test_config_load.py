"""The hardened loader: YAML 1.2 scalars, limits, `extends` and `--set`, each problem with its location."""

from __future__ import annotations

import math

import pytest

from runner.language.load import MAX_BYTES, MAX_EXTENDS, Loaded, apply_set, load_spec
from runner.language.yaml12 import MAX_NODES, parse_yaml
from runner.kernel.errors import ConfigError

pytestmark = pytest.mark.config_errors


def _problems(call) -> list[str]:
    with pytest.raises(ConfigError) as info:
        call()
    return info.value.problems


@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("1E3", 1000.0), (".5", 0.5), ("-2.5e+2", -250.0), ("010", 10), ("0x1F", 31), ("0o17", 15),
    ("+7", 7), ("true", True), ("False", False), ("~", None), ("null", None), ("", None),
    # YAML 1.1 spellings that PyYAML's SafeLoader turns into other types stay strings
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("1_000", "1_000"), ("1:30", "1:30"), ("0b101", "0b101"),
    ("2001-12-14", "2001-12-14"), ("<<", "<<"),
])
def test_yaml_1_2_scalars(text, value):
    assert parse_yaml(f"a: {text}\n", "x.yaml") == {"a": value}


def test_non_finite_numbers_load_and_are_left_to_validation():
    loaded = parse_yaml("a: .inf\nb: -.Inf\nc: .NaN\n", "x.yaml")
    assert loaded["a"] == math.inf and loaded["b"] == -math.inf and math.isnan(loaded["c"])


@pytest.mark.parametrize("text, problem", [
    ("!!int abc", "x.yaml:1: a: 'abc' is not a valid !!int value; remove the tag or fix the value"),
    ("!!bool yes", "x.yaml:1: a: 'yes' is not a valid !!bool value; remove the tag or fix the value"),
    ("!!float 1_0", "x.yaml:1: a: '1_0' is not a valid !!float value; remove the tag or fix the value"),
    ("!!seq {b: 1}", "x.yaml:1: a: tag !!seq does not fit a mapping; remove the tag"),
    ("!!str [1]", "x.yaml:1: a: tag !!str does not fit a list; remove the tag"),
    ("!!binary aGk=", "x.yaml:1: a: tag 'tag:yaml.org,2002:binary' is not allowed; "
                      "specs hold plain values, maps and lists only"),
    ("!!python/name:os.system ''", "x.yaml:1: a: tag 'tag:yaml.org,2002:python/name:os.system' is not "
                                   "allowed; specs hold plain values, maps and lists only"),
])
def test_explicit_tags_are_checked(text, problem):
    assert _problems(lambda: parse_yaml(f"a: {text}\n", "x.yaml")) == [problem]


def test_explicit_standard_tags_that_fit_are_accepted():
    assert parse_yaml("a: !!str 5\nb: !!int 7\nc: !!float 1\nd: ! [1]\n", "x.yaml") == \
        {"a": "5", "b": 7, "c": 1.0, "d": [1]}


def test_nesting_far_beyond_the_limit_is_one_problem_not_a_recursion_error():
    text = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"
    assert _problems(lambda: parse_yaml(text, "x.yaml")) == ["x.yaml:1: a[0][0]...: nesting deeper than 64 levels"]


def test_problems_found_in_the_event_stream_name_their_key_path():
    text = "data:\n  augment:\n    - random_flip\n    - !flip {mode: x}\n  name: &n digits\n? !k key\n: v\n"
    assert _problems(lambda: parse_yaml(text, "x.yaml")) == [
        "x.yaml:4: data.augment[1]: tag '!flip' is not allowed; specs hold plain values, maps and lists only",
        "x.yaml:5: data.name: YAML anchors and aliases (&n) are not supported, since they can expand "
        "exponentially; use `extends:` to share settings",
        "x.yaml:6: <top>: tag '!k' is not allowed; specs hold plain values, maps and lists only",
    ]


def test_nesting_at_the_limit_loads():
    value = parse_yaml("[" * 64 + "]" * 64, "x.yaml")
    for _ in range(63):
        value = value[0]
    assert value == []


def test_node_count_limit():
    text = "a: [" + ", ".join(["1"] * (MAX_NODES + 5)) + "]\n"
    assert _problems(lambda: parse_yaml(text, "x.yaml")) == [
        f"x.yaml:1: a[{MAX_NODES - 3}]: more than {MAX_NODES} values; a spec is a small file "
        "(put bulk data in a data file and point data.path at it)"]


def test_file_size_limit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.yaml").write_text("# " + "x" * MAX_BYTES + "\n")
    assert _problems(lambda: load_spec("big.yaml")) == [
        f"big.yaml: file is {MAX_BYTES + 3} bytes; specs are limited to {MAX_BYTES} bytes"]


def test_a_file_just_under_the_limit_loads(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("name: t\n# " + "x" * (MAX_BYTES - 20) + "\nseed: 3\n")
    assert load_spec(path).data == {"name": "t", "seed": 3}


def test_keys_must_be_strings():
    assert _problems(lambda: parse_yaml("1: a\n? [b]\n: c\nnull: d\n", "x.yaml")) == [
        "x.yaml:1: <top>: keys must be strings; received 1",
        "x.yaml:2: <top>: keys must be strings; received a list",
        "x.yaml:4: <top>: keys must be strings; received None",
    ]


def test_every_duplicate_is_reported_with_both_lines():
    text = "a: 1\nb:\n  c: 1\n  c: 2\na: 3\n"
    assert _problems(lambda: parse_yaml(text, "x.yaml")) == [
        "x.yaml:4: b.c: duplicate key; first defined at line 3",
        "x.yaml:5: a: duplicate key; first defined at line 1",
    ]


def test_key_lines_are_recorded():
    where: dict = {}
    parse_yaml("a:\n  b: [1,\n    2]\n  c: {d: 1}\n", "x.yaml", where)
    assert where == {("a",): "x.yaml:1", ("a", "b"): "x.yaml:2", ("a", "b", 0): "x.yaml:2",
                     ("a", "b", 1): "x.yaml:3", ("a", "c"): "x.yaml:4", ("a", "c", "d"): "x.yaml:4"}


def _write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_deep_merges_and_keeps_each_key_s_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "_base/a.yaml", "data:\n  source: sklearn\n  batch_size: 32\nseed: 1\n")
    _write(tmp_path, "_base/b.yaml", "train: {epochs: 2}\nseed: 2\n")
    spec = _write(tmp_path, "spec.yaml", "extends: [_base/a.yaml, _base/b.yaml]\nname: t\ndata:\n  batch_size: 64\n")
    loaded = load_spec(spec)
    assert loaded.data == {"data": {"source": "sklearn", "batch_size": 64}, "seed": 2, "train": {"epochs": 2},
                           "name": "t"}
    assert loaded.locate(("data", "source")) == "_base/a.yaml:2"
    assert loaded.locate(("data", "batch_size")) == "spec.yaml:4"
    assert loaded.locate(("seed",)) == "_base/b.yaml:2"
    assert loaded.locate(("train", "epochs", "x")) == "_base/b.yaml:1"


def test_extends_cycle_through_three_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "seed: 1\nextends: c.yaml\n")
    _write(tmp_path, "c.yaml", "extends: a.yaml\n")
    assert _problems(lambda: load_spec("a.yaml")) == ["c.yaml:1: extends: cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml"]


def test_extends_chain_depth_limit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i in range(MAX_EXTENDS + 2):
        _write(tmp_path, f"s{i}.yaml", f"extends: s{i + 1}.yaml\n")
    assert _problems(lambda: load_spec("s0.yaml")) == [
        f"s{MAX_EXTENDS}.yaml:1: extends: more than {MAX_EXTENDS} files deep "
        f"(chain: s0.yaml -> s1.yaml -> s2.yaml -> ... -> s{MAX_EXTENDS}.yaml)"]


def test_extends_missing_parent_of_a_parent_shows_the_chain(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "a.yaml", "extends: sub/b.yaml\n")
    _write(tmp_path, "sub/b.yaml", "seed: 1\nextends: ../gone.yaml\n")
    assert _problems(lambda: load_spec("a.yaml")) == [
        "sub/b.yaml:2: extends: file not found: ../gone.yaml (chain: a.yaml -> sub/b.yaml -> gone.yaml)"]


def _loaded() -> Loaded:
    return Loaded({"name": "t", "data": {"augment": [{"random_flip": {}}]}}, {("name",): "s.yaml:1"}, "s.yaml")


def test_set_creates_maps_located_at_the_argument():
    loaded = _loaded()
    apply_set(loaded, "train.lr.base=3e-4")
    assert loaded.data["train"] == {"lr": {"base": 0.0003}}
    assert loaded.locate(("train", "lr", "schedule")) == "--set train.lr.base=3e-4"
    assert loaded.locate(("train",)) == "--set train.lr.base=3e-4"


def test_set_replaces_a_subtree_and_its_locations():
    loaded = _loaded()
    loaded.where[("data", "augment", 0)] = "s.yaml:3"
    apply_set(loaded, "data.augment=[random_zoom, random_flip]")
    assert loaded.data["data"]["augment"] == ["random_zoom", "random_flip"]
    assert loaded.locate(("data", "augment", 0)) == "--set data.augment=[random_zoom, random_flip]"


def test_set_into_a_list_item():
    loaded = _loaded()
    apply_set(loaded, "data.augment.0.random_flip.mode=vertical")
    assert loaded.data["data"]["augment"] == [{"random_flip": {"mode": "vertical"}}]


@pytest.mark.parametrize("override, problem", [
    ("data.augment.3=x", "--set data.augment.3=x: data.augment.3: index out of range (the list has 1 items)"),
    ("name.first=x", "--set name.first=x: name: is 't', not a mapping; set name itself instead"),
    ("=5", "--set =5: expected KEY=VALUE with a dotted key, such as train.epochs=5"),
    ("train..epochs=5", "--set train..epochs=5: expected KEY=VALUE with a dotted key, such as train.epochs=5"),
    ("seed=[1", "--set seed=[1: invalid YAML: did not find expected ',' or ']'"),
    ("seed=*a", "--set seed=*a: seed: YAML anchors and aliases (*a) are not supported, since they can expand "
                "exponentially; use `extends:` to share settings"),
    ("seed=!!python/object:os.system x", "--set seed=!!python/object:os.system x: seed: tag "
                                         "'tag:yaml.org,2002:python/object:os.system' is not allowed; "
                                         "specs hold plain values, maps and lists only"),
    ("data={a: 1, a: 2}", "--set data={a: 1, a: 2}: data.a: duplicate key; first defined at line 1"),
])
def test_set_problems_point_at_the_argument(override, problem):
    assert _problems(lambda: apply_set(_loaded(), override)) == [problem]


def test_a_device_without_a_size_is_read_with_a_bound(monkeypatch):
    monkeypatch.chdir("/dev")
    assert _problems(lambda: load_spec("/dev/zero")) == [
        f"zero: more than {MAX_BYTES} bytes; specs are limited to {MAX_BYTES} bytes"]


def test_a_directory_is_not_a_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    assert _problems(lambda: load_spec("specs")) == ["specs: is a directory, not a YAML file"]


def test_a_nul_character_is_refused_in_any_value():
    assert _problems(lambda: parse_yaml('a: {b: "x\\0y"}\n', "x.yaml")) == [
        "x.yaml:1: a.b: a NUL character (\\0) is not allowed; received 'x\\x00y'"]
