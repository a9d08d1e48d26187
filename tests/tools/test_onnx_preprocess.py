"""ONNX export of a model with adapted preprocessing (Normalization, then whiten's frozen Dense): what they learnt
from the training split is constant inside the graph."""

from __future__ import annotations

import json

from helpers import ROOT
from runner.cli.main import main


def test_iris_with_normalize_and_whiten_exports_to_onnx_and_matches_keras(tmp_path):
    import keras

    run = tmp_path / "run"
    assert main(["train", str(ROOT / "experiments/iris.yaml"), "--set", "train.epochs=4", "--set",
                 "data.preprocess=[normalize, whiten]", "--set", f"output.dir={tmp_path}", "--run-dir", str(run)]) == 0
    layer = keras.saving.load_model(run / "model.keras").get_layer("whiten")
    assert isinstance(layer, keras.layers.Dense) and not layer.trainable and layer.count_params() == 4 * 4 + 4
    assert main(["export", str(run), "--format", "onnx"]) == 0
    entry = json.loads((run / "export" / "export.json").read_text())["model.onnx"]
    assert entry["ok"] and entry["examples"] == 30 and entry["max_abs_diff"] <= 1e-4
    assert entry["accuracy"] == entry["keras_accuracy"]
