"""Export: each format read back by the runtime that serves it and compared with Keras on the digits test split."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import digits_spec, write_spec

from runner.cli.main import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small digits CNN, trained once, with `export: [onnx]` in its spec."""
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    tmp = tmp_path_factory.mktemp("export")
    spec = digits_spec(tmp, model={"arch": "cnn", "filters": [16, 32], "dense": [64]}, export=["onnx"],
                       callbacks={"tensorboard": None, "checkpoint": None, "backup": None})
    spec["train"]["epochs"] = 5
    cfg, _ = load_config(write_spec(tmp, spec))
    return run_experiment(cfg, rd.RunDir.at(tmp / "run")).run_dir.path


@pytest.fixture(scope="module")
def test_split(run):
    """(x, y, Keras outputs) on the run's test split, rebuilt from its config.yaml."""
    import keras

    from runner.data.build import build_data
    from runner.tools.evaluate import split_arrays
    from runner.tools.open_run import open_run

    opened = open_run(run)
    x, y = split_arrays(build_data(opened.cfg.data, opened.cfg.seed), "test", 64)
    model = keras.saving.load_model(run / "model.keras")
    return x, y, model.predict(x, verbose=0)


def litert_outputs(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]), interpreter


def test_spec_export_runs_after_training_and_onnx_runtime_matches_keras(run, test_split):
    import onnxruntime as ort

    x, _, expected = test_split
    assert x.shape == (359, 8, 8, 1)
    session = ort.InferenceSession(str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert got.shape == (359, 10)
    assert np.max(np.abs(got - expected)) <= 1e-4
    manifest = json.loads((run / "export" / "export.json").read_text())
    assert manifest["model.onnx"]["runtime"].startswith("onnxruntime ")
    assert manifest["model.onnx"]["examples"] == 359 and manifest["model.onnx"]["ok"] is True


def test_litert_float_matches_and_int8_is_full_integer_within_one_point(run, test_split, tmp_path, capsys):
    from runner.artifacts.export_formats import predicted_classes

    x, y, expected = test_split
    assert main(["export", str(run), "--format", "litert", "--out", str(tmp_path)]) == 0
    # tflite is the alias of litert
    assert main(["export", str(run), "--format", "tflite", "--quantize", "int8", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path}/model.tflite: ai-edge-litert " in out and f"{tmp_path}/model_int8.tflite: " in out

    got, _ = litert_outputs(tmp_path / "model.tflite", x)
    assert np.max(np.abs(got - expected)) <= 1e-4

    got8, interpreter = litert_outputs(tmp_path / "model_int8.tflite", x)
    # raw float inputs in, float logits out; int8 weights and activations inside
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    kinds = {d["name"]: d["dtype"] for d in interpreter.get_tensor_details()}
    assert any("conv" in name and dtype == np.int8 for name, dtype in kinds.items())
    keras_acc = np.mean(predicted_classes(expected, "sparse", True) == y)
    int8_acc = np.mean(predicted_classes(got8, "sparse", True) == y)
    assert keras_acc >= 0.9
    assert int8_acc >= keras_acc - 0.01
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["model_int8.tflite"]["calibration"] == {"split": "train", "examples": 256}
    assert manifest["model_int8.tflite"]["scheme"] == "full_integer"
    assert set(manifest) == {"model.tflite", "model_int8.tflite"}


SERVE = """
import sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
np.save(sys.argv[3], loaded.serve(np.load(sys.argv[2])).numpy())
"""


def test_saved_model_gives_the_same_predictions_in_a_fresh_process(run, test_split, tmp_path):
    x, _, expected = test_split
    assert main(["export", str(run), "--format", "saved_model", "--out", str(tmp_path)]) == 0
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "saved_model"), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.load(tmp_path / "y.npy")
    assert np.array_equal(got.argmax(-1), expected.argmax(-1))
    assert np.max(np.abs(got - expected)) <= 1e-5


def test_keras_export_copies_the_portable_model_file(run, tmp_path):
    assert main(["export", str(run), "--format", "keras", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "model.keras").read_bytes() == (run / "model.keras").read_bytes()


def test_quantize_takes_the_modes_each_format_serves(run, tmp_path, capsys):
    assert main(["export", str(run), "--format", "onnx", "--quantize", "float16", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "--quantize float16: float16 quantization is for --format litert only; received --format onnx")
    assert main(["export", str(run), "--format", "keras", "--quantize", "int8", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "--quantize int8: int8 quantization is for --format onnx or litert only; received --format keras")
    assert not (tmp_path / "model.onnx").exists()


def test_unknown_export_format_in_the_spec_is_a_config_error(tmp_path):
    from runner.spec import load_config
    from runner.kernel.errors import ConfigError

    path = write_spec(tmp_path, {**digits_spec(tmp_path), "export": ["onx"]})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    line = path.read_text().splitlines().index("- onx") + 1
    assert err.value.message.endswith(f"spec.yaml:{line}: export[0]: must be one of keras, saved_model, onnx, "
                                      "litert, tflite; received 'onx'; did you mean 'onnx'?")


def test_int8_falls_back_to_dynamic_range_when_full_integer_loses_accuracy(tmp_path):
    """Unnormalized table columns (0.05 .. 2500) share one input scale under full-integer INT8, and lose."""
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.data.build import build_data
    from runner.tools.evaluate import split_arrays
    from runner.tools.export import export_run
    from runner.run.experiment import run_experiment
    from runner.tools.open_run import open_run

    spec = {"name": "cancer", "seed": 1, "output": {"dir": str(tmp_path)}, "callbacks": {"tensorboard": None},
            "data": {"source": "sklearn", "name": "breast_cancer", "batch_size": 32, "preprocess": ["normalize"]},
            "model": {"arch": "mlp", "units": [16]}, "train": {"epochs": 3, "loss": "binary_crossentropy"}}
    cfg, _ = load_config(write_spec(tmp_path, spec))
    path = run_experiment(cfg, rd.RunDir.at(tmp_path / "run")).run_dir.path
    [result] = export_run(open_run(path), ["tflite"], "int8")
    assert result["scheme"] == "dynamic_range" and "calibration" not in result
    assert result["full_integer_accuracy"] < result["keras_accuracy"] - 0.01
    assert result["accuracy"] >= result["keras_accuracy"] - 0.01 and result["ok"] is True
    x, y = split_arrays(build_data(cfg.data, cfg.seed), "test", 32)
    got, _ = litert_outputs(path / "export" / "model_int8.tflite", x)
    assert got.shape == (57, 1)  # one logit: binary_crossentropy
    assert np.mean((got[:, 0] > 0) == y) == pytest.approx(result["accuracy"])


def test_a_format_that_cannot_carry_the_model_is_refused_and_the_others_still_go_out(tmp_path, capsys):
    """Text preprocessing needs TensorFlow string ops: SavedModel carries them, ONNX Runtime cannot load them."""
    from helpers import write_text_folder

    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    spec = {"name": "reviews", "seed": 1, "output": {"dir": str(tmp_path)}, "export": ["onnx", "saved_model"],
            "callbacks": {"tensorboard": None, "checkpoint": None, "backup": None},
            "data": {"source": "text_folder", "path": str(write_text_folder(tmp_path / "reviews")), "batch_size": 16,
                     "preprocess": [{"text_vectorize": {"max_tokens": 50, "sequence_length": 8}}]},
            "model": {"layers": [{"Embedding": {"input_dim": 50, "output_dim": 8}}, {"GlobalAveragePooling1D": {}},
                                 {"Dense": {"units": 2}}]},
            "train": {"epochs": 2}}
    cfg, _ = load_config(write_spec(tmp_path, spec))
    run = run_experiment(cfg, rd.RunDir.at(tmp_path / "run")).run_dir.path
    warning = capsys.readouterr().err.strip().splitlines()[-1]
    assert warning.startswith("warning: --format onnx: onnxruntime reading the exported file failed (")
    assert warning.endswith("; the model takes text, and its text preprocessing needs TensorFlow string ops, "
                            "which only the keras and saved_model formats carry; no file kept")
    assert sorted(p.name for p in (run / "export").iterdir()) == ["export.json", "saved_model"]
    manifest = json.loads((run / "export" / "export.json").read_text())
    assert manifest["saved_model"]["ok"] is True and manifest["saved_model"]["max_abs_diff"] == 0.0
    assert manifest["model.onnx"]["ok"] is False and f"warning: {manifest['model.onnx']['error']}" == warning
    assert json.loads((run / "status.json").read_text())["state"] == "completed"

    assert main(["export", str(run), "--format", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == warning.removeprefix("warning: ")
