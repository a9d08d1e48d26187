"""Validation through the CLI: all problems at once, strict types, did-you-mean, paths, schema, no TensorFlow import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import jsonschema
import pytest

from helpers import CLI_ENV, ROOT, run_cli, write_spec
from runner.cli.main import main
from runner.spec import load_config, render
from runner.language.load import display_path as shown, load_spec
from runner.spec.validate import MAX_REPORTED
from runner.language.yaml12 import parse_yaml

pytestmark = pytest.mark.config_errors

SCHEMA_LINE = "# yaml-language-server: $schema=../docs/dlrun.schema.json"
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
BASE = "name: t\ndata: {source: sklearn, name: digits}\nmodel: {arch: mlp}\n"


def _validate(capsys, *args) -> tuple[int, list[str]]:
    """`dlrun validate ARGS` in this process: (exit code, stderr lines)."""
    code = main(["validate", *map(str, args)])
    return code, capsys.readouterr().err.splitlines()


def test_validate_render_schema_and_help_never_import_tensorflow():
    code = """if True:
        import contextlib, io, json, sys
        from runner.cli.main import main
        codes = []
        with contextlib.redirect_stdout(io.StringIO()):
            for argv in (["validate", "experiments/cifar10.yaml"], ["render", "experiments/cifar10.yaml"],
                         ["schema"], ["--help"], ["validate", "--help"]):
                try:
                    codes.append(main(argv))
                except SystemExit as e:
                    codes.append(e.code)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tensorflow_datasets"))
        print(json.dumps([codes, heavy]))
    """
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=CLI_ENV, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == [[0, 0, 0, 0, 0], []]


def test_validate_cifar10_in_a_fresh_process():
    # its speed is measured by bench/startup.py
    proc = run_cli("validate", "experiments/cifar10.yaml", timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "experiments/cifar10.yaml: ok\n", "")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_carries_the_schema_line_and_validates(path, capsys):
    assert path.read_text().splitlines()[0] == SCHEMA_LINE
    assert _validate(capsys, path.relative_to(ROOT)) == (0, [])
    # what an editor checks: the file as written (YAML 1.2, like yaml-language-server), against the schema
    schema = json.loads((ROOT / "docs" / "dlrun.schema.json").read_text())
    data = parse_yaml(path.read_text(), path.name)
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_render_round_trips(path, tmp_path):
    cfg, _ = load_config(path)
    rendered = write_spec(tmp_path, render(cfg), "rendered.yaml")
    again, _ = load_config(rendered)
    assert again == cfg
    assert render(again) == render(cfg)


def test_schema_and_config_docs_are_current():
    spec = importlib.util.spec_from_file_location("gen_config_docs", ROOT / "scripts" / "gen_config_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.main(["--check"]) == 0, "run .venv/bin/python scripts/gen_config_docs.py"
    out = subprocess.run([sys.executable, "-m", "runner", "schema"], cwd=ROOT, env=CLI_ENV, capture_output=True,
                         text=True, check=True)
    assert out.stdout == (ROOT / "docs" / "dlrun.schema.json").read_text()


def test_config_docs_name_every_key_of_every_block():
    docs = (ROOT / "docs" / "config.md").read_text()
    schema = json.loads((ROOT / "docs" / "dlrun.schema.json").read_text())
    for name, block in [("<top>", schema), *schema["$defs"].items()]:
        for key in block.get("properties", {}):
            # a row of a table, or (a step's name) the heading of its arguments' table
            assert f"| `{key}` |" in docs or f"[].{key}`\n" in docs, f"{name}.{key}"
    assert SCHEMA_LINE in docs


def test_every_problem_is_reported_at_once_in_file_order(tmp_path, capsys):
    spec = write_spec(tmp_path, "name: My Run\nseed: 1.5\ndata: {source: sklearn, name: digits, batch_size: 0}\n"
                                "model: {arch: mlp, dropout: .nan, unitz: [8]}\n"
                                "train: {epochs: '5', optimizer: {name: sgd, momentun: 0.9}, metrics: [acc]}\n"
                                "callbacks: {early_stopping: {patience: -1}, tensorbord: {}}\n")
    code, lines = _validate(capsys, spec)
    assert code == 2
    assert lines == [
        f"{shown(spec)}:1: name: must match ^[a-z0-9._-]+$; received 'My Run'",
        f"{shown(spec)}:2: seed: must be an integer; received 1.5",
        f"{shown(spec)}:3: data.batch_size: must be >= 1; received 0",
        f"{shown(spec)}:4: model.dropout: must be a finite number; received nan",
        f"{shown(spec)}:4: model.unitz: unknown key; did you mean 'units'?",
        f"{shown(spec)}:5: train.epochs: must be an integer; received '5'",
        f"{shown(spec)}:5: train.optimizer.momentun: unknown key; did you mean 'momentum'?",
        f"{shown(spec)}:5: train.metrics[0]: unknown metric 'acc'; did you mean 'auc'?",
        f"{shown(spec)}:6: callbacks.early_stopping.patience: must be >= 0; received -1",
        f"{shown(spec)}:6: callbacks.tensorbord: unknown key; did you mean 'tensorboard'?",
    ]


def test_loader_problems_are_reported_with_validation_problems(tmp_path, capsys):
    spec = write_spec(tmp_path, "name: t\nname: u\ndata: {source: sklearn, name: digits, batch_size: !!int x}\n"
                                "model: {arch: mlp, dropout: 2}\n")
    assert _validate(capsys, spec) == (2, [
        f"{shown(spec)}:2: name: duplicate key; first defined at line 1",
        # the refused value is not reported a second time as `must be an integer; received None`
        f"{shown(spec)}:3: data.batch_size: 'x' is not a valid !!int value; remove the tag or fix the value",
        f"{shown(spec)}:4: model.dropout: must be < 1.0; received 2",
    ])
    spec = write_spec(tmp_path, "name: t\nname: u\ndata: {source: sklearn, name: digits}\nmodel: {arch: mlp}\n")
    assert _validate(capsys, spec) == (2, [f"{shown(spec)}:2: name: duplicate key; first defined at line 1"])


def test_a_flood_of_problems_is_capped(tmp_path, capsys):
    spec = write_spec(tmp_path, BASE + "".join(f"key{i}: 1\n" for i in range(MAX_REPORTED + 10)))
    code, lines = _validate(capsys, spec)
    assert code == 2 and len(lines) == MAX_REPORTED + 1
    assert lines[0].startswith(f"{shown(spec)}:4: key0: unknown key; valid keys: name, seed, ")
    assert lines[-1] == "... and up to 10 more problems; fix these first"


@pytest.mark.parametrize("override, line", [
    ("data.source=skleran", "data.source: unknown data source 'skleran'; did you mean 'sklearn'?"),
    ("model.arch=mpl", "model.arch: unknown arch 'mpl'; did you mean 'mlp'?"),
    ("train.optimizer=adamw_", "train.optimizer.name: unknown optimizer 'adamw_'; did you mean 'adamw'?"),
    ("train.lr={schedule: cosne}", "train.lr.schedule: unknown schedule 'cosne'; did you mean 'cosine'?"),
    ("train.loss=sparse_categorical_crossentropi",
     "train.loss.name: unknown loss 'sparse_categorical_crossentropi'; "
     "did you mean 'sparse_categorical_crossentropy'?"),
    ("train.metrics=[top5_acc]", "train.metrics[0]: unknown metric 'top5_acc'; did you mean 'top5_accuracy'?"),
    ("data.augment=[random_fip]", "data.augment[0].random_fip: unknown augmentation 'random_fip'; "
                                  "did you mean 'random_flip'?"),
    ("data.batch_augment=[mix_up]", "data.batch_augment[0].mix_up: unknown batch augmentation 'mix_up'; "
                                    "did you mean 'mixup'?"),
    ("data.preprocess=[rescal]", "data.preprocess[0].rescal: unknown preprocessing step 'rescal'; "
                                 "did you mean 'rescale'?"),
    ("callbacks.checkpoints={}", "callbacks.checkpoints: unknown key; did you mean 'checkpoint'?"),
    ("data.nmae=digits", "data.nmae: unknown key; did you mean 'name'?"),
])
def test_did_you_mean_for_keys_and_registry_names(override, line, tmp_path, capsys):
    spec = write_spec(tmp_path, BASE)
    assert _validate(capsys, spec, "--set", override) == (2, [f"--set {override}: {line}"])


@pytest.mark.parametrize("override, line", [
    ("train.epochs='5'", "train.epochs: must be an integer; received '5'"),
    ("train.epochs=5.0", "train.epochs: must be an integer; received 5.0"),
    ("train.epochs=true", "train.epochs: must be an integer; received True"),
    ("deterministic=no", "deterministic: must be true or false; received 'no'"),
    ("deterministic='false'", "deterministic: must be true or false; received 'false'"),
    ("deterministic=1", "deterministic: must be true or false; received 1"),
    ("train.lr=.nan", "train.lr: must be a finite number; received nan"),
    ("train.lr.base=-.inf", "train.lr.base: must be a finite number; received -inf"),
    ("train.lr.base='1e-3'", "train.lr.base: must be a number; received '1e-3'"),
    ("model.dropout=true", "model.dropout: must be a number; received True"),
    ("name=7", "name: must be a string; received 7"),
    ("data.batch_size=[64]", "data.batch_size: must be an integer; received [64]"),
])
def test_no_coercion(override, line, tmp_path, capsys):
    spec = write_spec(tmp_path, BASE)
    assert _validate(capsys, spec, "--set", override) == (2, [f"--set {override}: {line}"])


@pytest.mark.parametrize("override, line", [
    ("train.epochs=0", "train.epochs: must be >= 1; received 0"),
    ("data.batch_size=0", "data.batch_size: must be >= 1; received 0"),
    ("train.lr.base=0", "train.lr.base: must be > 0.0; received 0"),
    ("model.dropout=-0.1", "model.dropout: must be >= 0.0; received -0.1"),
    ("model.dropout=1", "model.dropout: must be < 1.0; received 1"),
    ("train.loss.label_smoothing=1.01", "train.loss.label_smoothing: must be <= 1.0; received 1.01"),
    ("callbacks.early_stopping={patience: -3}", "callbacks.early_stopping.patience: must be >= 0; received -3"),
    ("callbacks.tensorboard.update_freq=0", "callbacks.tensorboard.update_freq: must be 'epoch' or >= 1; received 0"),
    ("callbacks.tensorboard.update_freq=false",
     "callbacks.tensorboard.update_freq: must be 'epoch' or an integer; received False"),
    ("callbacks.tensorboard.update_freq=batch",
     "callbacks.tensorboard.update_freq: must be 'epoch' or an integer; received 'batch'"),
])
def test_ranges(override, line, tmp_path, capsys):
    spec = write_spec(tmp_path, BASE)
    assert _validate(capsys, spec, "--set", override) == (2, [f"--set {override}: {line}"])


def test_range_edges_are_accepted(tmp_path, capsys):
    spec = write_spec(tmp_path, BASE)
    edges = ["train.epochs=1", "data.batch_size=1", "model.dropout=0", "model.dropout=0.999",
             "train.loss={name: categorical_crossentropy, label_smoothing: 1}",
             "callbacks.early_stopping={patience: 0}",
             "callbacks.tensorboard.update_freq=1", "train.lr.base=1e-12"]
    assert _validate(capsys, spec, *[a for e in edges for a in ("--set", e)]) == (0, [])


def test_label_smoothing_needs_a_classification_loss(tmp_path, capsys):
    spec = write_spec(tmp_path, BASE)
    override = "train.loss={name: mse, label_smoothing: 0.1}"
    assert _validate(capsys, spec, "--set", override) == (2, [
        f"--set {override}: train.loss.label_smoothing: 'mse' takes no label_smoothing; it applies to auto, "
        "sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy, focal only"])


def test_mixup_needs_classification(tmp_path, capsys):
    spec = write_spec(tmp_path, "name: t\ndata: {source: sklearn, name: diabetes, batch_augment: [cutmix]}\n"
                                "model: {arch: mlp}\n")
    assert _validate(capsys, spec) == (2, [
        f"{shown(spec)}:2: data.batch_augment: mixup and cutmix mix class labels; this data is regression"])
    spec = write_spec(tmp_path, BASE + "train: {loss: mae}\n")
    assert _validate(capsys, spec, "--set", "data.batch_augment=[mixup]") == (2, [
        f"{shown(spec)}:4: train.loss.name: 'mae' is a regression loss; this data is classification",
        "--set data.batch_augment=[mixup]: data.batch_augment: mixup and cutmix mix class labels; "
        "'mae' is a regression loss"])


def test_name_symlinked_outside_output_dir_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "t").symlink_to(tmp_path / "elsewhere")
    write_spec(tmp_path, BASE, "spec.yaml")
    assert _validate(capsys, "spec.yaml") == (2, [
        f"spec.yaml:1: name: runs/t resolves to {tmp_path / 'elsewhere'}, outside output.dir (runs); "
        "remove the link or choose another name"])


def test_output_dir_itself_may_be_a_link_anywhere(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scratch").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "scratch")
    write_spec(tmp_path, BASE + "output: {dir: runs}\n", "spec.yaml")
    assert _validate(capsys, "spec.yaml") == (0, [])
    assert _validate(capsys, "spec.yaml", "--set", f"output.dir={tmp_path / 'scratch'}") == (0, [])


def test_deep_validation_names_the_closest_keras_layer(tmp_path, capsys):
    spec = write_spec(tmp_path, "name: t\ndata: {source: sklearn, name: iris}\nmodel:\n  layers:\n"
                                "    - Dense: {units: 8, activation: relu}\n    - Dnse: {units: 3}\n")
    assert _validate(capsys, spec) == (0, [])
    code, lines = _validate(capsys, "--deep", spec)
    assert (code, lines) == (2, [f"{shown(spec)}:6: model.layers[1].Dnse: unknown Keras layer; did you mean 'Dense'?"])


def test_set_problem_reported_beside_file_problems(tmp_path, capsys):
    spec = write_spec(tmp_path, BASE + "seed: -1\n")
    assert _validate(capsys, spec, "--set", "train.epochs=0") == (2, [
        f"{shown(spec)}:4: seed: must be >= 0; received -1",
        "--set train.epochs=0: train.epochs: must be >= 1; received 0",
    ])


def test_loaded_locations_survive_extends_into_messages(tmp_path, capsys):
    write_spec(tmp_path, "data: {source: sklearn, name: digits, batch_size: -1}\n", "base.yaml")
    spec = write_spec(tmp_path, "extends: base.yaml\nname: t\nmodel: {arch: mlp}\n")
    assert _validate(capsys, spec) == (
        2, [f"{shown(tmp_path / 'base.yaml')}:1: data.batch_size: must be >= 1; received -1"])
    assert load_spec(spec).data["name"] == "t"


def test_a_registry_name_that_is_not_a_string(tmp_path, capsys):
    spec = write_spec(tmp_path, BASE)
    from runner.models import ARCHS

    assert _validate(capsys, spec, "--set", "model.arch=[mlp]") == (2, [
        f"--set model.arch=[mlp]: model.arch: must be one of the arch names ({', '.join(sorted(ARCHS.names()))}); "
        "received ['mlp']"])
