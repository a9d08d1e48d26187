"""Runs that need a model trained first: the distillation teacher, or the classifier in whose features a GAN's FID
is measured (a run directory, a .keras file, or a spec trained first in its own run directory). The dependent
run's directory records which run trained that model, so resuming it resumes an interrupted teacher instead of
training a new one."""

from __future__ import annotations

import json
import os

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError
from runner.spec import render
from runner.training.distill import Distill


def teacher_path(cfg_distill: Distill, seed: int, student_dir: rd.RunDir | None = None) -> str:
    """The teacher's .keras file; a spec teacher is trained (or its interrupted run resumed) first."""
    return trained_model(cfg_distill.teacher, seed, "distill.teacher", student_dir)


def gan_features(cfg, run_dir: rd.RunDir | None = None) -> str | None:
    """task gan: the FID classifier's .keras file (a spec trains first, as a teacher does), or inception_v3;
    None without gan.fid."""
    from runner.gan.fid import INCEPTION

    fid = cfg.gan.fid if cfg.gan is not None else None
    if fid is None:
        return None
    return INCEPTION if fid.features == INCEPTION else trained_model(fid.features, cfg.seed, "gan.fid.features",
                                                                     run_dir)


def trained_model(path: str, seed: int, key: str, dependent: rd.RunDir | None = None) -> str:
    """The .keras file of a run directory, a .keras file, or a .yaml spec trained (or resumed) first."""
    if path.endswith((".yaml", ".yml")):
        return _trained(path, seed, key, dependent)
    model = os.path.join(path, rd.MODEL) if os.path.isdir(path) else path
    if not (model.endswith(".keras") and os.path.isfile(model)):
        raise ConfigError(f"{key}: {path} is neither a run directory with model.keras, a .keras file "
                          f"nor a .yaml spec; point it at a finished run (runs/<name>/<run>) or a "
                          f"{key.split('.')[-1]} spec")
    return model


def _trained(spec: str, seed: int, key: str, dependent: rd.RunDir | None) -> str:
    import keras

    from runner.run.experiment import run_experiment
    from runner.spec import load_config

    if not os.path.isfile(spec):
        raise ConfigError(f"{key}: spec {spec} not found (relative paths start from the current "
                          f"directory, {os.getcwd()})")
    record = dependent.file(rd.TEACHER) if dependent is not None else None
    trained_dir = None
    if record is not None and record.is_file():
        trained_dir = rd.RunDir(json.loads(record.read_text())["run_dir"])
    if trained_dir is not None and trained_dir.file(rd.MODEL).is_file():
        model = trained_dir.file(rd.MODEL)  # trained before the dependent run was interrupted
    else:
        trained_cfg, _ = load_config(trained_dir.file(rd.CONFIG) if trained_dir else spec)
        trained_dir = trained_dir or rd.RunDir.create(trained_cfg.output.dir, trained_cfg.name)
        if record is not None:
            rd.atomic_write(record, lambda f: json.dump({"spec": spec, "run_dir": str(trained_dir.path)}, f))
        model = run_experiment(trained_cfg, trained_dir, spec_path=spec).run_dir.file(rd.MODEL)
    keras.utils.set_random_seed(seed)  # the dependent run starts from the same state as without a teacher
    return str(model)


def run_after_prior(cfg, run_dir=None, spec_path=None, extra_callbacks=(), started_at: float | None = None):
    """The teacher (or FID classifier), then this run in `run_dir`, whose config.yaml is written first so that it
    can be resumed while the model it needs is still training."""
    from runner.run.experiment import run_experiment

    run_dir = run_dir or rd.RunDir.create(cfg.output.dir, cfg.name)
    if not run_dir.file(rd.CONFIG).exists():
        run_dir.write_text(rd.CONFIG, render(cfg))
    if cfg.distill is not None:
        return run_experiment(cfg, run_dir, spec_path, extra_callbacks, teacher_path(cfg.distill, cfg.seed, run_dir),
                              started_at)
    return run_experiment(cfg, run_dir, spec_path, extra_callbacks, started_at=started_at,
                          fid_file=gan_features(cfg, run_dir))
