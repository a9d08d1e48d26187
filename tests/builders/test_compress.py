"""compress: pruning masks and ramp, validate rules, and end to end on digits (accuracy, zeros in a plain Keras
load, export sizes and runtimes, exact resume through a SIGKILL, Keras int8)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from helpers import write_spec
from runner.cli.main import main
from runner.compress import schedule
from runner.compress.config import Prune
from runner.compress.plan import LayerPlan, plan
from runner.compress.prune import global_magnitude_masks, magnitude_mask, two_four_mask
from runner.language.load import display_path as shown

BASE = ("name: t\ndata: {source: sklearn, name: digits}\nmodel: {arch: cnn, filters: [8, 16], dense: [32]}\n"
        "train: {epochs: 10}\n")


def _validate(capsys, *args) -> tuple[int, list[str]]:
    code = main(["validate", *map(str, args)])
    return code, capsys.readouterr().err.splitlines()


def test_ramp_is_polynomial_between_start_and_end():
    prune = Prune(sparsity=0.8, start_epoch=0.2, end_epoch=0.8)
    assert schedule.ramp(prune, 10, 20) == (40, 160)
    assert schedule.ramp(Prune(start_epoch=1, end_epoch=3), 10, 20) == (20, 60)
    assert [schedule.sparsity_at(s, 0.8, 40, 160) for s in (0, 40, 100, 160, 500)] == [
        0.0, 0.0, 0.8 * (1 - 0.5 ** 3), 0.8, 0.8]
    # update points 40, 90, 140 and 160, seen at execution boundaries of 20 steps
    due = [s for s in range(20, 221, 20) if schedule.update_due(s - 20, s, 40, 160, 50)]
    assert due == [40, 100, 140, 160]
    assert schedule.monitor_from_epoch(prune, 10, 20) == 7  # step 160 is the end of epoch 8 (index 7)
    assert schedule.monitor_from_epoch(Prune(end_epoch=0.75), 10, 20) == 7  # step 150, inside epoch 8


def test_magnitude_mask_zeros_the_smallest_and_breaks_ties_by_position():
    w = np.array([[0.5, -0.1, 0.0], [0.3, -0.1, 2.0]], dtype="float32")
    assert magnitude_mask(w, 0.5).tolist() == [[1, 0, 0], [1, 0, 1]]
    assert magnitude_mask(w, 0.0).tolist() == [[1, 1, 1], [1, 1, 1]]


def test_two_four_mask_keeps_two_of_four_input_weights():
    dense = np.array([[1, 4], [-3, 0], [2, 1], [0.5, -2]], dtype="float32")  # (in=4, out=2)
    assert two_four_mask(dense).tolist() == [[0, 1], [1, 0], [1, 0], [0, 1]]
    conv = np.arange(3 * 3 * 8 * 2, dtype="float32").reshape(3, 3, 8, 2)  # (h, w, in=8, out=2)
    mask = two_four_mask(conv)
    assert mask.shape == conv.shape and mask.mean() == 0.5
    assert mask[0, 0, :, 0].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]


def test_layer_overrides_first_match_wins():
    prune = Prune.model_validate({"sparsity": 0.8, "layers": {"head": {"sparsity": 0}, "conv*": {"structured": "2:4"},
                                                              "conv2d": {"sparsity": 0.1}}})
    layers = [("conv2d", (3, 3, 1, 8)), ("conv2d_1", (3, 3, 8, 16)), ("dense", (64, 32)), ("dense_1", (32, 32)),
              ("head", (32, 10))]
    assert plan(prune, layers) == [
        LayerPlan("conv2d", (3, 3, 1, 8), 0.8, True), LayerPlan("conv2d_1", (3, 3, 8, 16), 0.8, True),
        LayerPlan("dense", (64, 32), 0.8, False, pooled=True), LayerPlan("dense_1", (32, 32), 0.8, False, pooled=True),
        LayerPlan("head", (32, 10), 0.0, False)]
    prune = Prune.model_validate({"sparsity": 0.8, "scope": "global", "layers": {"dense_1": {"sparsity": 0.5}}})
    assert [(p.sparsity, p.pooled) for p in plan(prune, layers)] == [(0.8, True)] * 3 + [(0.5, False), (0.8, True)]
    prune = Prune.model_validate({"sparsity": 0.8, "scope": "layer"})
    assert [(p.sparsity, p.pooled) for p in plan(prune, layers)] == [(0.8, False)] * 5


def test_global_masks_share_one_threshold():
    big = np.array([[0.1, 0.2], [0.3, 0.4]], dtype="float32")
    small = np.array([1.0, -0.05, 2.0], dtype="float32")
    masks = global_magnitude_masks([big, small], 3 / 7)
    assert [m.tolist() for m in masks] == [[[0, 0], [1, 1]], [1, 0, 1]]


def test_validate_the_schedule_inside_training(tmp_path, capsys):
    spec = write_spec(tmp_path, BASE + "compress:\n  prune: {sparsity: 0.8, start_epoch: 2.5}\n")
    assert _validate(capsys, spec) == (2, [
        f"{shown(spec)}:6: compress.prune.start_epoch: below 1 a fraction of training, from 1 on a whole epoch; "
        "received 2.5 (try 2 or 0.25)"])
    spec = write_spec(tmp_path, BASE + "compress:\n  prune:\n    end_epoch: 12\n")
    assert _validate(capsys, spec) == (2, [
        f"{shown(spec)}:7: compress.prune.end_epoch: the ramp must end inside training (10 epochs); received 12"])
    spec = write_spec(tmp_path, BASE + "compress:\n  prune:\n    start_epoch: 4\n    end_epoch: 0.3\n")
    assert _validate(capsys, spec) == (2, [
        f"{shown(spec)}:8: compress.prune.end_epoch: must come after start_epoch (4, epoch 4); received 0.3 "
        "(epoch 3)"])
    assert _validate(capsys, spec, "--set", "compress.prune.sparsity=1") == (2, [
        "--set compress.prune.sparsity=1: compress.prune.sparsity: must be < 1.0; received 1"])
    spec = write_spec(tmp_path, BASE + "compress:\n  prune: {sparsity: 0.7, structured: '2:4'}\n")
    assert _validate(capsys, spec) == (2, [
        f"{shown(spec)}:6: compress.prune.sparsity: structured '2:4' prunes exactly half of each kernel; "
        "received sparsity 0.7; drop one of the two"])
    assert _validate(capsys, spec, "--set", "compress.prune.sparsity=-0.1")[1] == [
        "--set compress.prune.sparsity=-0.1: compress.prune.sparsity: must be >= 0.0; received -0.1"]


def test_deep_validate_structured_needs_four_input_channels(tmp_path, capsys):
    spec = write_spec(tmp_path, BASE + "compress:\n  prune:\n    structured: '2:4'\n    layers:\n"
                                       "      hed: {sparsity: 0}\n")
    assert _validate(capsys, spec) == (0, [])
    assert _validate(capsys, "--deep", spec) == (2, [
        f"{shown(spec)}:7: compress.prune.structured: 2:4 needs a multiple of 4 input channels; layer 'conv2d' "
        "(kernel [3, 3, 1, 8]) has 1; exclude it with compress.prune.layers: {conv2d: {structured: null}}",
        f"{shown(spec)}:9: compress.prune.layers.hed: matches none of the Conv/Dense layers (conv2d, conv2d_1, "
        "dense, head); received 'hed'"])
    fixed = write_spec(tmp_path, BASE + "compress:\n  prune:\n    structured: '2:4'\n    layers:\n"
                                        "      conv2d: {structured: null}\n")
    assert _validate(capsys, "--deep", fixed) == (0, [])


STEPS, EPOCHS = 20, 3  # 1257 training digits / batch 64


def small_spec(out_dir, **compress) -> dict:
    """The resume tests' deterministic digits CNN, pruned from step 12 to step 48 with masks updated every 8."""
    from helpers import digits_spec

    return digits_spec(
        out_dir, deterministic=True,
        model={"arch": "cnn", "filters": [8, 16], "dense": [32], "dropout": 0.3},
        train={"epochs": EPOCHS, "optimizer": "adam", "lr": {"schedule": "cosine", "base": 0.003},
               "steps_per_execution": 4},
        callbacks={"tensorboard": None, "backup": {"every": 8}},
        compress={"prune": {"sparsity": 0.75, "frequency": 8, **compress}})


@pytest.mark.slow
def test_sigkill_during_the_ramp_then_resume_is_bitwise_equal(tmp_path):
    from helpers import run_cli, run_inline, train_in_process
    from runner.callbacks.backup import backup_files, read_backup

    ref, run = tmp_path / "ref", tmp_path / "run"
    train_in_process(ref, small_spec(tmp_path))
    spec = small_spec(tmp_path)
    spec["callbacks"]["custom"] = ["dlrun_faults:KillAtStep"]  # tests/plugins: SIGKILL at FAULT_KILL_AT_STEP
    spec_path = write_spec(tmp_path, spec)
    killed = run_cli("train", spec_path, "--run-dir", run, env={"FAULT_KILL_AT_STEP": "30"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    meta, arrays = read_backup(backup_files(run / "backup")[0])
    assert meta["global_step"] == 32  # inside the ramp (steps 12 to 48): some weights pruned, not all yet
    assert 0 < _zeros([arrays[f"cb/Pruning/{i}"] for i in range(4)]) < 0.75

    run_inline("resume", run, check_code=0)
    status = __import__("json").loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["resumed_from"] == {"epoch": 1, "step": 32}
    (meta, arrays), (ref_meta, ref_arrays) = [read_backup(backup_files(r / "backup")[0]) for r in (run, ref)]
    assert meta["global_step"] == ref_meta["global_step"] == EPOCHS * STEPS
    kept = [k for k in ref_arrays if k.split("/")[0] in ("model", "optimizer") or k.startswith("cb/Pruning/")]
    assert len([k for k in kept if k.startswith("cb/Pruning/")]) == 4  # a mask per Conv/Dense kernel
    assert [k for k in kept if not np.array_equal(arrays[k], ref_arrays[k])] == []
    assert _zeros([ref_arrays[f"cb/Pruning/{i}"] for i in range(4)]) == pytest.approx(0.75, abs=1e-4)


def _zeros(masks) -> float:
    return sum(int(np.sum(m == 0)) for m in masks) / sum(m.size for m in masks)





@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    """experiments/digits.yaml dense (with Keras int8) and pruned to 0.8 (same seed), each exported to ONNX and
    LiteRT, and the dense one also to onnxruntime's and LiteRT's int8."""
    from helpers import ROOT, run_inline

    root = tmp_path_factory.mktemp("digits")
    # the spec's 40 epochs: with 20, the dense model is still learning and pruning costs 1.7 points
    common = ["--set", f"output.dir={root}", "--set", "export=[onnx, tflite]"]
    runs = {"dense": root / "dense", "pruned": root / "pruned"}
    run_inline("train", ROOT / "experiments/digits.yaml", *common, "--set", "compress.quantize.mode=int8",
               "--run-dir", runs["dense"], check_code=0)
    run_inline("train", ROOT / "experiments/digits.yaml", *common, "--set", "compress.prune.sparsity=0.8",
               "--run-dir", runs["pruned"], check_code=0)
    for fmt in ("onnx", "tflite"):
        run_inline("export", runs["dense"], "--format", fmt, "--quantize", "int8", check_code=0)
    return runs


def _json(path):
    import json

    return json.loads(path.read_text())


@pytest.mark.slow
def test_pruned_digits_keep_accuracy_and_hold_real_zeros_in_a_plain_keras_load(digits_runs):
    import subprocess
    import sys

    dense, pruned = (_json(digits_runs[k] / "metrics.json") for k in ("dense", "pruned"))
    assert dense["test"]["accuracy"] - pruned["test"]["accuracy"] <= 0.01
    assert pruned["compress"]["sparsity"]["overall"] == pytest.approx(0.8, abs=1e-4)
    assert set(pruned["compress"]["sparsity"]["layers"]) == {"conv2d", "conv2d_1", "dense", "head"}
    assert "compress" not in _json(digits_runs["dense"] / "metrics.json") or "sparsity" not in dense["compress"]
    # a fresh process without dlrun on its path: plain Keras layers, no custom objects, real zeros
    code = ("import sys, keras, numpy as np; m = keras.saving.load_model(sys.argv[1]); "
            "k = [l.kernel.numpy() for l in m._flatten_layers() if isinstance(l, (keras.layers.Conv2D, "
            "keras.layers.Dense))]; assert 'runner' not in sys.modules; "
            "print(len(k), sum(int((w == 0).sum()) for w in k) / sum(w.size for w in k))")
    out = subprocess.run([sys.executable, "-c", code, str(digits_runs["pruned"] / "model.keras")], cwd="/",
                         env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True)
    count, zeros = out.stdout.split()
    assert int(count) == 4 and float(zeros) >= 0.79, out.stderr[-2000:]


@pytest.mark.slow
def test_pruned_litert_gzips_to_under_40_percent_and_runtimes_agree(digits_runs):
    exports = {k: _json(digits_runs[k] / "export" / "export.json") for k in ("dense", "pruned")}
    assert exports["pruned"]["model.tflite"]["gzip_bytes"] <= 0.4 * exports["dense"]["model.tflite"]["gzip_bytes"]
    for run in exports.values():
        for name in ("model.onnx", "model.tflite"):
            entry = run[name]
            assert entry["examples"] == 359 and entry["ok"]
            assert abs(entry["accuracy"] - entry["keras_accuracy"]) <= 0.001
            assert entry["size_bytes"] > entry["gzip_bytes"] > 0 and entry["latency_ms"]["runs"] == 200


@pytest.mark.slow
def test_keras_int8_stays_within_a_point_and_latency_covers_every_model(digits_runs):
    import keras

    quantized = _json(digits_runs["dense"] / "metrics.json")["compress"]["quantize"]
    assert quantized["layers"] == ["dense", "head"]  # Keras quantizes Dense kernels; Conv2D stays float
    assert quantized["float_test"]["accuracy"] - quantized["test"]["accuracy"] <= 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its optimizer fits the int8 model: no "Skipping variable loading"
        model = keras.saving.load_model(digits_runs["dense"] / "model_int8.keras")
    assert str(model.get_layer("dense").kernel.dtype) == "int8"
    dense = _json(digits_runs["dense"] / "export" / "export.json")
    for name in ("model_int8.onnx", "model_int8.tflite"):
        assert dense[name]["quantize"] == "int8" and dense[name]["latency_ms"]["median"] > 0
        assert dense[name]["keras_accuracy"] - dense[name]["accuracy"] <= 0.01


@pytest.mark.slow
def test_pruning_under_mirrored_on_two_cpu_replicas(tmp_path):
    from helpers import run_cli

    from helpers import digits_spec

    spec = digits_spec(tmp_path, distribute={"strategy": "mirrored", "cpu_replicas": 2},
                       compress={"prune": {"sparsity": 0.5, "scope": "layer", "start_epoch": 1, "end_epoch": 2,
                                           "frequency": 5}})
    run = tmp_path / "run"
    run_cli("train", write_spec(tmp_path, spec), "--run-dir", run, check_code=0)
    metrics = _json(run / "metrics.json")
    assert _json(run / "env.json")["replicas"] == 2
    assert metrics["compress"]["sparsity"]["layers"] == pytest.approx(
        {"conv2d": 0.5, "conv2d_1": 0.5, "dense": 0.5, "head": 0.5}, abs=2e-3)
    assert metrics["test"]["accuracy"] >= 0.88  # test_distribute.py's floor for this spec, unpruned


@pytest.mark.slow
def test_eval_reports_size_sparsity_and_each_runtimes_accuracy(digits_runs, capsys):
    run = digits_runs["pruned"]
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    result = _json(run / "eval" / "test-final" / "metrics.json")
    deployment, exported = result["deployment"], _json(run / "export" / "export.json")
    assert deployment["size_bytes"] == (run / "model.keras").stat().st_size
    assert deployment["sparsity"] == pytest.approx(0.8, abs=1e-4)
    assert sorted(deployment["exports"]) == ["model.onnx", "model.tflite"]
    for name, entry in deployment["exports"].items():
        assert entry["accuracy"] == exported[name]["accuracy"]  # the same 359 test digits
        assert f"  {name} ({exported[name]['runtime']}): accuracy {entry['accuracy']:.4f}" in out


@pytest.mark.slow
def test_quantization_aware_finetuning_trains_the_float_layers_around_frozen_int8(tmp_path):
    import keras

    from helpers import custom_gradients, train_in_process

    spec = small_spec(tmp_path)
    spec.pop("compress")
    spec.update(compress={"quantize": {"mode": "int8", "finetune_epochs": 1}}, deterministic=False)
    keras.backend.clear_session()  # layer names as in a fresh `dlrun` process
    registered = custom_gradients()
    result = train_in_process(tmp_path / "run", spec)
    # the int8 layers' straight-through gradients are custom gradients: released with the run (7 were left before)
    assert custom_gradients() == registered
    record = result.metrics["compress"]["quantize"]
    assert set(record) == {"mode", "layers", "float_test", "post_training_test", "test", "finetune_epochs"}
    assert record["finetune_epochs"] == 1 and record["layers"] == ["dense", "head"]
    plain, quantized = (keras.saving.load_model(tmp_path / "run" / f) for f in ("model.keras", "model_int8.keras"))
    assert not np.array_equal(plain.get_layer("conv2d").kernel.numpy(), quantized.get_layer("conv2d").kernel.numpy())
    assert str(quantized.get_layer("head").kernel.dtype) == "int8"
    assert abs(record["test"]["accuracy"] - record["float_test"]["accuracy"]) <= 0.05


@pytest.mark.slow
def test_tensorboard_shows_sparsity_per_layer_every_epoch(digits_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    acc = EventAccumulator(str(digits_runs["pruned"] / "tensorboard" / "compress"), size_guidance={"tensors": 0})
    acc.Reload()
    assert sorted(acc.Tags()["tensors"]) == ["sparsity/conv2d", "sparsity/conv2d_1", "sparsity/dense",
                                              "sparsity/head", "sparsity/overall"]
    overall = [(e.step, float(make_ndarray(e.tensor_proto))) for e in acc.Tensors("sparsity/overall")]
    assert [step for step, _ in overall] == list(range(40))
    assert overall[0][1] == 0.0 and overall[-1][1] == pytest.approx(0.8, abs=1e-4)
    assert [v for _, v in overall] == sorted(v for _, v in overall)  # the ramp only goes up
    final = _json(digits_runs["pruned"] / "metrics.json")["compress"]["sparsity"]["layers"]
    assert {t: float(make_ndarray(acc.Tensors(f"sparsity/{t}")[-1].tensor_proto)) for t in final} == pytest.approx(final)


@pytest.mark.slow
def test_best_checkpoint_comes_from_after_the_ramp(digits_runs):
    import keras

    from runner.compress.prune import sparsity_of

    run = digits_runs["pruned"]
    metrics = _json(run / "metrics.json")
    assert metrics["best"]["epoch"] >= 32  # the ramp ends at step 640 = the end of epoch 32
    best = keras.saving.load_model(run / "checkpoints" / "best.keras")
    assert sparsity_of(best)["overall"] == pytest.approx(0.8, abs=1e-4)


def test_structured_two_four_in_training(tmp_path):
    import keras

    from helpers import train_in_process

    spec = small_spec(tmp_path, structured="2:4", start_epoch=1, end_epoch=2, layers={"conv2d": {"structured": None}})
    spec.update(deterministic=False)
    spec["train"] = {**spec["train"], "epochs": 2}
    spec["compress"]["prune"].pop("sparsity")
    keras.backend.clear_session()  # layer names as in a fresh `dlrun` process (the patterns name them)
    result = train_in_process(tmp_path / "run", spec)
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    for name in ("conv2d_1", "dense", "head"):
        w = model.get_layer(name).kernel.numpy()
        groups = np.moveaxis(w, 0 if w.ndim == 2 else -2, -1).reshape(-1, 4)
        assert (np.sum(groups == 0, axis=1) >= 2).all(), name
    assert result.metrics["compress"]["sparsity"]["layers"]["conv2d"] == pytest.approx(0.5, abs=0.01)


def test_structured_misfit_stops_an_in_process_run_before_training(tmp_path):
    import keras

    from runner.kernel.errors import ConfigError
    from helpers import train_in_process

    spec = small_spec(tmp_path, structured="2:4")
    spec["compress"]["prune"].pop("sparsity")
    keras.backend.clear_session()
    with pytest.raises(ConfigError) as e:
        train_in_process(tmp_path / "run", spec)
    assert str(e.value) == (
        "compress.prune.structured: 2:4 needs a multiple of 4 input channels; layer 'conv2d' (kernel [3, 3, 1, 8]) "
        "has 1; exclude it with compress.prune.layers: {conv2d: {structured: null}}")
    assert not (tmp_path / "run" / "history.csv").exists()
