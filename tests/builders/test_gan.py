"""task gan: validation rules, training through the CLI (metrics, sample grids, predict, export), MirroredStrategy,
and a SIGKILL mid-epoch then `dlrun resume` bitwise equal to an uninterrupted run."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from runner.callbacks.backup import backup_files, read_backup
from runner.cli.main import main
from helpers import prepare_tfds_metadata, run_cli, run_inline, write_spec

STEPS = 9  # 50% of the 1797 digits (898) in batches of 112


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def gan_spec(out_dir, features=None, **sections) -> dict:
    spec = {
        "name": "gan-test",
        "seed": 3,
        "task": "gan",
        "data": {"source": "sklearn", "name": "digits", "batch_size": 112,
                 "splits": {"train": "[:50%]", "validation": None, "test": None}},
        "model": {"latent_dim": 8, "generator": {"arch": "mlp", "units": [32]},
                  "discriminator": {"arch": "mlp", "units": [32], "activation": "leaky_relu"}},
        "train": {"epochs": 2, "optimizer": {"name": "adam", "beta_1": 0.5}, "lr": 0.001,
                  "discriminator": {"optimizer": "adam", "lr": 0.002}},
        "gan": {"loss": "hinge", "ema": 0.9, "grid": 4},
        "output": {"dir": str(out_dir)},
    }
    if features is not None:
        spec["gan"]["fid"] = {"features": str(features), "samples": 200}
    spec.update(sections)
    return spec


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A small digits MLP run: the FID feature space of these tests."""
    folder = tmp_path_factory.mktemp("classifier")
    spec = {"name": "fid-features", "seed": 1,
            "data": {"source": "sklearn", "name": "digits", "batch_size": 64,
                     "splits": {"train": "[:80%]", "validation": None, "test": "[80%:]"}},
            "model": {"arch": "mlp", "units": [32]}, "train": {"epochs": 8, "lr": 0.003},
            "callbacks": {"tensorboard": None, "checkpoint": None, "backup": None},
            "output": {"dir": str(folder)}}
    assert main(["train", str(write_spec(folder, spec)), "--run-dir", str(folder / "run")]) == 0
    return folder / "run"


def test_validate_names_each_gan_rule_with_its_line(tmp_path, capsys):
    spec = gan_spec(tmp_path)
    spec["model"] = {"arch": "mlp"}
    assert main(["validate", str(write_spec(tmp_path, spec))]) == 2
    err = capsys.readouterr().err
    line = 1 + next(i for i, t in enumerate((tmp_path / "spec.yaml").read_text().splitlines()) if t == "model:")
    assert f"spec.yaml:{line}: model: task: gan needs model.generator and model.discriminator; received an arch " \
           "('mlp'); see docs/gan.md" in err

    spec = gan_spec(tmp_path, task="supervised")
    spec["train"]["loss"] = "mse"
    assert main(["validate", str(write_spec(tmp_path, spec))]) == 2
    err = capsys.readouterr().err
    assert "model: generator and discriminator are the model of `task: gan`; received task 'supervised'; set " \
           "task: gan, or give an arch" in err
    assert "gan: applies to task: gan only; received task 'supervised'" in err
    assert "train.discriminator: applies to task: gan only; received task 'supervised'" in err

    spec = gan_spec(tmp_path)
    spec["train"].update(loss="mse", metrics=["accuracy"])
    spec["data"]["preprocess"] = [{"rescale": {"scale": 0.0625}}]
    spec["gan"]["loss"] = "wgan"
    assert main(["validate", str(write_spec(tmp_path, spec))]) == 2
    err = capsys.readouterr().err
    assert "gan.loss: must be one of non_saturating, hinge, wgan_gp; received 'wgan'; did you mean 'wgan_gp'?" in err
    spec["gan"]["loss"] = "wgan_gp"
    assert main(["validate", str(write_spec(tmp_path, spec))]) == 2
    err = capsys.readouterr().err
    assert ("train.loss: task: gan takes its loss from gan.loss (non_saturating, hinge, wgan_gp); received 'mse'; "
            "remove train.loss") in err
    assert "train.metrics: task: gan logs d_loss and g_loss; its quality metric is gan.fid" in err
    assert ("data.preprocess: task: gan maps the data's raw value range onto the generator's [-1, 1] itself; "
            "remove data.preprocess") in err

    spec = gan_spec(tmp_path, callbacks={"early_stopping": {"monitor": "accuracy"}})
    assert main(["validate", str(write_spec(tmp_path, spec))]) == 2
    assert ("callbacks.early_stopping.monitor: 'accuracy' is not logged; choose one of d_loss, g_loss, loss, "
            "val_d_loss, val_g_loss, val_loss") in capsys.readouterr().err


def test_frechet_distance_of_gaussian_fits():
    from runner.gan.fid import frechet_distance

    x = np.random.default_rng(0).standard_normal((500, 4))
    assert abs(frechet_distance(x, x)) < 1e-9
    # a shift of the mean by (3, 4, 0, 0) adds |shift|^2 = 25; the covariances are equal
    assert abs(frechet_distance(x, x + [3.0, 4.0, 0.0, 0.0]) - 25.0) < 1e-9
    # N(0, I) against N(0, 4 I) in 4 dimensions: Tr(I + 4I - 2 * 2I) = 4, up to the samples' own spread
    y = np.random.default_rng(1).standard_normal((200_000, 4))
    assert abs(frechet_distance(y[:100_000], 2 * y[100_000:]) - 4.0) < 0.05


def test_inception_features_need_the_weights_in_the_keras_cache(tmp_path, monkeypatch):
    from runner.gan.fid import INCEPTION, Features
    from runner.kernel.errors import ConfigError

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as e:
        Features(INCEPTION)
    assert str(e.value) == (
        f"gan.fid.features: inception_v3 needs Keras's ImageNet weights in the Keras cache ({tmp_path}/models/"
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5), and dlrun does not download; copy the file "
        "there, or give a classifier (a run directory, a .keras file or a .yaml spec)")


def test_summary_shows_both_networks(tmp_path, capsys):
    assert main(["summary", str(write_spec(tmp_path, gan_spec(tmp_path)))]) == 0
    out = capsys.readouterr().out
    # generator 8 -> 32 -> 64 (+ tanh image), discriminator 64 -> 32 -> 1
    assert "generator (Functional)" in out and "discriminator (Functional)" in out
    assert "total parameters: 4,513\n" in out


def test_train_writes_fid_samples_and_serves_predict_and_export(tmp_path, classifier):
    run = tmp_path / "run"
    path = write_spec(tmp_path, gan_spec(tmp_path, classifier, export=["onnx"]))
    assert main(["train", str(path), "--run-dir", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and sorted(metrics["train"]) == ["d_loss", "g_loss", "loss"]
    gan = metrics["gan"]
    assert sorted(gan) == ["class_fractions", "features", "fid", "fid_initial", "samples"]
    assert gan["features"] == str(classifier / "model.keras") and gan["samples"] == 200
    assert gan["fid"] > 0 and gan["fid_initial"] > 0
    assert len(gan["class_fractions"]) == 10 and abs(sum(gan["class_fractions"]) - 1) < 1e-9
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,d_loss,g_loss,loss,learning_rate") and len(history) == 3
    assert png_size(run / "samples.png") == (4 * 33 + 1, 4 * 33 + 1)  # 4x4 grid of 8x8 images upscaled x4
    events = list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert any(b"gan/samples" in e.read_bytes() for e in events)

    assert main(["predict", str(run), "--samples", "10"]) == 0
    assert png_size(run / "samples-10.png") == (4 * 33 + 1, 3 * 33 + 1)
    assert main(["predict", str(run), "--class", "3"]) == 2  # unconditional

    assert main(["export", str(run), "--format", "tflite"]) == 0  # the spec's `export:` wrote model.onnx
    assert main(["eval", str(run)]) == 2
    manifest = json.loads((run / "export" / "export.json").read_text())
    assert [manifest[f]["ok"] for f in ("model.onnx", "model.tflite")] == [True, True]
    assert manifest["model.onnx"]["examples"] == 512 and manifest["model.onnx"]["split"] == "noise"


def test_conditional_gan_reports_class_agreement_and_exports_both_inputs(tmp_path, classifier, capsys):
    spec = gan_spec(tmp_path, classifier, export=["onnx", "tflite"])
    spec["model"]["conditional"] = True
    spec["train"]["epochs"] = 1
    spec["gan"]["loss"] = "wgan_gp"
    run = tmp_path / "run"
    assert main(["train", str(write_spec(tmp_path, spec)), "--run-dir", str(run)]) == 0
    gan = json.loads((run / "metrics.json").read_text())["gan"]
    assert sorted(gan) == ["class_agreement", "features", "fid", "fid_initial", "samples"]
    assert 0 <= gan["class_agreement"] <= 1
    capsys.readouterr()
    assert main(["predict", str(run), "--samples", "4", "--class", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "samples-4.png")
    assert main(["predict", str(run), "--class", "10"]) == 2
    assert "--class: must be a class index 0..9; received 10" in capsys.readouterr().err
    # noise and class: each runtime's output on 512 noise vectors, the classes in turn, within 1e-4 of Keras's
    assert main(["export", str(run), "--format", "saved_model"]) == 0  # the spec's `export:` wrote the other two
    manifest = json.loads((run / "export" / "export.json").read_text())
    for name in ("model.onnx", "model.tflite", "saved_model"):
        assert manifest[name]["ok"] and manifest[name]["max_abs_diff"] <= 1e-4, manifest[name]


def test_trains_under_mirrored_strategy(tmp_path):
    spec = gan_spec(tmp_path, distribute={"strategy": "mirrored", "cpu_replicas": 2})
    spec["train"]["epochs"] = 1
    run_cli("train", write_spec(tmp_path, spec), "--run-dir", tmp_path / "run", check_code=0)
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [env["strategy"], env["replicas"]] == ["MirroredStrategy", 2]
    assert metrics["epochs_run"] == 1 and all(np.isfinite(v) for v in metrics["train"].values())


def _final_state(run) -> dict:
    meta, arrays = read_backup(backup_files(run / "backup")[0])
    return {k: v for k, v in arrays.items() if k.startswith(("model/", "optimizer/"))}, meta


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path):
    spec = gan_spec(tmp_path, callbacks={"backup": {"every": 3}, "tensorboard": None,
                                         "custom": ["dlrun_faults:KillAtStep"]})
    spec["train"].update(epochs=3, steps_per_execution=1)  # a backup every 3 steps, not at each execution's end
    spec["gan"]["loss"] = "non_saturating"
    reference = tmp_path / "reference"
    assert main(["train", str(write_spec(tmp_path, spec)), "--run-dir", str(reference)]) == 0

    run = tmp_path / "run"
    killed = run_cli("train", write_spec(tmp_path, spec), "--run-dir", run, env={"FAULT_KILL_AT_STEP": "13"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run_inline("resume", run, check_code=0)
    assert f"resuming {run} at epoch 2, step 3" in resumed.stderr  # the backup at global step 12
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed" and status["resumed_from"] == {"epoch": 1, "step": 12}

    (state, meta), (ref_state, ref_meta) = _final_state(run), _final_state(reference)
    assert meta["global_step"] == ref_meta["global_step"] == 3 * STEPS
    # generator, discriminator, the EMA, and both optimizers (their iterations and moments)
    assert meta["counts"]["optimizer"] == ref_meta["counts"]["optimizer"] > 2 * 4
    assert sorted(state) == sorted(ref_state)
    assert [k for k in state if not np.array_equal(state[k], ref_state[k])] == []


@pytest.mark.slow
def test_mnist_recipe_runs_one_epoch_on_mock_data(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from runner.spec import load_config

    spec = "experiments/mnist_gan.yaml"
    cfg = load_config(spec, [])[0]
    prepare_tfds_metadata(cfg.data.name, tmp_path)
    with tfds.testing.mock_data(num_examples=32):
        code = main(["train", spec, "--run-dir", str(tmp_path / "run"), "--set", "train.epochs=1",
                     "--set", "data.batch_size=16", "--set", f"data.data_dir={tmp_path}", "--set", "gan.fid=null",
                     "--set", "callbacks.tensorboard=null"])
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and "gan" not in metrics
    assert png_size(tmp_path / "run" / "samples.png") == (8 * 113 + 1, 8 * 113 + 1)  # 28x28 upscaled x4


@pytest.mark.slow
def test_digits_recipe_short_run_is_below_a_fifth_of_the_untrained_fid(tmp_path, classifier):
    """The one quality floor of the suite: the recipe cut to 25 epochs (the full 150-epoch figures for 3 seeds
    are in docs/performance.md)."""
    run = tmp_path / "run"
    assert main(["train", "experiments/digits_gan.yaml", "--run-dir", str(run), "--set", "train.epochs=25",
                 "--set", f"gan.fid.features={classifier}", "--set", "callbacks.tensorboard=null"]) == 0
    gan = json.loads((run / "metrics.json").read_text())["gan"]
    assert gan["fid"] <= 0.2 * gan["fid_initial"], gan
