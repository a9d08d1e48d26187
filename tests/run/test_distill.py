"""The distill task: Hinton et al.'s loss against its formula, teacher resolution, and an end-to-end CLI run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from helpers import ROOT, digits_spec, run_cli, run_inline, write_spec
from runner.cli.output import run_summary


def _dense(units_in: int, units_out: int, seed: int, softmax: bool = False):
    import keras

    inputs = keras.Input((units_in,))
    layer = keras.layers.Dense(units_out, kernel_initializer=keras.initializers.RandomNormal(seed=seed))
    outputs = layer(inputs)
    if softmax:
        outputs = keras.layers.Softmax()(outputs)
    return keras.Model(inputs, outputs)


def _distiller(student, teacher_file, temperature=3.0, alpha=0.25):
    import keras

    from runner.training.distill import Distill, make_distiller

    d = make_distiller(Distill(teacher=str(teacher_file), temperature=temperature, alpha=alpha), student,
                       str(teacher_file), student_logits=True)
    d.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return d


def _reference(s, t, y, temperature, alpha, w=None):
    """alpha * CE(y, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)), weighted batch mean."""
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    w = np.ones(len(y)) if w is None else w
    ce = (-log_softmax(s)[np.arange(len(y)), y] * w).mean()
    p = np.exp(log_softmax(t / temperature))
    kl = ((p * (np.log(p) - log_softmax(s / temperature))).sum(-1) * w).mean()
    return alpha * ce + (1 - alpha) * temperature**2 * kl


def test_distillation_loss_is_hinton_kl_plus_hard_cross_entropy(tmp_path):
    import keras

    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    student, teacher = _dense(4, 3, seed=1), _dense(4, 3, seed=2)
    teacher.save(tmp_path / "teacher.keras")
    d = _distiller(student, tmp_path / "teacher.keras")
    s = student.predict(x, verbose=0)
    t = teacher.predict(x, verbose=0)
    loss = float(keras.ops.convert_to_numpy(d.compute_loss(x, y, keras.ops.convert_to_tensor(s))))
    assert loss == pytest.approx(_reference(s, t, y, 3.0, 0.25), rel=1e-5)
    w = np.linspace(0.5, 2.0, 8).astype("float32")  # class weights arrive as per-example weights
    weighted = d.compute_loss(x, y, keras.ops.convert_to_tensor(s), keras.ops.convert_to_tensor(w))
    assert float(keras.ops.convert_to_numpy(weighted)) == pytest.approx(_reference(s, t, y, 3.0, 0.25, w), rel=1e-5)
    # a teacher that ends in softmax teaches the same: its log-probabilities are logits up to a constant
    probabilities = keras.Model(teacher.inputs[0], keras.layers.Softmax()(teacher.outputs[0]))
    probabilities.save(tmp_path / "softmax_teacher.keras")
    d2 = _distiller(student, tmp_path / "softmax_teacher.keras")
    assert float(keras.ops.convert_to_numpy(d2.compute_loss(x, y, keras.ops.convert_to_tensor(s)))) == \
        pytest.approx(loss, rel=1e-4)


def test_teacher_errors_say_what_to_point_at(tmp_path):
    from runner.kernel.errors import ConfigError
    from runner.run.teacher import teacher_path
    from runner.training.distill import Distill, make_distiller

    with pytest.raises(ConfigError) as e:
        teacher_path(Distill(teacher=str(tmp_path / "nowhere")), 1)
    assert str(e.value) == (f"distill.teacher: {tmp_path / 'nowhere'} is neither a run directory with model.keras, "
                            "a .keras file nor a .yaml spec; point it at a finished run (runs/<name>/<run>) or a "
                            "teacher spec")
    with pytest.raises(ConfigError) as e:
        teacher_path(Distill(teacher=str(tmp_path / "teacher.yaml")), 1)
    assert str(e.value) == (f"distill.teacher: spec {tmp_path / 'teacher.yaml'} not found (relative paths start "
                            f"from the current directory, {os.getcwd()})")
    _dense(4, 5, seed=0).save(tmp_path / "five.keras")
    (tmp_path / "run").mkdir()
    _dense(4, 3, seed=0).save(tmp_path / "run" / "model.keras")
    assert teacher_path(Distill(teacher=str(tmp_path / "run")), 1) == str(tmp_path / "run" / "model.keras")
    with pytest.raises(ConfigError) as e:
        make_distiller(Distill(teacher="t"), _dense(4, 3, seed=1), str(tmp_path / "five.keras"), True)
    assert str(e.value) == (f"distill.teacher: {tmp_path / 'five.keras'} has 5 outputs but the student has 3; "
                            "the teacher must be trained on the same classes")
    with pytest.raises(ConfigError, match="the student must output logits"):
        make_distiller(Distill(teacher="t"), _dense(4, 3, seed=1, softmax=True), str(tmp_path / "five.keras"), False)


def _kl_to_teacher(spec_path, teacher, students, temperature: float) -> list[float]:
    """Mean KL(teacher || student) of the temperature-softened outputs on the spec's test split, per student."""
    import keras

    from runner.data.build import build_data
    from runner.models import outputs_logits
    from runner.spec import load_config

    cfg, _ = load_config(str(spec_path))
    x = np.concatenate([x for x, _ in build_data(cfg.data, cfg.seed).splits["test"].batch(512).as_numpy_iterator()])

    def soft(path):
        model = keras.saving.load_model(path, compile=False)
        assert outputs_logits(model)
        logits = model.predict(x, verbose=0)
        return keras.ops.convert_to_numpy(keras.ops.softmax(logits / temperature))

    p = soft(teacher)
    return [float(np.mean(np.sum(p * (np.log(p) - np.log(soft(s))), axis=-1))) for s in students]


@pytest.mark.slow
def test_distill_from_a_teacher_spec_end_to_end(tmp_path):
    data = {"source": "sklearn", "name": "digits", "batch_size": 64,
            "splits": {"train": "[:30%]", "validation": "[30%:40%]", "test": "[50%:]"},
            "preprocess": [{"rescale": {"scale": 0.0625}}]}
    off = {"tensorboard": None}
    teacher = write_spec(tmp_path, digits_spec(tmp_path, name="teacher", data=data, callbacks=off), "teacher.yaml")
    student = write_spec(tmp_path, digits_spec(
        tmp_path, name="student", data=data, callbacks=off, model={"arch": "mlp", "units": [16]},
        train={"epochs": 3, "lr": 0.01}, distill={"teacher": str(teacher), "temperature": 2.0, "alpha": 0.5}),
        "student.yaml")
    proc = run_inline("train", student, "--run-dir", tmp_path / "run", check_code=0)
    teacher_runs = list((tmp_path / "teacher").iterdir())
    assert len(teacher_runs) == 1 and (teacher_runs[0] / "model.keras").is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3
    assert run_summary(metrics) in proc.stdout
    # the same student, same seed, without the teacher: the distilled one's softened outputs are closer to the
    # teacher's on the held-out test split
    plain = write_spec(tmp_path, {**yaml.safe_load(student.read_text()), "distill": None}, "plain.yaml")
    run_inline("train", plain, "--run-dir", tmp_path / "plain", check_code=0)
    gaps = _kl_to_teacher(student, teacher_runs[0] / "model.keras",
                          [tmp_path / "run" / "model.keras", tmp_path / "plain" / "model.keras"], 2.0)
    assert gaps[0] < gaps[1], gaps
    code = f"""
import json, sys
import keras
model = keras.saving.load_model({str(tmp_path / 'run' / 'model.keras')!r})
assert 'runner' not in sys.modules
print(json.dumps([model.count_params(), [l.__class__.__name__ for l in model.layers]]))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # the saved model is the student alone: 64*16+16 + 16*10+10 parameters, no teacher inside
    assert json.loads(out.stdout.splitlines()[-1]) == [1210, ["InputLayer", "Rescaling", "Flatten", "Dense",
                                                              "Activation", "Dense"]]
