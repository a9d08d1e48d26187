"""TensorBoard logs of a finished run, read back with TensorBoard's own reader; steps across fits; config checks."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from helpers import digits_spec, run_cli, run_inline, write_spec

TB_SPEC = {"tensorboard": {"update_freq": 5, "images": 8, "confusion_matrix": "epoch", "profile_steps": [3, 5]},
           "checkpoint": None}


def _accumulator(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    return acc


def _values(acc, tag):
    from tensorboard.util.tensor_util import make_ndarray

    return [(e.step, make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 2-epoch digits run with every TensorBoard option on, trained in this process."""
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    folder = tmp_path_factory.mktemp("tb")
    spec = digits_spec(folder / "runs", callbacks=TB_SPEC,
                       train={"epochs": 2, "optimizer": "adam", "lr": {"schedule": "constant", "base": 0.003}})
    spec["data"]["augment"] = [{"random_translation": {"height_factor": 0.1, "width_factor": 0.1,
                                                       "fill_mode": "constant"}}]
    path = write_spec(folder, spec)
    cfg, _ = load_config(str(path), [])
    started = time.time()
    result = run_experiment(cfg, rd.RunDir.at(str(folder / "run")), spec_path=str(path))
    (folder / "wall.json").write_text(json.dumps([started, time.time()]))  # the test's own clock around the run
    return result.run_dir.path


def test_scalar_tags_are_exactly_dlruns(finished):
    logs = finished / "tensorboard"
    train, validation, root = (_accumulator(logs / "train"), _accumulator(logs / "validation"),
                               _accumulator(logs))
    assert set(train.PluginTagToContent("scalars")) == {
        "epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_seconds", "epoch_examples_per_sec",
        "batch_loss", "batch_accuracy"}
    assert set(validation.PluginTagToContent("scalars")) == {
        "epoch_loss", "epoch_accuracy", "evaluation_loss_vs_iterations", "evaluation_accuracy_vs_iterations"}
    assert set(root.PluginTagToContent("scalars")) == {"best/val_accuracy", "test/accuracy", "test/loss"}
    # epochs are steps 0 and 1; batch scalars every 5 steps land on the calls' last steps (20 steps per call)
    assert [s for s, _ in _values(train, "epoch_loss")] == [0, 1]
    assert [s for s, _ in _values(train, "batch_loss")] == [20, 40]
    assert [float(v) for _, v in _values(train, "epoch_learning_rate")] == pytest.approx([0.003, 0.003])
    throughput = [float(v) for _, v in _values(train, "epoch_examples_per_sec")]
    seconds = [float(v) for _, v in _values(train, "epoch_seconds")]
    assert [t * s for t, s in zip(throughput, seconds)] == pytest.approx([1258, 1258])  # the train split per epoch
    # epoch_seconds against wall-clock times taken outside dlrun's timer: the test's clock around the run and the
    # event files' own timestamps (an epoch's summaries are written after it ends; the next epoch starts after)
    started, ended = json.loads((finished.parent / "wall.json").read_text())
    written = [e.wall_time for e in train.Tensors("epoch_seconds")]
    assert started < written[0] < written[1] < ended
    assert 0 < seconds[0] <= written[0] - started and 0 < seconds[1] <= written[1] - written[0]


def test_hparams_session_holds_config_and_best_metric(finished):
    from tensorboard.plugins.hparams import metadata

    root = _accumulator(finished / "tensorboard")
    content = root.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    session = metadata.parse_session_start_info_plugin_data(content)
    assert session.hparams["train.lr.base"].number_value == pytest.approx(0.003)
    assert session.hparams["train.optimizer.name"].string_value == "adam"
    assert session.hparams["data.batch_size"].number_value == 64
    assert session.hparams["callbacks.tensorboard.update_freq"].number_value == 5
    assert "data.augment" not in session.hparams  # lists are not scalar hyper-parameters
    metrics = json.loads((finished / "metrics.json").read_text())
    assert _values(root, "best/val_accuracy") == [(2, pytest.approx(metrics["best"]["value"]))]
    assert float(_values(root, "test/accuracy")[0][1]) == pytest.approx(metrics["test"]["accuracy"])


def test_images_graph_config_text_and_profile(finished):
    import io

    from PIL import Image

    logs = finished / "tensorboard"
    train, validation = _accumulator(logs / "train"), _accumulator(logs / "validation")
    (step, samples), = _values(train, "augmented_samples")
    width, height = int(samples[0]), int(samples[1])
    assert step == 0 and Image.open(io.BytesIO(samples[2])).size == (width, height) and width > 200
    assert [s for s, _ in _values(validation, "confusion_matrix")] == [0, 1]
    (_, text), = _values(train, "config")
    assert yaml.safe_load(text.item().decode().strip("`\n").removeprefix("yaml\n")) == \
        yaml.safe_load((finished / "config.yaml").read_text())
    assert train.Graph().node  # the op graph of the forward pass
    assert "keras" in train.PluginTagToContent("graph_keras_model")
    assert len(list((logs / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))) == 1


def test_steps_continue_across_fits(tmp_path):
    """A second fit with initial_epoch (what a resume does) continues the curves: no second step 0."""
    import keras
    from sklearn.datasets import load_digits

    from runner.kernel import run_dir as rd
    from runner.callbacks import CallbackContext
    from runner.callbacks.tensorboard import TensorBoard, build

    x, y = load_digits(return_X_y=True)
    x, y = x[:320].astype("float32") / 16, y[:320]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=2)
    run = rd.RunDir.at(str(tmp_path / "run"))
    cfg = TensorBoard(update_freq=1, images=0, confusion_matrix=None)
    ctx = CallbackContext(run, "loss", False, steps_per_epoch=10)
    model.fit(x, y, batch_size=32, epochs=2, callbacks=build(cfg, ctx), verbose=0)
    model.fit(x, y, batch_size=32, epochs=4, initial_epoch=2, callbacks=build(cfg, ctx), verbose=0)
    train = _accumulator(run.path / "tensorboard" / "train")
    assert [s for s, _ in _values(train, "epoch_loss")] == [0, 1, 2, 3]
    # two steps per call: Keras's own callback would count calls (1, 2, ...) and restart at 1
    assert [s for s, _ in _values(train, "batch_loss")] == list(range(2, 41, 2))


def test_profile_steps_must_be_a_range(tmp_path):
    spec = digits_spec(tmp_path, callbacks={"tensorboard": {"profile_steps": [15, 10]}})
    path = write_spec(tmp_path, yaml.safe_dump(spec, sort_keys=False))
    proc = run_cli("validate", "spec.yaml", cwd=tmp_path, check_code=2)
    line = next(i + 1 for i, t in enumerate(path.read_text().splitlines()) if "profile_steps:" in t)
    assert proc.stderr.strip() == (f"spec.yaml:{line}: callbacks.tensorboard.profile_steps: must be [first, last] "
                                   "with first <= last, e.g. [10, 15]; received [15, 10]")


@pytest.mark.slow
def test_resumed_run_continues_its_curves(tmp_path):
    """Killed (SIGKILL) in epoch 2, then `dlrun resume`: the resumed process's events continue from the backup's
    step; no curve starts again at 0."""
    spec = digits_spec(tmp_path, callbacks={"tensorboard": {"update_freq": 4, "images": 0, "confusion_matrix": None},
                                            "backup": {"every": 8}, "custom": ["dlrun_faults:KillAtStep"]},
                       train={"epochs": 3, "optimizer": "adam", "lr": 0.003, "steps_per_execution": 4})
    path = write_spec(tmp_path, spec)
    run = tmp_path / "run"
    # SIGKILL (tests/plugins/dlrun_faults.py) before the call after step 30: at step 32, after its backup
    killed = run_cli("train", path, "--run-dir", run, env={"FAULT_KILL_AT_STEP": "30"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_inline("resume", run, check_code=0)
    resumed_at = json.loads((run / "status.json").read_text())["resumed_from"]["step"]
    assert resumed_at == 32
    # event files are named events.out.tfevents.<time>.<host>.<pid>.<n>: one per fit, grouped by process
    files = sorted((run / "tensorboard" / "train").glob("events.out.tfevents.*"),
                   key=lambda f: (int(f.name.split(".")[3]), int(f.name.split(".")[6])))
    pids = list(dict.fromkeys(f.name.split(".")[5] for f in files))
    assert len(pids) == 2

    def steps(pid, tag):
        accumulators = [_accumulator(f) for f in files if f.name.split(".")[5] == pid]
        return [s for a in accumulators if tag in a.Tags()["tensors"] for s, _ in _values(a, tag)]

    assert steps(pids[0], "epoch_loss") == [0]  # flushed at the end of epoch 1
    assert steps(pids[1], "epoch_loss") == [1, 2]
    assert steps(pids[0], "batch_loss")[:5] == [4, 8, 12, 16, 20]
    assert steps(pids[1], "batch_loss") == list(range(resumed_at + 4, 61, 4))
    validation = _accumulator(run / "tensorboard" / "validation")
    assert sorted(s for s, _ in _values(validation, "epoch_loss")) == [0, 1, 2]
