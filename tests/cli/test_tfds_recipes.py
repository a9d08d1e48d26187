"""tfds offline-safety (prepared data, manual dir, network probe) and the tfds recipes end to end on mock data."""

from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from runner.cli.main import main
from runner.spec import load_config
from runner.data.build import build_data, ensure_available
from runner.data.sources import tfds_source
from runner.kernel.errors import ConfigError, DataError
from helpers import prepare_tfds_metadata, run_cli, write_spec

RECIPES = {"cifar10": ([32, 32, 3], "float32"), "mnist": ([28, 28, 1], "float32"),
           "fashion_mnist": ([28, 28, 1], "float32"), "imdb": ([], "string")}


# the recipes' own callbacks stay; the artifact writers that cost seconds per epoch are off for these smoke runs
QUIET_CALLBACKS = ["--set", "callbacks.tensorboard=null", "--set", "callbacks.checkpoint=null",
                   "--set", "callbacks.backup=null"]


class DlrunDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's digits as a TFDS data set: 8x8x1 uint8 images (values 0..240), 10 classes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, supervised_keys=("image", "label"), features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(8, 8, 1)), "label": tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, 1400), "test": self._generate_examples(1400, 1797)}

    def _generate_examples(self, lo, hi):
        bunch = load_digits()
        for i in range(lo, hi):
            yield i, {"image": (bunch.images[i] * 15).astype("uint8")[..., None], "label": int(bunch.target[i])}


@pytest.fixture(scope="module")
def copied_data_dir(tmp_path_factory):
    """A prepared TFDS data_dir built elsewhere and copied here, as a user would bring it to an offline host."""
    made = tmp_path_factory.mktemp("made")
    DlrunDigits(data_dir=str(made)).download_and_prepare()
    copied = tmp_path_factory.mktemp("copied") / "tensorflow_datasets"
    shutil.copytree(made, copied, ignore=shutil.ignore_patterns("downloads"))
    return copied


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt is recorded and refused."""
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    return attempts


def digits_tfds_spec(tmp_path, data_dir, **data):
    return {"name": "digits-tfds", "seed": 4,
            "data": {"source": "tfds", "name": "dlrun_digits", "data_dir": str(data_dir), "batch_size": 64,
                     "preprocess": [{"rescale": {"scale": 1 / 240}}], **data},
            "model": {"arch": "cnn", "filters": [16, 32], "dense": [64]},
            "train": {"epochs": 10, "optimizer": "adam", "lr": 0.003},
            "callbacks": {"tensorboard": None},
            "output": {"dir": str(tmp_path / "runs")}}


def tfds_cfg(tmp_path, name, **data):
    spec = {"name": "x", "data": {"source": "tfds", "name": name, "data_dir": str(tmp_path), **data},
            "model": {"arch": "mlp"}}
    return load_config(str(write_spec(tmp_path, spec)), [])[0]


def test_prepared_copy_trains_with_zero_network_attempts(tmp_path, copied_data_dir, no_network):
    spec = write_spec(tmp_path, digits_tfds_spec(tmp_path, copied_data_dir))
    assert main(["train", str(spec), "--run-dir", str(tmp_path / "run")]) == 0
    assert no_network == []
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["data"]["cardinality"] == {"train": 1260, "validation": 140, "test": 397}
    assert env["data"]["input_shape"] == [8, 8, 1] and env["data"]["value_range"] == [0.0, 255.0]
    assert metrics["test"]["accuracy"] >= 0.88


def test_prepared_copy_reads_without_the_builder_code(tmp_path, copied_data_dir):
    """A fresh process has no DlrunDigits class: tfds reads the copied files alone; DLRUN_OFFLINE forbids a download."""
    spec = write_spec(tmp_path, digits_tfds_spec(tmp_path, copied_data_dir, augment=[{"random_flip": {}}]))
    proc = run_cli("data", "preview", spec, "--n", "9", "--out", tmp_path / "grid.png", env={"DLRUN_OFFLINE": "1"},
                   check_code=0)
    assert proc.stdout.strip() == str(tmp_path / "grid.png")
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as image:
        assert image.format == "PNG" and image.size == (3 * 160, 3 * 180)


def offline_message(root, reason, folder="cifar10/3.0.2", archives=" (cifar-10-binary.tar.gz)"):
    return (f"data.name: TFDS data set 'cifar10' is not prepared in {root} (looked for {root}/{folder}/"
            f"dataset_info.json) and cannot be downloaded: {reason}. Ways out:\n"
            f"  - copy a prepared {folder} folder (made by tfds on another machine) into {root} "
            f"(or point data.data_dir at it)\n"
            f"  - put the raw archives{archives} in {root}/downloads/manual/\n"
            f"  - run once on a machine with internet (data.download: auto) and copy {root}/cifar10 here")


@pytest.mark.parametrize("download", ["auto", "true", "false"])
def test_offline_fails_fast_with_the_ways_out(tmp_path, monkeypatch, no_network, download):
    monkeypatch.setenv("DLRUN_OFFLINE", "1")
    cfg = tfds_cfg(tmp_path, "cifar10", download={"true": True, "false": False}.get(download, download))
    with pytest.raises(DataError) as e:
        build_data(cfg.data, 0)
    if download == "false":  # decided from the folder alone, before tfds knows the version
        assert e.value.message == offline_message(tmp_path, "data.download is false", "cifar10/<version>", "")
    else:
        assert e.value.message == offline_message(tmp_path, "DLRUN_OFFLINE is set")
    assert no_network == []


@pytest.mark.parametrize("download", ["auto", "true", "false"])
def test_offline_cli_exits_3_on_this_closed_network(tmp_path, download):
    if download != "false" and tfds_source.network_problem(["https://www.cs.toronto.edu/"]) is None:
        pytest.skip("the network answers here: a real download would start")
    proc = run_cli("experiments/cifar10.yaml", "--set", f"data.data_dir={tmp_path}", "--set",
                   f"data.download={download}", timeout=60)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert f"data.name: TFDS data set 'cifar10' is not prepared in {tmp_path}" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def test_network_probe_reports_each_host(monkeypatch):
    monkeypatch.delenv("DLRUN_OFFLINE", raising=False)
    problem = tfds_source.network_problem(["https://127.0.0.1:9/a.tar.gz", "http://127.0.0.1:9/b.tar.gz"])
    assert problem == "the network does not answer within 3 s: 127.0.0.1:9 (Connection refused)"
    monkeypatch.setenv("DLRUN_OFFLINE", "1")
    assert tfds_source.network_problem(["https://127.0.0.1:9/a"]) == "DLRUN_OFFLINE is set"


def test_manual_dir_missing_files_never_reach_the_network(tmp_path, no_network):
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (manual / name).write_bytes(b"")
    cfg = tfds_cfg(tmp_path, "mnist")
    with pytest.raises(DataError) as e:
        ensure_available(cfg.data)
    assert e.value.message == (f"data.name: TFDS data set 'mnist': the manual dir {manual} lacks "
                               "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; put every raw archive there, "
                               "or empty it to download")
    assert no_network == []


def test_unknown_tfds_name_is_a_config_error(tmp_path, no_network):
    cfg = tfds_cfg(tmp_path, "cifr10")
    with pytest.raises(ConfigError, match=rf"^data.name: unknown TFDS data set 'cifr10'; did you mean 'cifar10'\? "
                                          rf"\(nor a prepared copy in {tmp_path}\)$"):
        ensure_available(cfg.data)


def test_summary_of_the_cifar10_recipe_works_offline(tmp_path, monkeypatch, capsys, no_network):
    monkeypatch.setenv("DLRUN_OFFLINE", "1")
    assert main(["summary", "experiments/cifar10.yaml", "--set", f"data.data_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "input shape: [32, 32, 3]  task: classification  classes: 10" in out
    assert "total parameters:" in out and no_network == []


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_runs_one_epoch_on_mock_data(tmp_path, recipe, no_network):
    spec = f"experiments/{recipe}.yaml"
    cfg = load_config(spec, [])[0]
    prepare_tfds_metadata(cfg.data.name, tmp_path)
    with tfds.testing.mock_data(num_examples=32):
        code = main(["train", spec, "--run-dir", str(tmp_path / "run"), "--set", "train.epochs=1",
                     "--set", "train.lr.warmup_epochs=0", "--set", "data.batch_size=16",
                     "--set", f"data.data_dir={tmp_path}", *QUIET_CALLBACKS])
    assert code == 0 and no_network == []
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert metrics["epochs_run"] == 1 and np.isfinite(metrics["train"]["loss"])
    assert env["data"]["cardinality"] == {"train": 32, "validation": 32, "test": 32}
    assert [env["data"]["input_shape"], env["data"]["input_dtype"]] == list(RECIPES[recipe])


def test_manual_dir_archive_with_a_wrong_checksum_is_a_data_error(tmp_path, no_network):
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (manual / name).write_bytes(b"not the MNIST archive")
    # tfds checks the archives concurrently: whichever it meets first is named
    with pytest.raises(DataError, match=rf"^data.name: TFDS data set 'mnist': {manual}/(train|t10k)-(images|labels)-"
                                        r"idx[13]-ubyte.gz is not the expected archive \(its checksum differs\); "
                                        r"replace it with the original file$"):
        ensure_available(tfds_cfg(tmp_path, "mnist").data)
    assert no_network == []


def test_image_size_resizes_tfds_images(tmp_path, copied_data_dir, no_network):
    spec = digits_tfds_spec(tmp_path, copied_data_dir, image_size=[16, 20])
    data = build_data(load_config(str(write_spec(tmp_path, spec)), [])[0].data, 0)
    x, y = next(iter(data.splits["test"].batch(4)))
    assert data.info.input_shape == (16, 20, 1) and x.shape == (4, 16, 20, 1) and x.dtype.name == "float32"
    assert y.dtype.name == "int64" and no_network == []
