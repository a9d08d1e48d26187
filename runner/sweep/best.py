"""best.yaml: the best trial's spec, ready for `dlrun train`, validated before it is written."""

from __future__ import annotations

from pathlib import Path

from runner.spec import render
from runner.kernel.run_dir import atomic_write
from runner.spec.sweep import trial_params
from runner.spec.trials import trial_config


def best_spec(cfg, trial) -> str:
    """The resolved spec of `trial` (no `sweep:` block) with a header saying where it came from."""
    sweep = cfg.sweep
    params = trial_params(sweep, trial.params)
    header = [f"# best trial {trial.number} of the sweep '{cfg.name}': {sweep.metric} = {trial.value:.6g} "
              f"({sweep.direction()[:3]})",
              *(f"#   {key} = {value!r}" for key, value in params.items()),
              f"# run directory: {trial.user_attrs.get('run_dir', '-')}",
              "# train it again: dlrun train <this file>"]
    return "\n".join(header) + "\n" + render(trial_config(cfg, params))


def write_best(study, path: Path, cfg) -> Path | None:
    """Write best.yaml for the study's best complete trial; None while no trial has completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    text = best_spec(cfg, study.best_trial)
    atomic_write(path, lambda f: f.write(text))
    return path
