"""Predict: image files, .npz arrays, CSV rows and text lines through a run's model, with only the run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import digits_spec, write_spec, write_text_folder
from scipy.special import softmax

from runner.cli.main import main

QUIET = {"tensorboard": None, "checkpoint": None, "backup": None}  # predict needs only model.keras


def _train(tmp, spec):
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    cfg, _ = load_config(write_spec(tmp, spec))
    return run_experiment(cfg, rd.RunDir.at(tmp / "run")).run_dir.path


def _test_split(run):
    from runner.data.build import build_data
    from runner.tools.evaluate import split_arrays
    from runner.tools.open_run import open_run

    opened = open_run(run)
    return split_arrays(build_data(opened.cfg.data, opened.cfg.seed), "test", 64)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits CNN good enough for the >= 97% check (about 98% on its test split)."""
    tmp = tmp_path_factory.mktemp("digits")
    spec = digits_spec(tmp, model={"arch": "cnn", "filters": [16, 32], "dense": [64]},
                       callbacks=QUIET)
    spec["train"]["epochs"] = 8
    spec["data"]["batch_size"] = 32
    return _train(tmp, spec)


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("iris")
    spec = {"name": "iris-test", "seed": 1,
            "data": {"source": "sklearn", "name": "iris", "batch_size": 16, "preprocess": [{"normalize": {}}],
                     "splits": {"train": "[:60%]", "validation": "[60%:80%]", "test": "[80%:]"}},
            "model": {"arch": "mlp", "units": [16]}, "train": {"epochs": 2}, "callbacks": QUIET,
            "output": {"dir": str(tmp)}}
    return _train(tmp, spec)


def _logits(run, x):
    import keras

    return keras.saving.load_model(run / "model.keras").predict(x, verbose=0).astype("float64")


def test_png_files_written_from_digits_test_images_are_classified(digits_run, tmp_path, capsys):
    from PIL import Image

    x, y = _test_split(digits_run)
    paths = []
    for i, image in enumerate(x):  # 8-bit grey PNGs: raw 0..16 spread over 0..255, as a scanner would
        paths.append(tmp_path / f"{i:03d}.png")
        Image.fromarray(np.round(image[..., 0] * 255 / 16).astype("uint8"), mode="L").save(paths[-1])
    assert main(["predict", str(digits_run), *map(str, paths), "--json", "--top-k", "1"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in records] == list(map(str, paths))
    predicted = np.array([int(r["top_k"][0]["class"]) for r in records])
    accuracy = np.mean(predicted == y)
    assert len(records) == 359 and accuracy >= 0.97, accuracy


def test_npz_top_k_are_the_softmax_of_the_logits_in_order(digits_run, tmp_path):
    from runner.tools.predict import format_records, predict_run
    from runner.tools.open_run import open_run

    x, _ = _test_split(digits_run)
    np.savez(tmp_path / "batch.npz", x=x[:4])
    records = predict_run(open_run(digits_run), [tmp_path / "batch.npz"], top_k=2)
    probs = softmax(_logits(digits_run, x[:4]), axis=-1)
    assert [r["input"] for r in records] == [f"{tmp_path / 'batch.npz'}[{i}]" for i in range(4)]
    for record, p in zip(records, probs):
        first, second = record["top_k"]
        assert first["index"] == int(np.argmax(p)) and first["class"] == str(first["index"])
        assert first["probability"] == pytest.approx(p.max(), abs=1e-6)
        assert second["probability"] == pytest.approx(np.sort(p)[-2], abs=1e-6)
    table = format_records(records).splitlines()
    assert table[0].split() == ["input", "class_1", "probability_1", "class_2", "probability_2"]
    assert table[1].split()[1:3] == [records[0]["top_k"][0]["class"], f"{records[0]['top_k'][0]['probability']:.6f}"]


def test_csv_rows_match_the_npz_of_the_same_rows(iris_run, tmp_path, capsys):
    x, _ = _test_split(iris_run)
    table = tmp_path / "flowers.csv"
    table.write_text("a,b,c,d\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in x[:3]) + "\n")
    assert main(["predict", str(iris_run), str(table), "--csv", "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "input,class_1,probability_1,class_2,probability_2,class_3,probability_3"
    assert [line.split(",")[0] for line in lines[1:]] == [f"{table}:{n}" for n in (2, 3, 4)]
    probs = softmax(_logits(iris_run, x[:3]), axis=-1)
    names = ["setosa", "versicolor", "virginica"]
    for line, p in zip(lines[1:], probs):
        cells = line.split(",")
        assert cells[1::2] == [names[i] for i in np.argsort(-p)]
        assert [float(c) for c in cells[2::2]] == pytest.approx(np.sort(p)[::-1], abs=1e-6)


def test_bad_inputs_are_explained_with_their_exit_codes(iris_run, tmp_path, capsys):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("1,2,3\n")
    assert main(["predict", str(iris_run), str(wrong)]) == 3
    assert capsys.readouterr().err.strip() == f"{wrong}: 3 feature columns but the model takes 4"
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,c,d\n")
    assert main(["predict", str(iris_run), str(header_only)]) == 3
    assert capsys.readouterr().err.strip() == f"no examples in {header_only}"
    assert main(["predict", str(iris_run), str(tmp_path / "missing.csv")]) == 3
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'missing.csv'}: input file not found"
    assert main(["predict", str(iris_run), str(tmp_path)]) == 3
    assert capsys.readouterr().err.strip() == (f"{tmp_path}: a folder; predict reads files, so pass the ones to "
                                               f"predict, such as {tmp_path}/*.png")
    odd = tmp_path / "rows.xlsx"
    odd.write_text("x")
    assert main(["predict", str(iris_run), str(odd)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{odd}: unknown input kind '.xlsx'; predict reads image files (.png .jpg .jpeg .bmp .gif), a .csv "
        "table, a .txt file of text lines, or an .npz archive")
    lines = tmp_path / "lines.txt"
    lines.write_text("hello\n")
    assert main(["predict", str(iris_run), str(lines)]) == 3
    assert capsys.readouterr().err.strip() == (
        f"{lines}: text lines are for models that take text; this model takes float32 inputs of shape [4]")


def test_text_lines_go_through_the_vocabulary_saved_in_the_model(tmp_path, capsys):
    """A text_folder run: the vocabulary travels inside model.keras, so the lines need nothing else."""
    spec = {"name": "reviews", "seed": 1, "output": {"dir": str(tmp_path)}, "callbacks": QUIET,
            "data": {"source": "text_folder", "path": str(write_text_folder(tmp_path / "reviews")), "batch_size": 16,
                     "preprocess": [{"text_vectorize": {"max_tokens": 50, "sequence_length": 8}}]},
            "model": {"layers": [{"Embedding": {"input_dim": 50, "output_dim": 8}}, {"GlobalAveragePooling1D": {}},
                                 {"Dense": {"units": 2}}]},
            "train": {"epochs": 10, "lr": 0.02}}
    run = _train(tmp_path, spec)
    texts = tmp_path / "notes.txt"
    texts.write_text("a really good film\n\nthe plot was awful and dull\n")
    assert main(["predict", str(run), str(texts), "--json", "--top-k", "2"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in records] == [f"{texts}:1", f"{texts}:3"]
    assert [r["top_k"][0]["class"] for r in records] == ["pos", "neg"]
    assert [r["top_k"][0]["probability"] + r["top_k"][1]["probability"] for r in records] == pytest.approx([1, 1])


def test_image_folder_files_are_decoded_exactly_as_training_read_them(tmp_path):
    """RGB files of another size, resized by the spec's interpolation; raw 0..255 values, as the source yields."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from runner.data.build import build_data
    from runner.data.sources.image_folder import index_folder
    from runner.tools.predict import predict_run, read_inputs
    from runner.tools.open_run import open_run

    digits = load_digits()
    for i in range(60):
        folder = tmp_path / "images" / f"digit{digits.target[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        grey = np.round(digits.images[i] * 255 / 16).astype("uint8")
        Image.fromarray(np.stack([grey] * 3, -1)).resize((20, 20)).save(folder / f"{i}.png")
    # no split shuffle: the training split's first examples are the folder's first files
    spec = {"name": "folder", "seed": 1, "output": {"dir": str(tmp_path)}, "callbacks": QUIET,
            "data": {"source": "image_folder", "path": str(tmp_path / "images"), "image_size": [12, 12],
                     "interpolation": "area", "shuffle_split": False, "batch_size": 16,
                     "preprocess": [{"rescale": {"scale": 1 / 255}}]},
            "model": {"arch": "cnn", "filters": [8], "dense": [16]}, "train": {"epochs": 1}}
    run = _train(tmp_path, spec)
    opened = open_run(run)
    files = index_folder(str(tmp_path / "images"))[0][:5]
    x = np.stack([x for x, _ in build_data(opened.cfg.data, 1).splits["train"].take(5).as_numpy_iterator()])
    assert x.shape == (5, 12, 12, 3) and x.max() > 200  # raw 0..255 RGB, as the source yields
    assert np.array_equal(read_inputs(files, opened, opened.load_model())[1], x)
    records = predict_run(opened, files, top_k=10)
    probs = softmax(_logits(run, x), axis=-1)
    for record, p in zip(records, probs):
        by_index = sorted(record["top_k"], key=lambda t: t["index"])
        assert [t["class"] for t in by_index] == [f"digit{d}" for d in range(10)]
        assert [t["probability"] for t in by_index] == pytest.approx(p, abs=1e-6)
    assert opened.info["value_range"] == [0.0, 255.0]
