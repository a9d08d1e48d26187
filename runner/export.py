"""`dlrun export` and the spec's `export:` list: the run's model as .keras, SavedModel, ONNX or LiteRT, each
file then read back by the runtime that serves it and compared with Keras on the run's own held-out data."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from runner import run_dir as rd
from runner.errors import ConfigError
from runner.evaluate import as_model_input
from runner.safe_load import Run, load_model

EXPORT = "export"
MANIFEST = "export.json"
CALIBRATION_EXAMPLES = 256  # INT8 ranges are calibrated on this many training examples
CHECK_EXAMPLES = 512  # held-out examples each export is compared on
TOLERANCE = 1e-4  # max |output difference| accepted for float exports
RUNTIMES = {"keras": "keras", "saved_model": "tensorflow", "onnx": "onnxruntime", "tflite": "ai-edge-litert"}


def artifact_name(fmt: str, quantize: str | None = None) -> str:
    names = {"keras": rd.MODEL, "saved_model": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite"}
    return names[fmt] if not quantize else f"model_{quantize}.tflite"


def _write_keras(run, model, path, quantize, calibration):
    rd.atomic_save(path, lambda tmp: shutil.copyfile(run.model_file(), tmp))  # the compiled, portable file as is


def _write_saved_model(run, model, path, quantize, calibration):
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        os.chmod(tmp, 0o777 & ~rd._UMASK)  # mkdtemp makes 0700; the folder gets the user's usual mode
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_onnx(run, model, path, quantize, calibration):
    model(as_model_input(calibration[:1]))  # tf2onnx traces a built call graph: the model must have been called once
    rd.atomic_save(path, lambda tmp: model.export(str(tmp), format="onnx", verbose=False))


def _write_tflite(run, model, path, quantize, calibration, full_integer: bool = True):
    import tensorflow as tf

    options = {}
    if quantize == "float16":
        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
    elif quantize == "int8" and full_integer:
        # weights AND activations in int8, activation ranges calibrated on training examples; inputs and
        # outputs stay float32 so the file still takes the raw inputs the source yields
        def representative():
            for x in calibration:
                yield [x[None]]

        options = {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative}
    elif quantize == "int8":  # dynamic range: int8 weights, activations quantized on the fly per batch
        options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    rd.atomic_save(path, lambda tmp: model.export(str(tmp), format="litert", verbose=False, **options))


WRITERS = {"keras": _write_keras, "saved_model": _write_saved_model, "onnx": _write_onnx, "tflite": _write_tflite}


def run_exported(fmt: str, path: Path, x):
    """Outputs of the exported file on inputs `x`, computed by the runtime that serves that format."""
    import numpy as np

    if fmt == "keras":
        return np.asarray(load_model(path).predict(as_model_input(x), verbose=0))
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # held: the concrete function only references its variables
        return loaded.serve(as_model_input(x)).numpy()
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))  # the file's batch dimension is 1 until resized
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]).copy()


def _check(fmt, quantize, path, x, y, expected, mode, from_logits, split) -> dict:
    """How far the runtime's outputs are from Keras's, and for classification both accuracies."""
    import numpy as np

    from runner.evaluate import predicted_classes

    got = run_exported(fmt, path, x)
    check = {"runtime": f"{RUNTIMES[fmt]} {metadata.version(RUNTIMES[fmt])}", "split": split, "examples": len(x),
             "max_abs_diff": float(np.max(np.abs(got.astype("float64") - expected))),
             "tolerance": None if quantize else TOLERANCE}
    if mode in ("sparse", "one_hot", "binary"):
        check["keras_accuracy"] = float(np.mean(predicted_classes(expected, mode, from_logits) == y))
        check["accuracy"] = float(np.mean(predicted_classes(got, mode, from_logits) == y))
    check["ok"] = check["max_abs_diff"] <= TOLERANCE if not quantize else (
        "accuracy" not in check or check["keras_accuracy"] - check["accuracy"] <= 0.01)
    return check


def export_run(run: Run, formats, quantize: str | None = None, out=None, unsafe: bool = False) -> list[dict]:
    """Export the run's final model in each format to `out` (default RUN_DIR/export/), check each, and record
    the checks in export.json there."""
    from runner.data.build import build_data
    from runner.training.losses import label_mode

    if quantize and set(formats) != {"tflite"}:
        raise ConfigError(f"--quantize {quantize}: quantization is for --format tflite only; "
                          f"received --format {', '.join(formats)}")
    cfg = run.cfg
    model = run.load_model("final", unsafe)
    data = build_data(cfg.data, cfg.seed)
    mode = label_mode(cfg.train.loss, data.info.task, bool(cfg.data.batch_augment))
    split = next(s for s in ("test", "validation", "train") if data.has(s))
    x, y = next(data.splits[split].batch(CHECK_EXAMPLES).as_numpy_iterator())
    calibration = next(data.splits["train"].batch(CALIBRATION_EXAMPLES).as_numpy_iterator())[0]
    expected = model.predict(as_model_input(x), batch_size=cfg.data.batch_size, verbose=0).astype("float64")

    out = Path(out) if out else run.path / EXPORT
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create this folder ({e.strerror})") from None
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    results = []
    for fmt in formats:
        path = out / artifact_name(fmt, quantize)
        entry = _export_one(run, model, fmt, quantize, path, calibration, (x, y, expected, mode, split))
        manifest[path.name] = {k: v for k, v in entry.items() if k != "path"}
        results.append(entry)
    rd.atomic_write(manifest_path, lambda f: json.dump(manifest, f, indent=2))
    return results


def _export_one(run, model, fmt, quantize, path, calibration, held_out) -> dict:
    """Write one format and check it; a converter or runtime that cannot take this model gives an "error"
    entry (and no file) instead of an exception, so the other formats still go out."""
    from runner.models import outputs_logits

    x, y, expected, mode, split = held_out
    entry = {"format": fmt, "quantize": quantize, "path": str(path)}
    stage = "export"
    try:
        WRITERS[fmt](run, model, path, quantize, calibration)
        stage = f"{RUNTIMES[fmt]} reading the exported file"
        check = _check(fmt, quantize, path, x, y, expected, mode, outputs_logits(model), split)
        entry.update(check)
        if quantize == "int8":
            entry.update(scheme="full_integer", calibration={"split": "train", "examples": len(calibration)})
            if not check["ok"]:
                # full-integer quantizes the raw input tensor with ONE scale: features of very different ranges
                # (unnormalized table columns) lose their precision; dynamic range keeps activations in float
                _write_tflite(run, model, path, quantize, calibration, full_integer=False)
                entry.update(_check(fmt, quantize, path, x, y, expected, mode, outputs_logits(model), split),
                             scheme="dynamic_range", full_integer_accuracy=check["accuracy"])
                entry.pop("calibration")
    except Exception as e:  # noqa: BLE001 -- whatever the converter or runtime raises, the format cannot serve it
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        hint = ("; the model takes text, and its text preprocessing needs TensorFlow string ops, which only the "
                "keras and saved_model formats carry") if model.inputs[0].dtype == "string" else ""
        what = f"--format {fmt}" + (f" --quantize {quantize}" if quantize else "")
        entry.update(ok=False, error=f"{what}: {stage} failed ({type(e).__name__}: {first}){hint}; no file kept")
    return entry


def raise_failures(results: list[dict]) -> None:
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise ConfigError(errors)


def format_results(results: list[dict]) -> str:
    lines = []
    for r in (r for r in results if "error" not in r):
        line = (f"{r['path']}: {r['runtime']} vs Keras on {r['examples']} {r['split']} examples: "
                f"max |diff| {r['max_abs_diff']:.2e}")
        if "accuracy" in r:
            line += f", accuracy {r['accuracy']:.4f} (Keras {r['keras_accuracy']:.4f})"
        if r.get("scheme") == "dynamic_range":
            line += (f"; dynamic-range INT8, since full-integer INT8 lost more than one point "
                     f"(accuracy {r['full_integer_accuracy']:.4f})")
        lines.append(line + ("" if r["ok"] else "  WARNING: outside the expected tolerance"))
    return "\n".join(lines)
