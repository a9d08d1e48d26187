"""best.yaml: the best trial's spec, ready for `dlrun train`, validated before it is written."""

from __future__ import annotations

from pathlib import Path

from runner.config import render
from runner.config.load import load_spec
from runner.config.validate import validate
from runner.run_dir import atomic_write
from runner.sweep.spec import apply_params, trial_params


def best_spec(spec_path, overrides, sweep, trial) -> str:
    """The spec of `trial` (the spec file, its --set overrides and the trial's values, without `sweep:`) as
    resolved YAML, with a header saying where it came from."""
    params = trial_params(sweep, trial.params)
    loaded = load_spec(spec_path, overrides)
    apply_params(loaded, params)
    cfg = validate(loaded)
    header = [f"# best trial {trial.number} of the sweep '{cfg.name}': {sweep.metric} = {trial.value:.6g} "
              f"({sweep.direction()[:3]})",
              *(f"#   {key} = {value!r}" for key, value in params.items()),
              f"# run dir: {trial.user_attrs.get('run_dir', '-')}",
              "# train it again: dlrun train <this file>"]
    return "\n".join(header) + "\n" + render(cfg)


def write_best(study, path: Path, spec_path, overrides, sweep) -> Path | None:
    """Write best.yaml for the study's best complete trial; None while no trial has completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    text = best_spec(spec_path, overrides, sweep, study.best_trial)
    atomic_write(path, lambda f: f.write(text))
    return path
