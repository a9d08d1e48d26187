"""Background artifact writes: in order, atomic, complete before a synchronous write, errors raised, snapshots."""

from __future__ import annotations

import os

import json
import threading

import numpy as np
import pytest

from runner.kernel import run_dir as rd
from runner.kernel import writer
from runner.kernel.errors import EnvironmentProblem


def test_a_synchronous_write_waits_for_the_queued_ones(tmp_path):
    run = rd.RunDir(tmp_path)
    for epoch in range(1, 51):
        writer.submit(run.write_json, rd.STATUS, {"state": "running", "epoch": epoch})
    run.write_json(rd.STATUS, {"state": "completed", "epoch": 50})  # must not be overtaken by epoch 50's
    assert json.loads((tmp_path / rd.STATUS).read_text()) == {"state": "completed", "epoch": 50}
    assert [p.name for p in tmp_path.iterdir()] == [rd.STATUS]  # no temp files left


def test_a_failed_background_write_is_raised_at_the_next_flush(tmp_path):
    run = rd.RunDir(tmp_path / "missing")
    writer.submit(run.write_text, rd.HISTORY, "epoch\n1\n")
    with pytest.raises(EnvironmentProblem) as e:  # from atomic_write's temp file, in the writer thread
        writer.flush()
    assert e.value.message == f"cannot write {tmp_path / 'missing' / rd.HISTORY}: No such file or directory"
    writer.flush()  # raised once; the writer keeps working
    writer.submit(rd.RunDir(tmp_path).write_text, rd.HISTORY, "epoch\n1\n")
    writer.flush()
    assert (tmp_path / rd.HISTORY).read_text() == "epoch\n1\n"


def test_background_checkpoint_is_the_model_at_the_time_of_the_call(tmp_path):
    import keras

    layers = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Rescaling(1 / 16), layers.Conv2D(8, 3),
                              layers.Flatten(), layers.Dropout(0.3), layers.Dense(10)])
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, 100)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 1), "float32") * 16, rng.integers(0, 10, 64)
    model.fit(x, y, verbose=0)
    writer.save_model(model, tmp_path / "background.keras")  # the first call builds the twin
    model.fit(x, y, verbose=0)
    writer.save_model(model, tmp_path / "snapshot.keras")
    model.save(tmp_path / "reference.keras")
    model.fit(x, y, verbose=0)  # changes every variable while the snapshot may still be queued
    writer.flush()

    saved, reference = (keras.saving.load_model(tmp_path / f) for f in ("snapshot.keras", "reference.keras"))
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), reference.get_weights()))
    assert [np.asarray(v).tolist() for v in saved.optimizer.variables] == \
        [np.asarray(v).tolist() for v in reference.optimizer.variables]
    assert int(saved.optimizer.iterations) == 4
    assert saved.get_compile_config() == reference.get_compile_config()


def test_models_with_layer_assets_are_saved_synchronously(tmp_path):
    import keras

    lookup = keras.layers.StringLookup(vocabulary=["a", "b", "c"], output_mode="one_hot")
    model = keras.Sequential([keras.Input((1,), dtype="string"), lookup, keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.optimizer.build(model.trainable_variables)  # as after training: a load restores its state without warning
    assert writer._twin(model) is None  # the vocabulary is an asset, not a variable a copy could carry
    writer.save_model(model, tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").layers[0].get_vocabulary() == ["[UNK]", "a", "b", "c"]


def test_a_write_superseded_while_queued_is_skipped_and_the_newest_lands(tmp_path):
    run = rd.RunDir(tmp_path)
    written = []

    def write(epoch):
        written.append(epoch)
        run.write_json(rd.STATUS, {"epoch": epoch}, durable=False)

    gate = threading.Event()
    writer.submit(gate.wait)  # holds the writer while the next submissions queue up
    for epoch in range(1, 6):
        writer.submit(write, epoch, supersede="status")
    gate.set()
    writer.flush()
    assert written == [5]
    assert json.loads((tmp_path / rd.STATUS).read_text()) == {"epoch": 5}


def test_only_durable_writes_fsync(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    run = rd.RunDir(tmp_path)
    run.write_text(rd.HISTORY, "epoch\n1\n", durable=False)
    assert synced == []
    run.write_text(rd.HISTORY, "epoch\n1\n2\n")
    assert len(synced) == 2  # the file, then its folder (the rename)
    assert (tmp_path / rd.HISTORY).read_text() == "epoch\n1\n2\n"
