"""bench/baselines.py's split logic: its splits are scikit-learn's, dlrun gets exactly their rows, the json's shape."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from helpers import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("baselines", ROOT / "bench" / "baselines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["wine", "diabetes"])
def test_the_splits_are_sklearns_and_cover_the_data_set(bench, name):
    x, y = bench.load(name)
    assert len(x) == {"wine": 178, "diabetes": 442}[name]
    classify = name == "wine"
    holdout = (StratifiedShuffleSplit if classify else ShuffleSplit)(n_splits=1, test_size=0.25, random_state=7)
    folds = (StratifiedKFold if classify else KFold)(n_splits=5, shuffle=True, random_state=7)
    task = bench.DATASETS[name][0]
    for scheme, splitter in (("holdout", holdout), ("kfold", folds)):
        ours = bench.splits(y, task, 7, scheme)
        theirs = list(splitter.split(x.reshape(len(x), -1), y))
        assert len(ours) == {"holdout": 1, "kfold": 5}[scheme]
        for (train, test), (train_ref, test_ref) in zip(ours, theirs):
            assert np.array_equal(train, train_ref) and np.array_equal(test, test_ref)
            assert not set(train) & set(test) and len(train) + len(test) == len(y)
    # the five test folds are the whole data set, once each
    assert sorted(np.concatenate([test for _, test in bench.splits(y, task, 7, "kfold")])) == list(range(len(y)))


def test_digits_come_as_dlrun_sklearn_source_yields_them(bench):
    x, y = bench.load("digits")
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32 and x.max() == 16.0
    assert y.dtype == np.int64 and sorted(set(y)) == list(range(10))


@pytest.mark.parametrize("val_fraction", [0.0, 0.125])
def test_dlrun_trains_on_the_split_rows_and_is_scored_on_the_test_rows(bench, tmp_path, val_fraction):
    from runner.data.splits import check_split, slice_bounds

    x, y = bench.load("wine")
    (train, test), = bench.splits(y, "classification", 3, "holdout")
    path = tmp_path / "split.npz"
    splits = bench.write_split(path, x, y, "classification", train, test, val_fraction, 3)
    with np.load(path) as f:
        fx, fy = f["x"], f["y"]
    got = {}
    for name, text in splits.items():
        if text is None:
            continue
        assert check_split(text, pool=True) is None
        lo, hi = slice_bounds(text, len(fy))
        # each row of the slice is a row of the data set: find which, by its 13 measurements
        rows = [int(np.flatnonzero((x == row).all(axis=1))[0]) for row in fx[lo:hi]]
        assert np.array_equal(fy[lo:hi], y[rows])
        got[name] = sorted(rows)
    assert got["test"] == sorted(test)
    if val_fraction:
        assert sorted(got["train"] + got["validation"]) == sorted(train)
        assert len(got["validation"]) == 17  # ceil(0.125 * 133), as StratifiedShuffleSplit rounds
    else:
        assert splits["validation"] is None and got["train"] == sorted(train)


def test_percent_spans_of_a_recipe(bench):
    assert bench.percent_span("[:70%]") == 0.7
    assert bench.percent_span("[70%:80%]") == pytest.approx(0.1)
    assert bench.percent_span("[80%:]") == pytest.approx(0.2)


def test_the_json_holds_the_train_test_protocol_and_the_folds(bench, tmp_path):
    def unit(seed, fold, dl, svc, rf):
        return {"seed": seed, "fold": fold, "n_test": 4, "svc": svc, "random_forest": rf, "dlrun": dl}

    holdout = bench.summarize([unit(0, 0, 1.0, 0.75, 0.5), unit(1, 0, 0.75, 0.75, 1.0)], "classification")
    assert holdout["dlrun"] == {"mean": 0.875, "std": 0.125, "per_seed": [1.0, 0.75]}
    assert holdout["classical"] == {"svc": {"mean": 0.75, "std": 0.0}, "random_forest": {"mean": 0.75, "std": 0.25}}
    assert holdout["best_classical"]["name"] == "svc"  # the first of equal means
    assert holdout["paired"] == {"mean": 0.125, "std": 0.125, "wins": 1, "ties": 1, "losses": 0, "splits": 2}
    assert holdout["reaches_best"]
    kfold = bench.summarize([unit(0, 0, 1.0, 1.0, 1.0), unit(0, 1, 0.75, 1.0, 1.0)], "classification")
    assert kfold["dlrun"]["per_seed"] == [0.875]  # a seed's mean over its folds
    # short of a perfect model by half a test example on average (of 4): still reaches it
    assert kfold["paired"]["mean"] == -0.125 and kfold["reaches_best"]
    out = tmp_path / "out.json"
    bench.write_json(str(out), {"wine": {"holdout": holdout, "kfold": kfold}})
    wine = json.loads(out.read_text())["wine"]
    assert wine["dlrun"]["per_seed"] == [1.0, 0.75] and wine["best_classical"] == {"name": "svc", "mean": 0.75,
                                                                                   "std": 0.0}
    assert set(wine["classical"]) == {"svc", "random_forest"} and wine["kfold"]["dlrun"]["mean"] == 0.875
