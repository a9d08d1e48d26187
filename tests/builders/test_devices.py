"""Device choices on a CPU host: one_device, explicit devices, jit_compile: true; devices it lacks and TPU: exit 5."""

from __future__ import annotations

import json

import pytest

from helpers import digits_spec, run_cli, run_inline, write_spec, write_text_folder

CPU0 = "/job:localhost/replica:0/task:0/device:CPU:0"


@pytest.mark.parametrize("distribute, strategy", [
    ({"strategy": "one_device"}, "OneDeviceStrategy"),  # no GPU here: the CPU
    ({"strategy": "one_device", "devices": ["/cpu:0"]}, "OneDeviceStrategy"),
    ({"strategy": "mirrored", "devices": ["/cpu:0"]}, "MirroredStrategy"),
])
def test_the_strategy_runs_on_the_devices_named(distribute, strategy):
    from runner.distribute.strategy import get_strategy
    from runner.spec.schema import Distribute

    made = get_strategy(Distribute(**distribute))
    assert (type(made).__name__, made.num_replicas_in_sync, made.extended.worker_devices) == (strategy, 1, (CPU0,))


def test_one_device_with_jit_compile_trains_with_xla_after_a_deterministic_run(tmp_path):
    import tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled

    from runner.kernel import run_dir as rd
    from runner.run.lifecycle import finish, fit, prepare
    from runner.spec import load_config

    # what a deterministic run earlier in this process (a teacher, a fold, a trial) leaves behind: Keras would
    # compile the next model without XLA, and env.json would still say jit_compile
    tf.config.experimental.enable_op_determinism()
    spec = digits_spec(tmp_path / "runs", distribute={"strategy": "one_device", "devices": ["/cpu:0"]},
                       train={"epochs": 3, "optimizer": "adam", "lr": 0.003, "jit_compile": True},
                       callbacks={"tensorboard": None})
    cfg, _ = load_config(write_spec(tmp_path, spec))
    exp = prepare(cfg, rd.RunDir.at(str(tmp_path / "run")))
    with exp.stack:
        assert exp.model.jit_compile is True and not is_op_determinism_enabled()
        fit(exp)
        result = finish(exp)
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert (env["strategy"], env["replicas"]) == ("OneDeviceStrategy", 1)
    assert env["speed"] == {"precision": "float32", "jit_compile": True, "steps_per_execution": 20}
    assert result.metrics["test"]["accuracy"] >= 0.88  # test_distribute's floor for 3 epochs of this spec


def test_a_model_keras_compiles_without_xla_says_so_and_env_json_records_it(tmp_path):
    """TextVectorization has no XLA kernel: Keras drops jit_compile: true with a warning runs silence."""
    spec = {"name": "reviews", "seed": 1, "output": {"dir": str(tmp_path / "runs")},
            "callbacks": {"tensorboard": None, "checkpoint": None, "backup": None},
            "data": {"source": "text_folder", "path": str(write_text_folder(tmp_path / "reviews")), "batch_size": 16,
                     "preprocess": [{"text_vectorize": {"max_tokens": 50, "sequence_length": 8}}]},
            "model": {"layers": [{"Embedding": {"input_dim": 50, "output_dim": 8}}, {"GlobalAveragePooling1D": {}},
                                 {"Dense": {"units": 2}}]},
            "train": {"epochs": 2, "lr": 0.02, "jit_compile": True}}
    proc = run_inline("train", write_spec(tmp_path, spec), "--run-dir", tmp_path / "run", check_code=0)
    assert proc.stderr.splitlines()[0].startswith(
        "dlrun: warning: train.jit_compile: true, but Keras 3.")
    assert proc.stderr.splitlines()[0].endswith(
        " compiles this model without XLA: text_vectorize (TextVectorization) does not support it; training "
        "goes on without XLA")
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["speed"]["jit_compile"] is False


def test_auto_xla_is_on_for_gpus_but_not_under_op_determinism():
    from runner.spec.schema import Train
    from runner.training.compile_options import resolve_speed

    train = Train.model_validate({"epochs": 3, "precision": "float32"})  # jit_compile: auto
    assert resolve_speed(train, 20, on_gpu=True).jit_compile is True
    # Keras would compile without XLA anyway; env.json says what runs
    assert resolve_speed(train, 20, on_gpu=True, deterministic=True).jit_compile is False
    assert resolve_speed(train, 20, on_gpu=False).jit_compile is False


def test_tpu_on_a_host_without_one_exits_5_before_the_run_directory(tmp_path):
    spec = digits_spec(tmp_path / "runs", distribute={"strategy": "tpu"})
    proc = run_cli("train", write_spec(tmp_path, spec), timeout=120, check_code=5)
    assert proc.stderr.splitlines()[-1] == (
        "distribute.strategy: tpu: no TPU on this host could be used (Please provide a TPU Name to connect to.); "
        "run on a TPU VM or set distribute.tpu to the TPU's name or grpc:// address")
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("strategy", ["one_device", "mirrored"])
def test_a_device_this_host_lacks_exits_5_naming_what_it_has(tmp_path, strategy):
    spec = digits_spec(tmp_path / "runs", distribute={"strategy": strategy, "devices": ["/cpu:0", "/gpu:3"]})
    proc = run_inline("train", write_spec(tmp_path, spec), check_code=5)
    assert proc.stderr.splitlines()[-1] == (
        "distribute.devices[1]: this host has no device '/gpu:3'; it has /cpu:0. Name one of those, or remove "
        "distribute.devices")
    assert not (tmp_path / "runs").exists()
