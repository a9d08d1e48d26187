"""Sources end to end on real bundled data: digits as PNG files, iris as CSV, sklearn's DESCR texts as a text folder."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from PIL import Image
from sklearn import datasets

from runner.cli.main import main
from runner.spec import load_config
from runner.kernel.errors import DataError
from helpers import write_spec

TEXT_SETS = ("iris", "digits", "wine", "breast_cancer")


def write_digit_pngs(root, per_class=None):
    """scikit-learn's digits as 8x8 grayscale PNGs in <root>/<digit>/<i>.png (values 0..16 scaled to 0..240)."""
    bunch = datasets.load_digits()
    counts = {}
    for i, (image, label) in enumerate(zip(bunch.images, bunch.target)):
        if per_class is not None and counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 15).astype("uint8"), mode="L").save(folder / f"{i:04d}.png")
    return sum(counts.values())


def write_broken(folder, count):
    """Files that look like images by name but are not: half truncated PNGs, half plain text."""
    folder.mkdir(parents=True, exist_ok=True)
    good = sorted((folder.parent / "0").glob("*.png"))[0].read_bytes()
    for i in range(count):
        (folder / f"broken{i:02d}.png").write_bytes(good[: len(good) // 2] if i % 2 else b"not an image")


def image_spec(tmp_path, path, **data):
    return {"name": "digits-png", "seed": 3,
            "data": {"source": "image_folder", "path": str(path), "color_mode": "grayscale", "batch_size": 64,
                     "splits": {"train": "[:70%]", "validation": "[70%:85%]", "test": "[85%:]"},
                     "preprocess": [{"rescale": {"scale": 1 / 240}}], **data},
            "model": {"arch": "cnn", "filters": [16, 32], "dense": [64]},
            "train": {"epochs": 6, "optimizer": "adam", "lr": 0.003},
            "callbacks": {"tensorboard": None},
            "output": {"dir": str(tmp_path / "runs")}}


def train(tmp_path, spec) -> dict:
    run = tmp_path / "run"
    assert main(["train", str(write_spec(tmp_path, spec)), "--run-dir", str(run)]) == 0
    return {name: json.loads((run / f"{name}.json").read_text()) for name in ("metrics", "env")}


def build(tmp_path, spec):
    from runner.data.build import build_data

    cfg, _ = load_config(str(write_spec(tmp_path, spec)), [])
    return build_data(cfg.data, cfg.seed)


def test_image_folder_trains_on_digit_pngs_and_skips_corrupt_files(tmp_path, caplog):
    n = write_digit_pngs(tmp_path / "digits")
    write_broken(tmp_path / "digits" / "3", 3)
    with caplog.at_level(logging.WARNING, logger="dlrun"):
        out = train(tmp_path, image_spec(tmp_path, tmp_path / "digits", skip_corrupt=True))
    assert out["metrics"]["test"]["accuracy"] >= 0.9
    assert out["env"]["data"]["skipped_corrupt"] == 3
    assert out["env"]["data"]["cardinality"] == {"train": 1258, "validation": 269, "test": 270}
    assert sum(out["env"]["data"]["cardinality"].values()) == n == 1797
    assert out["env"]["data"]["input_shape"] == [8, 8, 1]
    assert f"skipped 3 unreadable file(s) of {n + 3} (data.skip_corrupt)" in caplog.text


def test_corrupt_images_fail_before_training_listing_twenty(tmp_path):
    write_digit_pngs(tmp_path / "digits", per_class=5)
    write_broken(tmp_path / "digits" / "7", 25)
    spec = image_spec(tmp_path, tmp_path / "digits")
    with pytest.raises(DataError) as e:
        build(tmp_path, spec)
    lines = e.value.message.splitlines()
    assert lines[0] == (f"data.path: {tmp_path / 'digits'}: 25 of 75 image files are unreadable; fix or remove "
                        "them, or set data.skip_corrupt: true to skip them")
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  ... and 5 more"
    broken00 = tmp_path / 'digits' / '7' / 'broken00.png'
    assert lines[1] == f"  {broken00}: cannot identify image file {str(broken00)!r}"
    assert lines[2] == f"  {tmp_path / 'digits' / '7' / 'broken01.png'}: image file is truncated"
    assert main(["train", str(write_spec(tmp_path, spec))]) == 3


def test_image_folder_size_and_color_mode(tmp_path):
    write_digit_pngs(tmp_path / "digits", per_class=4)
    data = build(tmp_path, image_spec(tmp_path, tmp_path / "digits", color_mode="rgb", image_size=[16, 12]))
    assert data.info.input_shape == (16, 12, 3) and data.info.class_names == [str(i) for i in range(10)]
    assert data.train_x is None  # nothing adapts on the training images: they are not held in memory
    adapting = build(tmp_path, image_spec(tmp_path, tmp_path / "digits", preprocess=[{"normalize": {}}]))
    assert adapting.train_x.shape == (28, 8, 8, 1) and adapting.info.cardinality == {"train": 28, "validation": 6,
                                                                                      "test": 6}
    x, y = next(iter(data.splits["train"].batch(100)))
    assert x.dtype.name == "float32" and x.shape[1:] == (16, 12, 3)
    assert 0.0 <= float(x.numpy().min()) and float(x.numpy().max()) <= 240.0
    assert np.allclose(x[..., 0], x[..., 2])  # gray digits read as rgb: equal channels


def numpy_spec(path, **data) -> dict:
    return {"name": "digits-npz", "seed": 2, "data": {"source": "numpy", "path": str(path), **data},
            "model": {"arch": "mlp", "units": [8]}}


def test_numpy_images_state_their_value_range_and_brightness_stays_inside_it(tmp_path):
    import tensorflow as tf

    from runner.data.augment import augment_fn

    images = datasets.load_digits().images[..., None]
    np.savez(tmp_path / "unit.npz", x=(images / 16).astype("float32"), y=datasets.load_digits().target)
    np.savez(tmp_path / "bytes.npz", x=(images * 15).astype("uint8"), y=datasets.load_digits().target)
    np.savez(tmp_path / "table.npz", x=datasets.load_digits().data, y=datasets.load_digits().target)
    assert build(tmp_path, numpy_spec(tmp_path / "unit.npz")).info.value_range == (0.0, 1.0)  # the array's extremes
    assert build(tmp_path, numpy_spec(tmp_path / "bytes.npz")).info.value_range == (0.0, 255.0)
    assert build(tmp_path, numpy_spec(tmp_path / "unit.npz", value_range=[-1, 2])).info.value_range == (-1.0, 2.0)
    assert build(tmp_path, numpy_spec(tmp_path / "table.npz")).info.value_range is None  # not images

    # brightness shifts by up to factor * (high - low) and clips to the range: [0, 1] images stay [0, 1] images
    cfg, _ = load_config(str(write_spec(tmp_path, numpy_spec(tmp_path / "unit.npz",
                                                             augment=[{"random_brightness": {"factor": 0.5}}]))), [])
    data = build(tmp_path, numpy_spec(tmp_path / "unit.npz"))
    x, y = next(iter(data.splits["train"].batch(256)))
    fn = augment_fn(cfg.data, data.info)
    shifted = tf.data.Dataset.from_tensors((x, y)).map(lambda a, b: fn(a, b, tf.constant([3, 0], tf.int64)))
    out = next(iter(shifted))[0].numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0 and not np.array_equal(out, x.numpy())
    assert np.abs(out - x.numpy()).max() <= 0.5 + 1e-6


def write_iris_csv(path, with_category=True):
    bunch = datasets.load_iris()
    header = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + (["sepal_band"] if with_category else []))
        for row, target in zip(bunch.data, bunch.target):
            band = ["short", "medium", "long"][int(np.digitize(row[0], [5.4, 6.3]))]
            w.writerow([*row, bunch.target_names[target], *([band] if with_category else [])])


def csv_spec(tmp_path, path, **data):
    return {"name": "iris-csv", "seed": 5,
            "data": {"source": "csv", "path": str(path), "label": "species", "categorical": ["sepal_band"],
                     "batch_size": 16, "splits": {"train": "[:60%]", "validation": "[60%:80%]", "test": "[80%:]"},
                     "preprocess": [{"normalize": {}}], **data},
            "model": {"arch": "mlp", "units": [32, 32]},
            "train": {"epochs": 40, "optimizer": "adam", "lr": 0.01},
            "callbacks": {"tensorboard": None},
            "output": {"dir": str(tmp_path / "runs")}}


def test_csv_trains_iris_with_a_one_hot_category(tmp_path):
    write_iris_csv(tmp_path / "iris.csv")
    out = train(tmp_path, csv_spec(tmp_path, tmp_path / "iris.csv"))
    assert out["metrics"]["test"]["accuracy"] >= 0.9
    data = out["env"]["data"]
    assert data["input_shape"] == [7]  # 4 numbers + 3 one-hot sepal bands
    assert data["class_names"] == ["setosa", "versicolor", "virginica"]
    assert data["cardinality"] == {"train": 90, "validation": 30, "test": 30}


def test_csv_encodings_and_errors(tmp_path):
    write_iris_csv(tmp_path / "iris.csv")
    spec = csv_spec(tmp_path, tmp_path / "iris.csv", categorical_encoding="index")
    x, _ = next(iter(build(tmp_path, spec).splits["train"].batch(200)))
    assert x.shape[1] == 5 and set(np.unique(x[:, 4])) == {0.0, 1.0, 2.0}  # long, medium, short

    with pytest.raises(DataError, match=r"data.label: no column 'specis' in .*iris.csv; did you mean 'species'\?"):
        build(tmp_path, csv_spec(tmp_path, tmp_path / "iris.csv", label="specis"))
    with pytest.raises(DataError, match=r"iris.csv:2: column 'sepal_band': 'short' is not a number; list the "
                                        r"column in data.categorical"):
        build(tmp_path, csv_spec(tmp_path, tmp_path / "iris.csv", categorical=[]))
    (tmp_path / "bad.csv").write_text("a,b,label\n1,2,x\n3,y\n")
    with pytest.raises(DataError, match=r"bad.csv:3: 2 fields, but the header has 3$"):
        build(tmp_path, csv_spec(tmp_path, tmp_path / "bad.csv", label="label", categorical=[]))


def write_descr_folder(root):
    """One class per scikit-learn data set; each example is a line of its DESCR text (real English)."""
    for name in TEXT_SETS:
        folder = root / name
        folder.mkdir(parents=True)
        lines = [line.strip() for line in getattr(datasets, f"load_{name}")().DESCR.splitlines()
                 if len(line.split()) >= 4]
        for i, line in enumerate(lines):
            (folder / f"{i:03d}.txt").write_text(line)


def test_text_folder_trains_on_descr_lines_with_a_saved_vocabulary(tmp_path):
    import keras

    write_descr_folder(tmp_path / "texts")
    spec = {"name": "descr-text", "seed": 2,
            "data": {"source": "text_folder", "path": str(tmp_path / "texts"), "batch_size": 16,
                     "splits": {"train": "[:70%]", "validation": "[70%:85%]", "test": "[85%:]"},
                     "preprocess": [{"text_vectorize": {"max_tokens": 3000, "sequence_length": 24}}]},
            "model": {"layers": [{"Embedding": {"input_dim": 3000, "output_dim": 32}},
                                 {"GlobalAveragePooling1D": {}}, {"Dense": {"units": 4}}]},
            "train": {"epochs": 40, "optimizer": "adam", "lr": 0.01},
            "callbacks": {"tensorboard": None},
            "output": {"dir": str(tmp_path / "runs")}}
    out = train(tmp_path, spec)
    assert out["env"]["data"]["input_dtype"] == "string" and out["env"]["data"]["input_shape"] == []
    assert out["env"]["data"]["class_names"] == sorted(TEXT_SETS)
    assert out["metrics"]["test"]["accuracy"] >= 0.6  # majority class: 0.38
    # the vocabulary travels inside model.keras, adapted on the training split only
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    vocab = model.get_layer("text_vectorize").get_vocabulary()
    texts = [x for x, _ in build(tmp_path, spec).splits["train"].as_numpy_iterator()]
    reference = keras.layers.TextVectorization(max_tokens=3000)
    reference.adapt(texts)
    assert vocab == reference.get_vocabulary() and len(vocab) > 300
    probs = model.predict(np.array(["Iris Setosa Versicolour Virginica petal sepal"], dtype=object), verbose=0)
    assert int(np.argmax(probs)) == sorted(TEXT_SETS).index("iris")


def test_summary_describes_folders_without_decoding_them(tmp_path, capsys):
    write_digit_pngs(tmp_path / "digits", per_class=2)
    write_broken(tmp_path / "digits" / "5", 2)  # describe reads names and one image: broken files do not matter
    assert main(["summary", str(write_spec(tmp_path, image_spec(tmp_path, tmp_path / "digits")))]) == 0
    assert "input shape: [8, 8, 1]  task: classification  classes: 10" in capsys.readouterr().out
    write_descr_folder(tmp_path / "texts")
    from runner.data.sources.text_folder import describe_text_folder

    cfg = load_config(str(write_spec(tmp_path, {"name": "t", "model": {"arch": "mlp"}, "data": {
        "source": "text_folder", "path": str(tmp_path / "texts")}})), [])[0]
    info = describe_text_folder(cfg.data)
    assert (info.input_shape, info.input_dtype, info.class_names) == ((), "string", sorted(TEXT_SETS))


def test_data_preview_of_a_table_is_a_usage_error(tmp_path, capsys):
    write_iris_csv(tmp_path / "iris.csv")
    assert main(["data", "preview", str(write_spec(tmp_path, csv_spec(tmp_path, tmp_path / "iris.csv")))]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "dlrun data preview shows images; the inputs of this spec's data (data.source: csv) have shape [7]")
