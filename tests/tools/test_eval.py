"""Eval reproduces the run's own numbers; model files load with Keras safe_mode, and a Lambda layer is refused."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import digits_spec, run_cli, write_spec

from runner.cli.main import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    tmp = tmp_path_factory.mktemp("eval")
    spec = digits_spec(tmp, callbacks={"tensorboard": None, "backup": None})
    cfg, _ = load_config(write_spec(tmp, spec))
    return run_experiment(cfg, rd.RunDir.at(tmp / "run")).run_dir.path


def test_eval_reproduces_the_test_accuracy_of_metrics_json(run, capsys):
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    folder = run / "eval" / "test-final"
    result = json.loads((folder / "metrics.json").read_text())
    expected = json.loads((run / "metrics.json").read_text())["test"]
    assert result["metrics"]["accuracy"] == expected["accuracy"]
    assert result["metrics"]["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert (result["split"], result["checkpoint"], result["model"], result["examples"]) == (
        "test", "final", "model.keras", 359)
    matrix = result["confusion_matrix"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 359
    assert sum(matrix[i][i] for i in range(10)) / 359 == pytest.approx(expected["accuracy"], abs=1e-7)
    assert [result["report"][str(c)]["support"] for c in range(10)] == [sum(row) for row in matrix]
    assert result["report"]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-7)
    assert (folder / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "report.txt").read_text().split()[:4] == ["precision", "recall", "f1-score", "support"]
    assert out.startswith("test split, 359 examples, model model.keras\n")
    assert f"written to {folder}" in out


def test_eval_of_the_best_checkpoint_on_validation_reproduces_the_best_epoch(run):
    from runner.tools.evaluate import evaluate_run
    from runner.tools.open_run import open_run

    best = json.loads((run / "metrics.json").read_text())["best"]
    assert best["monitor"] == "val_accuracy"
    result = evaluate_run(open_run(run), "validation", "best")
    assert result["metrics"]["accuracy"] == best["value"]
    assert result["model"] == "checkpoints/best.keras" and result["examples"] == 180
    assert (run / "eval" / "validation-best" / "confusion_matrix.png").is_file()


def test_a_split_the_run_does_not_have_is_a_usage_error(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("test: '[80%:]'", "test: null"))
    assert main(["eval", str(copy), "--split", "test"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"--split test: this run has no test split (data.splits.test is null in {config}); "
        "choose one of: train, validation")


def test_missing_model_files_say_what_to_do(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "model.keras"))
    assert main(["eval", str(copy), "--checkpoint", "best"]) == 2
    assert capsys.readouterr().err.strip() == (
        "--checkpoint best: this run has no checkpoints/best.keras (was callbacks.checkpoint off?); "
        "leave --checkpoint out to evaluate model.keras")
    assert main(["predict", str(copy), str(tmp_path / "x.npz")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{copy}: no model.keras: the run has not finished; `dlrun resume {copy}` finishes it, "
        "`dlrun eval --checkpoint last` evaluates its last epoch")


def test_not_a_run_directory(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{tmp_path}: not a run directory (no config.yaml); pass a folder that `dlrun train` wrote")
    # a k-fold parent (config.yaml, metrics.json, folds/fold-<k>/) has no model of its own: its folds are named
    parent = tmp_path / "parent"
    (parent / "folds" / "fold-1").mkdir(parents=True)
    (parent / "config.yaml").write_text("name: x\n")
    for verb in (["eval"], ["export", "--format", "onnx"]):
        assert main([*verb[:1], str(parent), *verb[1:]]) == 2
        assert capsys.readouterr().err.strip() == (
            f"{parent}: a k-fold parent, whose models are its folds'; pass one of them, such as "
            f"{parent}/folds/fold-1")


def test_a_lambda_layer_is_refused_and_nothing_from_it_runs(run, tmp_path, capsys):
    import keras

    marker = tmp_path / "executed"
    evil = tmp_path / "run"
    shutil.copytree(run, evil, ignore=shutil.ignore_patterns("eval"))
    inputs = keras.Input(shape=(8, 8, 1))
    # the path is a constant of the lambda's own code (Keras round-trips neither defaults nor closures well)
    touch = keras.layers.Lambda(eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"), name="touch")
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(touch(inputs)))).save(evil / "model.keras")
    marker.unlink()  # building the model above ran the function once, here, on purpose

    message = (f"{evil / 'model.keras'}: refused to load: the model holds Python code (Lambda layer 'touch') that "
               "Keras would have to execute to rebuild it, and a model file can carry arbitrary code (it could "
               "read or delete files, or run programs). Nothing from it was run. If you trust where this file came "
               "from, pass --unsafe to load it anyway")
    proc = run_cli("eval", evil)  # a fresh process, as a user meets it
    assert (proc.returncode, proc.stderr.strip().splitlines()[-1]) == (2, message), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not marker.exists()
    for verb in (["predict", str(evil), str(tmp_path / "x.npz")], ["export", str(evil), "--format", "keras"]):
        assert main(verb) == 2
        assert capsys.readouterr().err.strip() == message
        assert not marker.exists()

    # the override does what it says: the file's code runs when Keras rebuilds the model
    assert main(["eval", str(evil), "--unsafe"]) == 0
    assert marker.exists()
