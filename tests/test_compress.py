"""compress: pruning masks and ramp, validate rules, and end to end on digits (accuracy, zeros in a plain Keras
load, export sizes and runtimes, exact resume through a SIGKILL, Keras int8)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_spec
from runner.cli.main import main
from runner.compress import schedule
from runner.compress.config import Prune
from runner.compress.prune import LayerPlan, magnitude_mask, plan, two_four_mask
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
    got = plan(prune, [("conv2d", (3, 3, 1, 8)), ("conv2d_1", (3, 3, 8, 16)), ("dense", (64, 32)), ("head", (32, 10))])
    assert got == [LayerPlan("conv2d", (3, 3, 1, 8), 0.8, True), LayerPlan("conv2d_1", (3, 3, 8, 16), 0.8, True),
                   LayerPlan("dense", (64, 32), 0.8, False), LayerPlan("head", (32, 10), 0.0, False)]


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
    from conftest import digits_spec

    return digits_spec(
        out_dir, deterministic=True,
        model={"arch": "cnn", "filters": [8, 16], "dense": [32], "dropout": 0.3},
        train={"epochs": EPOCHS, "optimizer": "adam", "lr": {"schedule": "cosine", "base": 0.003},
               "steps_per_execution": 4},
        callbacks={"tensorboard": None, "backup": {"every": 8}},
        compress={"prune": {"sparsity": 0.75, "frequency": 8, **compress}})


@pytest.mark.slow
def test_sigkill_during_the_ramp_then_resume_is_bitwise_equal(tmp_path):
    from conftest import run_cli
    from runner.callbacks.backup import backup_files, read_backup
    from test_resume import train_in_process

    ref, run = tmp_path / "ref", tmp_path / "run"
    train_in_process(ref, small_spec(tmp_path))
    spec_path = write_spec(tmp_path, small_spec(tmp_path))
    killed = run_cli("train", spec_path, "--run-dir", run, env={"DLRUN_TEST_KILL_AT_STEP": "30"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    meta, arrays = read_backup(backup_files(run / "backup")[0])
    assert meta["global_step"] == 32  # inside the ramp (steps 12 to 48): some weights pruned, not all yet
    assert 0 < np.mean(arrays["cb/Pruning/1"] == 0) < 0.75

    run_cli("resume", run, check_code=0)
    status = __import__("json").loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["resumed_from"] == {"epoch": 1, "step": 32}
    (meta, arrays), (ref_meta, ref_arrays) = [read_backup(backup_files(r / "backup")[0]) for r in (run, ref)]
    assert meta["global_step"] == ref_meta["global_step"] == EPOCHS * STEPS
    kept = [k for k in ref_arrays if k.split("/")[0] in ("model", "optimizer") or k.startswith("cb/Pruning/")]
    assert len([k for k in kept if k.startswith("cb/Pruning/")]) == 4  # a mask per Conv/Dense kernel
    assert [k for k in kept if not np.array_equal(arrays[k], ref_arrays[k])] == []
    assert [np.mean(ref_arrays[f"cb/Pruning/{i}"] == 0) for i in range(4)] == pytest.approx([0.75] * 4, abs=2e-3)
