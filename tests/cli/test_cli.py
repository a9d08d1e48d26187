"""The CLI contract of the foundation: verbs, exit codes, error texts (start-up time: bench/startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

import pytest

from helpers import ROOT, run_cli, write_spec

pytestmark = pytest.mark.config_errors


def test_validate_ok_prints_and_exits_zero():
    proc = run_cli("validate", "experiments/digits.yaml", check_code=0)
    assert proc.stdout.strip() == "experiments/digits.yaml: ok"


def test_misspelled_key_names_file_line_path_and_suggestion(tmp_path):
    spec = (ROOT / "experiments/digits.yaml").read_text().replace("  optimizer: {name: adam}",
                                                                   "  optimizer: {name: sgd, momentun: 0.9}")
    path = write_spec(tmp_path, spec, "x.yaml")
    line = next(i for i, text in enumerate(spec.splitlines(), 1) if "momentun" in text)
    proc = run_cli("validate", path, cwd=tmp_path, check_code=2)
    assert proc.stderr.strip() == f"x.yaml:{line}: train.optimizer.momentun: unknown key; did you mean 'momentum'?"
    assert "Traceback" not in proc.stderr


def test_all_problems_are_reported_at_once(tmp_path):
    path = write_spec(tmp_path, "name: t\ndata: {source: sklearn, name: digits, batch_size: 0}\n"
                                "model: {arch: mlp, dropout: 1.5}\ntrain: {epochs: 0}\n")
    proc = run_cli("validate", path, cwd=tmp_path, check_code=2)
    assert proc.stderr.splitlines() == [
        "spec.yaml:2: data.batch_size: must be >= 1; received 0",
        "spec.yaml:3: model.dropout: must be < 1.0; received 1.5",
        "spec.yaml:4: train.epochs: must be >= 1; received 0",
    ]


def test_unknown_registry_name_suggests_closest(tmp_path):
    path = write_spec(tmp_path, "name: t\ndata: {source: sklearn, name: digits}\nmodel: {arch: cnnn}\n")
    proc = run_cli("validate", path, cwd=tmp_path, check_code=2)
    assert proc.stderr.strip() == "spec.yaml:3: model.arch: unknown arch 'cnnn'; did you mean 'cnn'?"


def test_set_overrides_are_yaml_values_and_errors_point_at_the_argument():
    proc = run_cli("render", "experiments/digits.yaml", "--set", "train.lr.base=3e-4", "--set", "data.augment=[]",
                   "--set", "callbacks.early_stopping=null", check_code=0)
    rendered = yaml.safe_load(proc.stdout)
    assert rendered["train"]["lr"]["base"] == 3e-4
    assert rendered["data"]["augment"] == []
    assert rendered["callbacks"]["early_stopping"] is None
    assert rendered["callbacks"]["checkpoint"]["save_best"] is True  # unlisted callbacks keep defaults
    bad = run_cli("validate", "experiments/digits.yaml", "--set", "train.epochs=abc", check_code=2)
    assert bad.stderr.strip() == "--set train.epochs=abc: train.epochs: must be an integer; received 'abc'"


def test_extends_merges_deeply_and_this_file_wins(tmp_path):
    (tmp_path / "_base").mkdir()
    write_spec(tmp_path / "_base", "data: {source: sklearn, name: iris, batch_size: 8}\n"
                                   "model: {arch: mlp, units: [8]}\n", "tab.yaml")
    path = write_spec(tmp_path, "extends: _base/tab.yaml\nname: child\ndata: {batch_size: 4}\n")
    rendered = yaml.safe_load(run_cli("render", path, cwd=tmp_path, check_code=0).stdout)
    assert (rendered["data"]["name"], rendered["data"]["batch_size"], rendered["model"]["units"]) == ("iris", 4, [8])


def test_schema_is_json_with_every_top_level_key():
    schema = json.loads(run_cli("schema", check_code=0).stdout)
    assert set(schema["properties"]) >= {"name", "seed", "deterministic", "data", "model", "train", "callbacks",
                                         "distribute", "output"}


def test_validate_and_help_do_not_import_tensorflow():
    code = ("import sys; from runner.cli.main import main; main(['validate', 'experiments/digits.yaml']); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False False")


def test_missing_spec_file_is_a_config_error(tmp_path):
    proc = run_cli("validate", tmp_path / "nope.yaml", cwd=tmp_path, check_code=2)
    assert proc.stderr.strip() == "nope.yaml: file not found"


def test_no_verb_prints_help_and_usage_errors_exit_2():
    assert run_cli().returncode == 2
    assert run_cli("validate").returncode == 2


def test_debug_shows_the_traceback_of_a_dlrun_error_anywhere_on_the_line(tmp_path):
    for argv in (["validate", "nope.yaml", "--debug"], ["--debug", "validate", "nope.yaml"]):
        proc = run_cli(*argv, cwd=tmp_path, check_code=1)  # the exception propagates: Python's exit 1
        lines = proc.stderr.splitlines()
        assert lines[0] == "Traceback (most recent call last):"
        assert lines[-1] == "runner.kernel.errors.ConfigError: nope.yaml: file not found"


def test_a_run_leaves_no_autograph_files_in_tmpdir(tmp_path):
    # with bytecode caching on, as users have it, Python caches each generated module's bytecode beside it;
    # TensorFlow's exit handlers delete only the sources, so a few .pyc files a run piled up in TMPDIR/__pycache__
    spec = {"name": "iris-tmp", "seed": 1, "output": {"dir": str(tmp_path / "runs")},
            "data": {"source": "sklearn", "name": "iris", "batch_size": 16,
                     "splits": {"train": "[:60%]", "validation": "[60%:80%]", "test": "[80%:]"}},
            "model": {"arch": "mlp", "units": [8]}, "train": {"epochs": 2, "optimizer": "adam", "lr": 0.05}}
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run_cli("train", write_spec(tmp_path, spec), env={"TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": ""},
            check_code=0)
    assert sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if "autograph" in p.name) == []
