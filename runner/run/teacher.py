"""Distillation over the lifecycle: the teacher (a run directory, a .keras file, or a spec trained first in its own
run directory), then the student. The student's run directory records which run is its teacher, so resuming the
student resumes an interrupted teacher instead of training a new one."""

from __future__ import annotations

import json
import os

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError
from runner.spec import render
from runner.training.distill import Distill


def teacher_path(cfg_distill: Distill, seed: int, student_dir: rd.RunDir | None = None) -> str:
    """The teacher's .keras file; a spec teacher is trained (or its interrupted run resumed) first."""
    path = cfg_distill.teacher
    if path.endswith((".yaml", ".yml")):
        return _trained_teacher(path, seed, student_dir)
    model = os.path.join(path, rd.MODEL) if os.path.isdir(path) else path
    if not (model.endswith(".keras") and os.path.isfile(model)):
        raise ConfigError(f"distill.teacher: {path} is neither a run directory with model.keras, a .keras file "
                          f"nor a .yaml spec; point it at a finished run (runs/<name>/<run>) or a teacher spec")
    return model


def _trained_teacher(spec: str, seed: int, student_dir: rd.RunDir | None) -> str:
    import keras

    from runner.run.experiment import run_experiment
    from runner.spec import load_config

    if not os.path.isfile(spec):
        raise ConfigError(f"distill.teacher: spec {spec} not found (relative paths start from the current "
                          f"directory, {os.getcwd()})")
    record = student_dir.file(rd.TEACHER) if student_dir is not None else None
    teacher_dir = None
    if record is not None and record.is_file():
        teacher_dir = rd.RunDir(json.loads(record.read_text())["run_dir"])
    if teacher_dir is not None and teacher_dir.file(rd.MODEL).is_file():
        model = teacher_dir.file(rd.MODEL)  # trained before the student was interrupted
    else:
        teacher_cfg, _ = load_config(teacher_dir.file(rd.CONFIG) if teacher_dir else spec)
        teacher_dir = teacher_dir or rd.RunDir.create(teacher_cfg.output.dir, teacher_cfg.name)
        if record is not None:
            rd.atomic_write(record, lambda f: json.dump({"spec": spec, "run_dir": str(teacher_dir.path)}, f))
        model = run_experiment(teacher_cfg, teacher_dir, spec_path=spec).run_dir.file(rd.MODEL)
    keras.utils.set_random_seed(seed)  # the student starts from the same state as without a teacher
    return str(model)


def run_distilled(cfg, run_dir=None, spec_path=None, extra_callbacks=(), started_at: float | None = None):
    """The teacher, then the student in `run_dir`, whose config.yaml is written first so that it can be resumed
    while its teacher is still training."""
    from runner.run.experiment import run_experiment

    run_dir = run_dir or rd.RunDir.create(cfg.output.dir, cfg.name)
    if not run_dir.file(rd.CONFIG).exists():
        run_dir.write_text(rd.CONFIG, render(cfg))
    teacher_file = teacher_path(cfg.distill, cfg.seed, run_dir)
    return run_experiment(cfg, run_dir, spec_path, extra_callbacks, teacher_file, started_at)
