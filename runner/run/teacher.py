"""The distillation teacher: a run directory, a .keras file, or a spec trained first through the lifecycle."""

from __future__ import annotations

import os

from runner.training.distill import Distill


def teacher_path(cfg_distill: Distill, seed: int) -> str:
    """The teacher's .keras file; a spec teacher is trained first, in its own run directory."""
    return trained_model(cfg_distill.teacher, seed, "distill.teacher")


def gan_features(cfg) -> str | None:
    """task gan (issue 17): the FID classifier's .keras file (a spec trains first, as a teacher does), or
    inception_v3; None without gan.fid."""
    from runner.gan.fid import INCEPTION

    fid = cfg.gan.fid if cfg.gan is not None else None
    if fid is None:
        return None
    return INCEPTION if fid.features == INCEPTION else trained_model(fid.features, cfg.seed, "gan.fid.features")


def trained_model(path: str, seed: int, key: str) -> str:
    """The .keras file of a run directory, a .keras file, or a .yaml spec trained first in its own run."""
    from runner.kernel.errors import ConfigError

    if path.endswith((".yaml", ".yml")):
        import keras

        from runner.spec import load_config
        from runner.run.lifecycle import run_experiment
        from runner.kernel.run_dir import MODEL

        if not os.path.isfile(path):
            raise ConfigError(f"{key}: spec {path} not found (relative paths start from the current "
                              f"directory, {os.getcwd()})")
        teacher_cfg, _ = load_config(path)
        result = run_experiment(teacher_cfg, spec_path=path, quiet=True)
        keras.utils.set_random_seed(seed)  # the model starts from the same state as without a teacher
        return str(result.run_dir.file(MODEL))
    model = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not (model.endswith(".keras") and os.path.isfile(model)):
        raise ConfigError(f"{key}: {path} is neither a run directory with model.keras, a .keras file "
                          f"nor a .yaml spec; point it at a finished run (runs/<name>/<run>) or a "
                          f"{key.split('.')[-1]} spec")
    return model
