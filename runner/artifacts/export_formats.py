"""Export formats: a model as .keras, SavedModel, ONNX or LiteRT, each file read back by the runtime that serves
it and compared with Keras on held-out data."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runner.artifacts.deployment import figures
from runner.kernel import run_dir as rd
from runner.kernel.native_log import native_log
from runner.kernel.registry import Registry, unknown_name_message

# shutil, tempfile and importlib.metadata are imported where used: `dlrun --help` and `dlrun validate` import this
# module for its format names only

CALIBRATION_EXAMPLES = 256  # INT8 ranges are calibrated on this many training examples
CHECK_EXAMPLES = 512  # held-out examples each export is compared on
TOLERANCE = 1e-4  # max |output difference| accepted for float exports
# quantized segmentation exports: the share of pixels whose class must match Keras's (the one point of accuracy
# that quantized classifiers may lose, per pixel)
PIXEL_AGREEMENT = 0.99
QUANTIZE = ("int8", "float16")

# name -> writer, with the facts: the runtime that reads the file back (a pip distribution), the reader, the
# other names it answers to, the quantizations it offers, and the one-line description
EXPORT_FORMATS = Registry("export format")


def artifact_name(fmt: str, quantize: str | None = None) -> str:
    return rd.EXPORT_FILES[fmt] if not quantize else rd.quantized_export(quantize, fmt)


def _write_keras(source, model, path, quantize, calibration):
    import shutil

    rd.atomic_save(path, lambda tmp: shutil.copyfile(source, tmp))  # the compiled, portable file as is


def _write_saved_model(source, model, path, quantize, calibration):
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        os.chmod(tmp, 0o777 & ~rd.UMASK)  # mkdtemp makes 0700; the folder gets the user's usual mode
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_onnx(source, model, path, quantize, calibration):
    _constant_normalization(model)
    # tf2onnx traces a built call graph: the model must have been called once
    model(as_model_input(_first(calibration)))
    rd.atomic_save(path, lambda tmp: model.export(str(tmp), format="onnx", verbose=False))
    if quantize == "int8":  # onnxruntime's dynamic int8 (int8 weights, activations per call)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        rd.atomic_save(path, lambda tmp: quantize_dynamic(path, tmp, weight_type=QuantType.QInt8))


def _constant_normalization(model) -> None:
    """Normalization's mean and variance as numpy arrays: tf2onnx leaves the tensors a traced call captures as
    graph inputs nobody feeds (onnxruntime: "Required inputs (['.../normalize/Sub/y:0', ...]) are missing"),
    while arrays are traced as constants inside the graph."""
    import keras
    import numpy as np

    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Normalization) and layer.mean is not None:
            layer.mean, layer.variance = np.asarray(layer.mean), np.asarray(layer.variance)


def _write_litert(source, model, path, quantize, calibration, full_integer: bool = True):
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
    with native_log():  # the converter's quantizer prints its settings ("fully_quantize: 0, ...") from C++
        rd.atomic_save(path, lambda tmp: model.export(str(tmp), format="litert", verbose=False, **options))


def _read_keras(path, x):
    import numpy as np

    return np.asarray(_load_keras(path).predict(as_model_input(x), verbose=0))


def _read_saved_model(path, x):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held: the concrete function only references its variables
    return loaded.serve(as_model_input(x)).numpy()


def _read_onnx(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {inp.name: v for inp, v in zip(session.get_inputs(), _listed(x))})[0]


def _read_litert(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    # the file's inputs come in the Keras model's order (a conditional generator: noise, then label), as ONNX's do;
    # every export is checked against Keras's outputs, so a file that took them otherwise would fail its check
    fed = list(zip(interpreter.get_input_details(), _listed(x)))
    for inp, v in fed:
        interpreter.resize_tensor_input(inp["index"], list(v.shape))  # the file's batch dimension is 1 until resized
    with native_log():  # the process's first allocation logs the XNNPACK delegate it creates
        interpreter.allocate_tensors()
    for inp, v in fed:
        interpreter.set_tensor(inp["index"], v.astype(inp["dtype"]))
    out = interpreter.get_output_details()[0]
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]).copy()


EXPORT_FORMATS.register("keras", runtime="keras", read=_read_keras, aliases=(), quantizes=(),
                        description="the compiled model.keras, loadable without dlrun")(_write_keras)
EXPORT_FORMATS.register("saved_model", runtime="tensorflow", read=_read_saved_model, aliases=(), quantizes=(),
                        description="a TensorFlow SavedModel with a `serve` signature (TF Serving)")(_write_saved_model)
EXPORT_FORMATS.register("onnx", runtime="onnxruntime", read=_read_onnx, aliases=(), quantizes=("int8",),
                        description="ONNX, read back by ONNX Runtime")(_write_onnx)
EXPORT_FORMATS.register("litert", runtime="ai-edge-litert", read=_read_litert, aliases=("tflite",),
                        quantizes=("int8", "float16"),
                        description="LiteRT (formerly TensorFlow Lite) flatbuffer, optionally quantized; "
                                    "alias tflite")(_write_litert)
ALIASES = {alias: e.name for e in EXPORT_FORMATS.entries() for alias in e.aliases}


def format_choices() -> list[str]:
    """Every name a user may write: the formats, then their aliases."""
    return [*EXPORT_FORMATS.names(), *ALIASES]


def format_name(name: str) -> str:
    """The format a name or alias stands for (`tflite` -> `litert`); KeyError naming the choices otherwise."""
    name = ALIASES.get(name, name)
    if name not in EXPORT_FORMATS:
        raise KeyError(unknown_name_message("export format", name, format_choices()))
    return name


def run_exported(fmt: str, path: Path, x):
    """Outputs of the exported file on inputs `x`, computed by the runtime that serves that format."""
    return EXPORT_FORMATS.get(fmt).read(path, x)


def _check(fmt, quantize, path, x, y, expected, mode, from_logits, split, export_check) -> dict:
    """How far the runtime's outputs are from Keras's, plus the task's figures (classification: both accuracies;
    segmentation: the share of pixels given the same class)."""
    from importlib import metadata

    import numpy as np

    got = run_exported(fmt, path, x)
    runtime = EXPORT_FORMATS.get(fmt).runtime
    check = {"runtime": f"{runtime} {metadata.version(runtime)}", "split": split, "examples": len(x),
             "max_abs_diff": float(np.max(np.abs(got.astype("float64") - expected))),
             "tolerance": None if quantize else TOLERANCE}
    check.update(export_check(expected, got, y, mode, from_logits))
    if quantize:
        check["ok"] = ("accuracy" not in check or check["keras_accuracy"] - check["accuracy"] <= 0.01) and (
            check.get("pixel_agreement", 1.0) >= PIXEL_AGREEMENT)
    else:
        check["ok"] = check["max_abs_diff"] <= TOLERANCE
    return check


def export_model(model, source: Path, data, formats, out: Path, mode: str, batch_size: int, export_check,
                 quantize: str | None = None) -> list[dict]:
    """Export `model` (saved at `source`) in each format to `out`, check each file with its runtime on the
    first held-out split of `data` (`export_check`: the task's figures), and record the checks in
    out/export.json."""
    split = next(s for s in ("test", "validation", "train") if data.has(s))
    x, y = next(data.splits[split].batch(CHECK_EXAMPLES).as_numpy_iterator())
    calibration = next(data.splits["train"].batch(CALIBRATION_EXAMPLES).as_numpy_iterator())[0]
    expected = model.predict(as_model_input(x), batch_size=batch_size, verbose=0).astype("float64")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / rd.EXPORT_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    results = []
    for fmt in formats:
        path = out / artifact_name(fmt, quantize)
        entry = _export_one(source, model, fmt, quantize, path, calibration,
                            (x, y, expected, mode, split, export_check))
        manifest[path.name] = {k: v for k, v in entry.items() if k != "path"}
        results.append(entry)
    rd.atomic_write(manifest_path, lambda f: json.dump(manifest, f, indent=2))
    return results


def _export_one(source, model, fmt, quantize, path, calibration, held_out) -> dict:
    """Write one format and check it; a converter or runtime that cannot take this model gives an "error"
    entry (and no file) instead of an exception, so the other formats still go out."""
    from runner.models import outputs_logits

    x, y, expected, mode, split, export_check = held_out
    entry = {"format": fmt, "quantize": quantize, "path": str(path)}
    stage = "export"
    try:
        EXPORT_FORMATS.get(fmt).builder(source, model, path, quantize, calibration)
        stage = f"{EXPORT_FORMATS.get(fmt).runtime} reading the exported file"
        check = _check(fmt, quantize, path, x, y, expected, mode, outputs_logits(model), split, export_check)
        entry.update(check)
        if quantize == "int8" and fmt == "onnx":
            entry.update(scheme="dynamic_range")
        elif quantize == "int8":
            entry.update(scheme="full_integer", calibration={"split": "train", "examples": len(calibration)})
            if not check["ok"]:
                # full-integer quantizes the raw input tensor with ONE scale: features of very different ranges
                # (unnormalized table columns) lose their precision; dynamic range keeps activations in float
                _write_litert(source, model, path, quantize, calibration, full_integer=False)
                entry.update(_check(fmt, quantize, path, x, y, expected, mode, outputs_logits(model), split,
                                    export_check), scheme="dynamic_range",
                             **{f"full_integer_{k}": check[k] for k in ("accuracy", "pixel_agreement") if k in check})
                entry.pop("calibration")
        entry.update(figures(fmt, path, x))  # sizes and per-example latency
    except Exception as e:  # noqa: BLE001 -- whatever the converter or runtime raises, the format cannot serve it
        if path.is_dir():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        hint = ("; the model takes text, and its text preprocessing needs TensorFlow string ops, which only the "
                "keras and saved_model formats carry") if model.inputs[0].dtype == "string" else ""
        what = f"--format {fmt}" + (f" --quantize {quantize}" if quantize else "")
        entry.update(ok=False, error=f"{what}: {stage} failed ({type(e).__name__}: {first}){hint}; no file kept")
    return entry


def _listed(x) -> list:
    """The arrays of each model input, in the model's order: a model of several inputs takes a list."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _first(x):
    """The first example of each input."""
    return [v[:1] for v in x] if isinstance(x, (list, tuple)) else x[:1]


def as_model_input(x):
    """Keras takes text as a tf.string tensor, not as a numpy array of Python objects, bytes or str; a model of
    several inputs takes the list of them."""
    if isinstance(x, (list, tuple)):
        return [as_model_input(v) for v in x]
    if x.dtype.kind not in "OSU":
        return x
    import tensorflow as tf

    return tf.constant(x)


def predicted_classes(outputs, mode: str, from_logits: bool):
    import numpy as np

    if mode == "binary":
        return (outputs[:, 0] > (0.0 if from_logits else 0.5)).astype("int64")
    return np.argmax(outputs, axis=-1)


def _load_keras(path):
    import keras

    return keras.saving.load_model(path)
