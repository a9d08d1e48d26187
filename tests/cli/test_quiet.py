"""Quiet by default: a run's stderr holds dlrun's own lines only (no TensorFlow or LiteRT C++ lines, no Python
warnings or library log records), with no environment variable set by the user; the epoch lines; exit codes
through the prompt exit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from helpers import ROOT
from runner.callbacks.epoch_report import EpochProgress
from runner.cli.output import epoch_line
from runner.cli.quiet import native_noise

# what the user's shell has: none of the variables that quiet TensorFlow
USER_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL_"))}


def dlrun(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=ROOT, env={**USER_ENV, **(env or {})},
                          capture_output=True, text=True, timeout=600)


def epoch_lines(epochs: int, figures: str) -> list[str]:
    """The pattern of each line a piped run writes: one per epoch, the ETA on all but the last."""
    return [rf"epoch {e:>{len(str(epochs))}}/{epochs}  {figures}  \d+\.\d\ds" + ("  ETA \\d+s" if e < epochs else "")
            for e in range(1, epochs + 1)]


def assert_lines(stderr: str, patterns: list[str]) -> None:
    lines = stderr.splitlines()
    assert len(lines) == len(patterns), stderr
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), (line, pattern)


def test_iris_and_digits_runs_write_only_their_epoch_lines_to_stderr(tmp_path):
    number = r"\d+\.\d{4}"
    iris = dlrun("experiments/iris.yaml", "--set", "train.epochs=4", "--run-dir", tmp_path / "iris")
    assert iris.returncode == 0, iris.stderr
    # the iris recipe trains on all its training rows, without a validation split
    assert_lines(iris.stderr, epoch_lines(4, f"accuracy {number}  loss {number}"))
    figures = f"accuracy {number}  loss {number}  val_accuracy {number}  val_loss {number}"
    assert iris.stdout.splitlines()[-1] == f"run directory: {tmp_path / 'iris'}"

    digits = dlrun("train", "experiments/digits.yaml", "--set", "train.epochs=3", "--run-dir", tmp_path / "digits")
    assert digits.returncode == 0, digits.stderr
    assert_lines(digits.stderr, epoch_lines(3, figures))
    metrics = json.loads((tmp_path / "digits" / "metrics.json").read_text())
    # the fit's span sits inside the process's
    assert 0 < metrics["train_s"] < metrics["wall_s"]


def test_a_failed_run_exits_with_its_code_and_message_only(tmp_path):
    run = tmp_path / "run"
    # a real divergence: plain SGD at a learning rate of 1e8, on two hidden layers (the recipe's softmax regression
    # only grows its loss to about 1e6 in 4 epochs, finite)
    proc = dlrun("experiments/iris.yaml", "--set", "train.epochs=4", "--set", "train.optimizer=sgd",
                 "--set", "model.units=[32, 32]",
                 "--set", "train.lr={schedule: constant, base: 1.0e+8}", "--set", "deterministic=true", "--run-dir", run)
    assert proc.returncode == 4
    # iris: 120 training rows in batches of 16 = 8 steps per epoch, one call each: the first call ends in NaN
    assert proc.stderr.splitlines() == [
        f"training failed: non-finite loss nan at epoch 1, step 8; checkpoints are kept in {run / 'checkpoints'}. "
        "Try a lower train.lr.base, gradient clipping (train.optimizer.global_clipnorm) or "
        "train.nan_policy: rollback"]


def test_exports_write_nothing_on_stderr_and_verbose_shows_what_their_runtimes_log(tmp_path):
    run = tmp_path / "run"
    # the spec's litert export is read back by LiteRT's interpreter at the end of the run
    done = dlrun("experiments/iris.yaml", "--set", "train.epochs=4", "--set", "export=[litert]", "--run-dir", run)
    assert done.returncode == 0, done.stderr
    assert_lines(done.stderr, epoch_lines(4, r"accuracy \d+\.\d{4}  loss \d+\.\d{4}"))
    assert (run / "export" / "model.tflite").exists()
    for fmt in ("litert", "onnx"):  # int8: the TFLite converter's quantizer, onnxruntime's quantizer
        quiet = dlrun("export", run, "--format", fmt, "--quantize", "int8", "--out", tmp_path / fmt)
        assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    # what the filter keeps off: LiteRT's and the converter's native lines, onnxruntime's root-logger warning
    loud = dlrun("--verbose", "export", run, "--format", "litert", "--quantize", "int8", "--out", tmp_path / "loud")
    assert loud.returncode == 0
    assert "\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n" in loud.stderr
    assert "\nfully_quantize: 0, inference_type: 6, " in loud.stderr
    loud = dlrun("--verbose", "export", run, "--format", "onnx", "--quantize", "int8", "--out", tmp_path / "loud")
    assert loud.returncode == 0 and "WARNING:root:Please consider to run pre-processing before quantization" in loud.stderr


def test_tensorflow_native_log_lines_are_recognized_and_nothing_else():
    assert native_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert native_noise("I0000 00:00:1796134801.947375   15127 port.cc:153] oneDNN custom operations are on.\n")
    assert native_noise("E0000 00:00:1796134807.173096   15127 cuda_platform.cc:52] failed call to cuInit: "
                        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
    assert native_noise("W1201 14:20:01.947375   15127 cuda_executor.cc:1209] could not open file\n")
    assert native_noise("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert native_noise("fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, "
                        "output_inference_type: FLOAT32\n")
    # LiteRT's own warnings and errors are not noise
    assert not native_noise("ERROR: Didn't find op for builtin opcode 'CONV_2D' version '7'\n")
    assert not native_noise("WARNING: Attempting to use a delegate that only supports static-sized tensors\n")
    assert not native_noise("Traceback (most recent call last):\n")
    assert not native_noise("epoch 1/3  loss 0.1000  1.00s  ETA 2s\n")
    assert not native_noise("Fatal Python error: Segmentation fault\n")


def test_epoch_lines():
    done = EpochProgress(3, 30, 20, 20, 0.384, 10.4, {"accuracy": 0.88123, "loss": 0.41234}, done=True)
    assert epoch_line(done) == "epoch  3/30  accuracy 0.8812  loss 0.4123  0.38s  ETA 10s"
    last = EpochProgress(30, 30, 20, 20, 0.2, 0.0, {"loss": 0.1}, done=True)
    assert epoch_line(last) == "epoch 30/30  loss 0.1000  0.20s"
    running = EpochProgress(4, 30, 7, 20, 0.1, 95.0, {})
    assert epoch_line(running) == "epoch  4/30  step 7/20  ETA 1m35s"
