"""A newcomer's first hour (issue 20): each surprise met as a new user, through the CLI, with its exact message."""

from __future__ import annotations

import json
import os

import yaml

from helpers import ROOT, digits_spec, run_cli, run_inline, write_spec
from runner.cli.main import main


def _validate(capsys, path, *sets) -> tuple[int, list[str]]:
    code = main(["validate", str(path), *(a for s in sets for a in ("--set", s))])
    captured = capsys.readouterr()
    return code, (captured.err or captured.out).splitlines()


def _line(path, key: str, after: str = "") -> int:
    """The 1-based line of `key:` in a spec file, searching from the line of `after:`."""
    lines = path.read_text().splitlines()
    start = _line(path, after) if after else 0
    return next(i for i, text in enumerate(lines[start:], start + 1)
                if text.strip() == key or text.strip().startswith(f"{key}:"))


# 1. a `splits` map is the whole set

def test_a_splits_map_without_validation_has_none(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs")
    spec["data"]["splits"] = {"train": "[:80%]", "test": "[80%:]"}
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (0, [f"{path}: ok"])
    rendered = yaml.safe_load(run_cli("render", path, check_code=0).stdout)
    assert rendered["data"]["splits"] == {"train": "[:80%]", "validation": None, "test": "[80%:]"}
    # the design's own --set example, on a recipe without a val_* monitor
    iris = ROOT / "experiments" / "iris.yaml"
    assert _validate(capsys, iris, 'data.splits={train: "[:50%]", test: "[50%:]"}',
                     "callbacks.early_stopping.monitor=loss") == (0, [f"{iris}: ok"])
    # with k-fold, each fold's held-out part is its validation split
    assert _validate(capsys, iris, 'data.splits={train: "[:80%]", test: "[80%:]"}', "data.kfold={k: 3}") == (
        0, [f"{iris}: ok"])


def test_a_val_monitor_without_a_validation_split_is_still_refused(tmp_path, capsys):
    digits = ROOT / "experiments" / "digits.yaml"
    code, lines = _validate(capsys, digits, 'data.splits={train: "[:50%]", test: "[50%:]"}')
    assert (code, lines) == (2, [
        f"{os.path.relpath(digits)}:{_line(digits, 'early_stopping')}: callbacks.early_stopping.monitor: 'val_loss' needs a "
        "validation split, and data.splits.validation is null; monitor 'loss' or add a validation split"])
    spec = digits_spec(tmp_path / "runs")
    spec["data"]["splits"] = {"train": "[:80%]", "validation": None, "test": "[80%:]"}
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (0, [f"{path}: ok"])


def test_training_without_validation_monitors_the_training_loss(tmp_path):
    spec = digits_spec(tmp_path / "runs", model={"arch": "mlp", "units": [16]})
    spec["data"]["splits"] = {"train": "[:30%]", "test": "[80%:]"}
    spec["train"]["epochs"] = 2
    run_dir = tmp_path / "run"
    run_inline("train", write_spec(tmp_path, spec), "--run-dir", run_dir, check_code=0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["best"]["monitor"] == "loss"
    assert "validation" not in metrics and set(metrics["test"]) == {"loss", "accuracy"}


# 2. a sweep blames no sampled value for the base spec's own error

def test_a_sweep_reports_the_base_specs_own_error_at_its_line(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs")
    spec["train"] = {"epochs": 2, "lr": {"schedule": "cosine", "base": 0.003, "warmup_epochs": 2}}
    spec["sweep"] = {"method": "random", "trials": 2, "metric": "val_accuracy",
                     "params": {"train.lr.base": {"loguniform": [1.0e-4, 1.0e-1]},
                                "model.filters": {"choice": [[8], [-1]]}}}
    path = write_spec(tmp_path, spec)
    code, lines = _validate(capsys, path)
    assert (code, lines) == (2, [
        f"{os.path.relpath(path)}:{_line(path, 'warmup_epochs')}: train.lr.warmup_epochs: warm-up must be shorter than training "
        "(2 epochs); received 2.0",
        f"{os.path.relpath(path)}:{_line(path, 'model.filters')}: sweep.params.model.filters: value [-1] is rejected: "
        "model.filters[0]: must be >= 1; received -1"])


# 3. options an arch would ignore are refused, naming the archs that take them

def test_options_an_arch_ignores_are_refused(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs", model={"arch": "transformer", "vocab_size": None, "batchnorm": True})
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (2, [
        f"{os.path.relpath(path)}:{_line(path, 'batchnorm')}: model.batchnorm: 'transformer' takes no batchnorm; "
        "it applies to cnn, mlp, mobilenet, resnet, resnet9, unet only"])
    spec["model"] = {"arch": "lstm", "batchnorm": True}
    assert _validate(capsys, write_spec(tmp_path, spec))[1][0].endswith(
        "model.batchnorm: 'lstm' takes no batchnorm; it applies to cnn, mlp, mobilenet, resnet, resnet9, unet only")
    spec["model"] = {"arch": "keras_app", "name": "MobileNetV2", "activation": "relu", "batchnorm": False}
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (2, [
        f"{os.path.relpath(path)}:{_line(path, 'activation')}: model.activation: 'keras_app' takes no activation; "
        "it applies to cnn, mlp, mobilenet, resnet, resnet9, bilstm, gru, lstm, transformer, unet only",
        f"{os.path.relpath(path)}:{_line(path, 'batchnorm')}: model.batchnorm: 'keras_app' takes no batchnorm; "
        "it applies to cnn, mlp, mobilenet, resnet, resnet9, unet only"])


def test_the_arch_registry_knows_which_shared_options_each_arch_takes():
    from runner.models import ARCHS

    takes = {e.name: set(e.options) for e in ARCHS.entries() if e.name != "layers"}
    common = {"kernel_initializer", "kernel_regularizer", "dropout"}
    assert takes == {**{a: common | {"activation", "batchnorm"} for a in
                        ("cnn", "mlp", "mobilenet", "resnet", "resnet9", "unet")},
                     **{a: common | {"activation"} for a in ("lstm", "gru", "bilstm", "transformer")},
                     "keras_app": common}


# 4. rules once found only when training started are reported by `dlrun validate` with file:line

def test_rules_found_at_run_time_before_are_reported_by_validate(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs", callbacks={"reduce_on_plateau": {"patience": 2}})
    spec["train"]["lr"] = {"schedule": "cosine", "base": 0.01}
    path = write_spec(tmp_path, spec)
    shown = os.path.relpath(path)
    assert _validate(capsys, path) == (2, [
        f"{shown}:{_line(path, 'reduce_on_plateau')}: callbacks.reduce_on_plateau: needs train.lr.schedule: "
        "constant without warm-up (a schedule already sets the rate at every step); received schedule cosine, "
        "warmup_epochs 0.0; set train.lr to a number or remove callbacks.reduce_on_plateau"])

    spec = digits_spec(tmp_path / "runs", model={"arch": "keras_app", "name": "Resnet50"})
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (2, [
        f"{shown}:{_line(path, 'name', after='model')}: model.name: unknown keras.applications model 'Resnet50'; "
        "did you mean 'ResNet50'?"])

    spec = digits_spec(tmp_path / "runs", distribute={"strategy": "mirrored", "cpu_replicas": 2})
    spec["data"] = {"source": "sklearn", "name": "diabetes", "batch_size": 32}
    spec["model"] = {"arch": "mlp"}
    spec["train"].update(class_weight="balanced", steps_per_execution=4)
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (2, [
        f"{shown}:{_line(path, 'class_weight')}: train.class_weight: only classification and segmentation take class "
        "weights; "
        "this data is a regression task. Remove train.class_weight",
        f"{shown}:{_line(path, 'steps_per_execution')}: train.steps_per_execution: Keras 3.15 fails with more "
        "than one step per execution under 2 replicas (\"You must feed a value for placeholder tensor\"); "
        "received 4; use 1 or auto"])


def test_colour_augmentations_on_data_the_spec_says_is_not_rgb_are_refused_by_validate(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs")
    spec["data"]["augment"] = ["random_flip", "random_hue"]
    path = write_spec(tmp_path, spec)
    assert _validate(capsys, path) == (2, [
        f"{os.path.relpath(path)}:{_line(path, '- random_hue')}: data.augment[1].random_hue: needs RGB images "
        "(3 channels); sklearn's digits are 8x8x1 grayscale images"])


def test_the_keras_app_names_are_those_of_the_installed_keras():
    import keras

    from runner.models.keras_app import APPLICATIONS

    assert list(APPLICATIONS) == sorted(n for n in dir(keras.applications) if n[:1].isupper())


# 7. litert is the export format's name, tflite its alias

def test_litert_is_the_export_format_and_tflite_its_alias(tmp_path, capsys):
    from runner.artifacts.export_formats import EXPORT_FORMATS
    from runner.kernel import run_dir as rd

    assert EXPORT_FORMATS.names() == ["keras", "saved_model", "onnx", "litert"] == list(rd.EXPORT_FILES)
    missing = tmp_path / "no-run"
    for name in ("litert", "tflite"):  # argparse takes both; the run directory is what is missing
        assert main(["export", str(missing), "--format", name]) == 2
        assert capsys.readouterr().err.strip() == f"{missing}: no such run directory"
    spec = digits_spec(tmp_path / "runs", export=["tflite", "onnx"])
    rendered = yaml.safe_load(run_cli("render", write_spec(tmp_path, spec), check_code=0).stdout)
    assert rendered["export"] == ["litert", "onnx"]


# 6 and 8. `dlrun compare` readable, `compare --json` whole; ls and compare show train_s and wall_s

def _run_dir(root, stamp: str, config: str, status: dict, metrics: dict | None = None):
    path = root / "digits-cnn" / stamp
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(config)
    (path / "status.json").write_text(json.dumps(status))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))
    return path


LAYERS = [{"Conv2D": {"filters": 32, "kernel_size": 3, "activation": "relu"}}, {"Flatten": {}},
          {"Dense": {"units": 10}}]


def test_ls_and_compare_are_readable_and_show_train_and_wall_time(tmp_path):
    root = tmp_path / "runs"
    a = _run_dir(root, "20261201-100000-aaaaaa", yaml.safe_dump(
        {"name": "digits-cnn", "model": {"arch": "layers", "layers": LAYERS}, "train": {"lr": 0.1}}, sort_keys=False),
        {"state": "completed", "epoch": 3},
        {"epochs_run": 3, "best": {"monitor": "val_loss", "value": 0.25, "epoch": 2},
         "test": {"loss": 0.3, "accuracy": 0.91}, "throughput": {"examples_per_sec": 1234.5},
         "train_s": 15.49, "wall_s": 28.53})
    b = _run_dir(root, "20261201-110000-bbbbbb", yaml.safe_dump(
        {"name": "digits-cnn", "model": {"arch": "mlp"}, "train": {"lr": 0.2}}), {"state": "failed", "epoch": 0})
    assert run_cli("ls", root, check_code=0).stdout.splitlines() == [
        "run                                name        state      epochs  best           test                    "
        "train_s  wall_s",
        "digits-cnn/20261201-110000-bbbbbb  digits-cnn  failed     0       -              -                       "
        "-        -",
        "digits-cnn/20261201-100000-aaaaaa  digits-cnn  completed  3       val_loss=0.25  loss=0.3 accuracy=0.91  "
        "15.5     28.5"]
    assert run_cli("compare", a, b, check_code=0).stdout.splitlines() == [
        "config differences:",
        "              digits-cnn/20261201-100000                digits-cnn/20261201-110000",
        "model.arch    layers                                    mlp",
        'model.layers  [{"Conv2D": {"filters": 32, "kernel_s...  <unset>',
        "train.lr      0.1                                       0.2",
        "",
        "metrics:",
        "               digits-cnn/20261201-100000  digits-cnn/20261201-110000",
        "state          completed                   failed",
        "epochs         3                           0",
        "best val_loss  0.25                        -",
        "test loss      0.3                         -",
        "test accuracy  0.91                        -",
        "examples/s     1234                        -",
        "train_s        15.5                        -",
        "wall_s         28.5                        -",
        "",
        "runs:",
        f"  digits-cnn/20261201-100000  {a}",
        f"  digits-cnn/20261201-110000  {b}",
        "(values over 40 characters are cut: `dlrun compare --json` prints them whole)"]
    assert json.loads(run_cli("compare", "--json", a, b, check_code=0).stdout) == {
        "runs": [{"label": "digits-cnn/20261201-100000", "run_dir": str(a)},
                 {"label": "digits-cnn/20261201-110000", "run_dir": str(b)}],
        "config": {"model.arch": ["layers", "mlp"], "model.layers": [LAYERS, "<unset>"], "train.lr": [0.1, 0.2]},
        "metrics": {"state": ["completed", "failed"], "epochs": [3, 0], "best val_loss": [0.25, None],
                    "test loss": [0.3, None], "test accuracy": [0.91, None], "examples/s": [1234.5, None],
                    "train_s": [15.49, None], "wall_s": [28.53, None]}}


def test_compare_labels_runs_of_the_same_second_by_their_whole_directory(tmp_path):
    from runner.tools.runs import read_run, run_labels

    config = yaml.safe_dump({"name": "digits-cnn"})
    a = _run_dir(tmp_path, "20261201-100000-aaaaaa", config, {"state": "completed"})
    b = _run_dir(tmp_path, "20261201-100000-bbbbbb", config, {"state": "completed"})
    c = _run_dir(tmp_path, "custom", config, {"state": "completed"})
    assert run_labels([read_run(p) for p in (a, b, c)]) == [
        "digits-cnn/20261201-100000-aaaaaa", "digits-cnn/20261201-100000-bbbbbb", "digits-cnn/custom"]


# issue 14, item 4: every list is derived from the registries

def test_schema_descriptions_and_monitor_modes_derive_from_the_registries():
    from runner.callbacks.registry import monitor_mode
    from runner.spec.schema import json_schema
    from runner.training.losses import LOSSES
    from runner.training.metrics import METRICS
    from runner.training.optimizers import OPTIMIZERS
    from runner.training.schedules import SCHEDULES

    train = json_schema()["$defs"]["Train"]["properties"]
    assert train["lr"]["description"] == (
        "{schedule: constant|cosine|exponential|step|one_cycle|cosine_restarts, base: ..., warmup_epochs: ...}, "
        "or a number (constant)")
    assert train["lr"]["description"].count("|") == len(SCHEDULES.names()) - 1
    assert all(name in train["optimizer"]["description"] for name in OPTIMIZERS.names())
    assert all(name in train["loss"]["description"] for name in LOSSES.names())
    assert train["metrics"]["description"] == (
        "accuracy, top5_accuracy, precision, recall, f1, auc, mae, mse, rmse, pixel_accuracy, mean_iou, dice; default "
        "accuracy (classification), mae (regression), mean_iou and pixel_accuracy (segmentation)")
    assert {m: monitor_mode(f"val_{m}") for m in METRICS.names()} == {
        "accuracy": "max", "top5_accuracy": "max", "precision": "max", "recall": "max", "f1": "max", "auc": "max",
        "mae": "min", "mse": "min", "rmse": "min", "pixel_accuracy": "max", "mean_iou": "max", "dice": "max"}
    assert monitor_mode("loss") == "min"
    assert {e.name: e.tasks for e in LOSSES.entries()} == {
        "auto": ("classification", "regression", "segmentation"), **{n: ("classification", "segmentation") for n in (
            "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "focal")},
        **{n: ("regression",) for n in ("mse", "mae", "huber")}, "dice": ("segmentation",),
        "bce_dice": ("segmentation",)}


def test_image_augmentations_on_a_table_are_refused_by_validate(tmp_path, capsys):
    spec = digits_spec(tmp_path / "runs", data={"source": "sklearn", "name": "iris",
                                                "augment": ["random_flip"], "batch_augment": [{"mixup": {}}]},
                       model={"arch": "mlp"})
    path = write_spec(tmp_path, spec)
    shown = os.path.relpath(path)
    assert _validate(capsys, path) == (2, [
        f"{shown}:{_line(path, '- random_flip')}: data.augment[0]: image augmentations need images; sklearn's iris "
        "is a table of features. Remove data.augment",
        f"{shown}:{_line(path, 'batch_augment')}: data.batch_augment: mixup and cutmix mix images; sklearn's iris "
        "is a table of features. Remove data.batch_augment"])
