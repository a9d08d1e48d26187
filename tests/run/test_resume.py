"""Resume equals an uninterrupted run, bit for bit: killed at a random step, right after a backup, mid-write."""

from __future__ import annotations

import csv
import json
import random
import shutil

import numpy as np
import pytest

from helpers import digits_spec, run_cli, run_inline, train_in_process, write_spec
from runner.callbacks.backup import backup_files, read_backup
from runner.run.resume import config_differences

STEPS = 20  # 1257 training digits / batch 64
EPOCHS = 3


FAULTS = ["dlrun_faults:KillAtStep", "dlrun_faults:KillInBackup"]  # tests/plugins: no-ops unless their env is set


def spec(out_dir, **train):
    """Deterministic CPU run: dropout and augmentation draw randomness, so their RNG state must survive too."""
    return digits_spec(
        out_dir, deterministic=True,
        data={"source": "sklearn", "name": "digits", "batch_size": 64,
              "splits": {"train": "[:70%]", "validation": "[70%:80%]", "test": "[80%:]"},
              "preprocess": [{"rescale": {"scale": 0.0625}}],
              "augment": [{"random_translation": {"height_factor": 0.1, "width_factor": 0.1,
                                                  "fill_mode": "constant"}}]},
        model={"arch": "cnn", "filters": [8, 16], "dense": [32], "dropout": 0.3},
        train={"epochs": EPOCHS, "optimizer": "adam", "lr": {"schedule": "cosine", "base": 0.003, "warmup_epochs": 1},
               "steps_per_execution": 4, **train},
        callbacks={"tensorboard": None, "backup": {"every": 8}, "custom": FAULTS})


def final_state(run):
    """(meta, arrays) of the newest backup: the state after the last epoch, before train-end callbacks."""
    return read_backup(backup_files(run / "backup")[0])


def history(run):
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader((run / "history.csv").open())]


def assert_same_training(run, reference):
    (meta, arrays), (ref_meta, ref_arrays) = final_state(run), final_state(reference)
    assert meta["global_step"] == ref_meta["global_step"] == EPOCHS * STEPS
    assert meta["iterations"] == ref_meta["iterations"] == EPOCHS * STEPS
    trained = [k for k in ref_arrays if k.split("/")[0] in ("model", "optimizer")]
    assert len(trained) == 26  # 8 weights + Dropout's seed-generator state; iterations + 16 Adam moments
    differ = [k for k in trained if not np.array_equal(arrays[k], ref_arrays[k])]
    assert differ == []
    assert history(run) == history(reference)  # train metrics of the resumed partial epoch included


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    train_in_process(run, spec(run.parent))
    return run


def train_killed(run, spec_dict, **fault) -> None:
    """`dlrun train` in its own process, SIGKILLed by tests/plugins/dlrun_faults.py where `fault` says."""
    path = write_spec(run.parent, spec_dict, f"{run.name}.yaml")
    killed = run_cli("train", path, "--run-dir", run, env={f"FAULT_{k.upper()}": str(v) for k, v in fault.items()})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert json.loads((run / "status.json").read_text())["state"] == "running"


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_is_bitwise_equal(tmp_path, reference):
    run = tmp_path / "run"
    spec_path = write_spec(tmp_path, spec(tmp_path))
    kill_at = random.Random(5).randrange(STEPS + 1, EPOCHS * STEPS - 4)  # mid-epoch, past epoch 1
    killed = run_cli("train", spec_path, "--run-dir", run, env={"FAULT_KILL_AT_STEP": str(kill_at)})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert json.loads((run / "status.json").read_text())["state"] == "running"
    backed_up = read_backup(backup_files(run / "backup")[0])[0]["global_step"]
    assert kill_at - 8 < backed_up <= kill_at + 3  # every 8 steps; killed at the next call's start (4 steps each)

    resumed = run_inline("resume", run, check_code=0)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed"
    assert status["resumed_from"] == {"epoch": backed_up // STEPS, "step": backed_up}
    assert status["resumed_from"]["epoch"] >= 1
    assert f"resuming {run} at epoch {backed_up // STEPS + 1}, step {backed_up % STEPS}" in resumed.stderr
    assert_same_training(run, reference)


def test_killed_right_after_an_epoch_backup(tmp_path, reference):
    run = tmp_path / "run"
    train_killed(run, spec(tmp_path), kill_at_step=2 * STEPS)  # before epoch 3's first batch
    assert [p.name for p in backup_files(run / "backup")] == ["backup-0000000040.npz", "backup-0000000032.npz"]

    result = train_in_process(run, spec(tmp_path))
    assert json.loads((run / "status.json").read_text())["resumed_from"] == {"epoch": 2, "step": 40}
    assert result.metrics["epochs_run"] == EPOCHS
    assert_same_training(run, reference)


def test_killed_half_way_through_a_backup_write_resumes_from_the_previous_one(tmp_path, reference):
    run = tmp_path / "run"
    train_killed(run, spec(tmp_path), kill_in_backup=48)
    assert [p.name for p in backup_files(run / "backup")] == ["backup-0000000040.npz", "backup-0000000032.npz"]
    (half,) = [p for p in (run / "backup").iterdir() if p.name.startswith(".")]  # the dead writer's temp file
    assert half.stat().st_size > 0

    train_in_process(run, spec(tmp_path))
    assert json.loads((run / "status.json").read_text())["resumed_from"] == {"epoch": 2, "step": 40}
    assert sorted(p.name for p in (run / "backup").iterdir()) == ["backup-0000000056.npz", "backup-0000000060.npz"]
    assert_same_training(run, reference)


@pytest.mark.slow
def test_resume_with_ema_weights_is_bitwise_equal(tmp_path):
    # Keras swaps the EMA weights in at the end of each fit: the shortened first fit of a resume must not
    ema = {"name": "adam", "use_ema": True, "ema_momentum": 0.9}
    ref, run = tmp_path / "ref", tmp_path / "run"
    train_in_process(ref, spec(tmp_path, optimizer=ema))
    train_killed(run, spec(tmp_path, optimizer=ema), kill_at_step=30)  # at step 32, after its backup
    train_in_process(run, spec(tmp_path, optimizer=ema))
    assert json.loads((run / "status.json").read_text())["resumed_from"] == {"epoch": 1, "step": 32}
    (meta, arrays), (_, ref_arrays) = final_state(run), final_state(ref)
    assert meta["counts"]["optimizer"] == 17 + 8  # the EMA copies of the 8 weights
    assert all(np.array_equal(arrays[k], ref_arrays[k]) for k in ref_arrays if k.startswith(("model/", "optimizer/")))


def test_corrupt_newest_backup_falls_back_to_the_previous_with_a_warning(tmp_path, reference, capsys):
    run = tmp_path / "run"
    train_killed(run, spec(tmp_path), kill_at_step=45)  # at step 48, after its backup
    newest = run / "backup" / "backup-0000000048.npz"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 3])  # truncated, as by a full disk outside dlrun's writer

    train_in_process(run, spec(tmp_path))
    assert (f"dlrun: warning: backup {newest} is not usable (unreadable (" in capsys.readouterr().err)
    assert json.loads((run / "status.json").read_text())["resumed_from"] == {"epoch": 2, "step": 40}
    assert_same_training(run, reference)


@pytest.mark.slow
def test_early_stopping_resumed_stops_at_the_same_epoch_and_keeps_the_best_checkpoint(tmp_path):
    import keras

    # val_accuracy rises until epoch 5 and drops in epoch 6, so patience 1 stops training after epoch 6 of 7
    es = {"tensorboard": None, "backup": {"every": 8}, "early_stopping": {"monitor": "val_accuracy", "patience": 1},
          "custom": FAULTS}
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = train_in_process(ref, {**spec(tmp_path, epochs=7), "callbacks": es})
    assert reference.metrics["epochs_run"] == 6 and reference.metrics["best"]["epoch"] == 5

    # in epoch 6, after epoch 5's best: killed at step 112, after its backup
    train_killed(run, {**spec(tmp_path, epochs=7), "callbacks": es}, kill_at_step=110)
    best_before = (run / "checkpoints" / "best.keras").stat().st_mtime_ns

    resumed = train_in_process(run, {**spec(tmp_path, epochs=7), "callbacks": es})
    assert json.loads((run / "status.json").read_text())["resumed_from"] == {"epoch": 5, "step": 112}
    assert resumed.metrics["epochs_run"] == 6
    assert resumed.metrics["best"] == reference.metrics["best"]
    meta, _ = final_state(run)
    assert meta["stopped"] is True and meta["callbacks"]["ResumableEarlyStopping"]["wait"] == 1
    assert meta["callbacks"]["AtomicCheckpoint"] == final_state(ref)[0]["callbacks"]["AtomicCheckpoint"]
    # the resumed epoch 6 scored below the restored best: best.keras was not rewritten
    assert (run / "checkpoints" / "best.keras").stat().st_mtime_ns == best_before
    for path in ("checkpoints/best.keras", "model.keras"):  # model.keras: epoch 5's weights, restored at the end
        got = keras.saving.load_model(run / path, compile=False).get_weights()
        want = keras.saving.load_model(ref / path, compile=False).get_weights()
        assert [path, *(np.array_equal(a, b) for a, b in zip(got, want))] == [path, *[True] * len(want)]


def test_resume_with_a_changed_config_is_refused_with_the_differing_keys(tmp_path):
    from runner.spec import load_config, render
    from runner.kernel.errors import ConfigError

    run = tmp_path / "run"
    run.mkdir()
    cfg, _ = load_config(write_spec(tmp_path, spec(tmp_path)))
    (run / "config.yaml").write_text(render(cfg))  # what the interrupted run wrote first
    changed = spec(tmp_path, lr={"schedule": "cosine", "base": 0.01, "warmup_epochs": 1})
    changed["data"]["batch_size"] = 32
    changed["output"] = {"dir": str(tmp_path / "elsewhere")}  # allowed to differ
    with pytest.raises(ConfigError) as caught:
        train_in_process(run, changed)
    assert caught.value.exit_code == 2
    assert caught.value.problems == [
        f"{run}/config.yaml: resume refused: the config differs from the run's in 2 keys (only output, "
        "callbacks.tensorboard, callbacks.backup, export, distribute.task_index may change, and train.epochs may "
        "grow):",
        "  data.batch_size: 64 -> 32",
        "  train.lr.base: 0.003 -> 0.01",
        "train into a new run directory to use a different config"]
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "dlrun.lock"]


def test_config_differences_allow_growing_epochs_and_output_keys_only():
    old = {"train": {"epochs": 3, "lr": {"base": 0.003}}, "output": {"dir": "runs"},
           "callbacks": {"tensorboard": {"histogram_freq": 0}, "early_stopping": None}}
    grown = {"train": {"epochs": 9, "lr": {"base": 0.003}}, "output": {"dir": "elsewhere"},
             "callbacks": {"tensorboard": None, "early_stopping": None}}
    assert config_differences(old, grown) == []
    shrunk = {**grown, "train": {"epochs": 2, "lr": {"base": 0.01}},
              "callbacks": {"tensorboard": None, "early_stopping": {"patience": 3}}}
    assert config_differences(old, shrunk) == [
        "callbacks.early_stopping: null -> {patience: 3}",
        "train.epochs: 3 -> 2 (epochs may grow, not shrink)",
        "train.lr.base: 0.003 -> 0.01"]


def test_resume_of_a_completed_run_with_more_epochs_continues_it(tmp_path, reference, capsys):
    from runner.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    assert main(["resume", str(run), "--set", "train.epochs=4"]) == 0
    captured = capsys.readouterr()
    assert f"resuming {run} at epoch {EPOCHS + 1}, step 0 (global step {EPOCHS * STEPS})" in captured.err
    assert captured.out.endswith(f"run directory: {run}\n")
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert rows[:EPOCHS] == history(reference)
    assert final_state(run)[0]["global_step"] == 4 * STEPS
    assert json.loads((run / "status.json").read_text())["resumed_from"] == {"epoch": EPOCHS, "step": EPOCHS * STEPS}


def test_reduce_on_plateau_counters_survive_the_reset_of_a_new_fit():
    import keras

    from runner.callbacks.backup import AttributeState

    before = keras.callbacks.ReduceLROnPlateau(patience=3)
    before.wait, before.cooldown_counter, before.best = 2, 1, np.float32(0.25)
    state, arrays = AttributeState(before, ("wait", "cooldown_counter", "best")).get_state()
    assert state == {"wait": 2, "cooldown_counter": 1, "best": 0.25} and arrays == []

    after = keras.callbacks.ReduceLROnPlateau(patience=3)
    restored = AttributeState(after, ("wait", "cooldown_counter", "best"))
    restored.set_state(json.loads(json.dumps(state)), [])  # as read back from a backup's metadata
    after.on_train_begin()  # Keras resets the counters here
    restored.apply_pending()  # BackupCallback.on_train_begin, the last callback, then restores them
    assert (after.wait, after.cooldown_counter, after.best) == (2, 1, 0.25)
