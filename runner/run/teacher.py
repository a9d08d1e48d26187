"""The distillation teacher: a run directory, a .keras file, or a spec trained first through the lifecycle."""

from __future__ import annotations

import os

from runner.training.distill import Distill


def teacher_path(cfg_distill: Distill, seed: int) -> str:
    """The teacher's .keras file; a spec teacher is trained first, in its own run directory."""
    from runner.kernel.errors import ConfigError

    path = cfg_distill.teacher
    if path.endswith((".yaml", ".yml")):
        import keras

        from runner.spec import load_config
        from runner.run.lifecycle import run_experiment
        from runner.kernel.run_dir import MODEL

        if not os.path.isfile(path):
            raise ConfigError(f"distill.teacher: spec {path} not found (relative paths start from the current "
                              f"directory, {os.getcwd()})")
        teacher_cfg, _ = load_config(path)
        result = run_experiment(teacher_cfg, spec_path=path, quiet=True)
        keras.utils.set_random_seed(seed)  # the student starts from the same state as without a teacher
        return str(result.run_dir.file(MODEL))
    model = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not (model.endswith(".keras") and os.path.isfile(model)):
        raise ConfigError(f"distill.teacher: {path} is neither a run directory with model.keras, a .keras file "
                          f"nor a .yaml spec; point it at a finished run (runs/<name>/<run>) or a teacher spec")
    return model
