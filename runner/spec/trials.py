"""The sweep's searched values against the spec: each value applied to the spec and validated, and the config of
one trial. Above validate.py, which knows no sweep, so that validating a trial's config never recurses."""

from __future__ import annotations

import copy

from pydantic_core import ValidationError

from runner.kernel.errors import ConfigError
from runner.language.load import Loaded, set_value
from runner.spec.sweep import _KEY, _RESERVED, Sweep, override, raise_problems, sample_values
from runner.spec.validate import validate


def _problem(line: str, arg: str) -> str:
    """A validation line of the spec with one override applied, without its location prefix."""
    for prefix in (f"--set {arg}: ", "<sweep>: "):
        if line.startswith(prefix):
            return line[len(prefix):]
    return line


def _metric_problem(sweep: Sweep, fields: dict) -> str | None:
    from runner.spec.checks import task_hint
    from runner.tasks.registry import default_metrics

    data, train = fields["data"], fields.get("train")
    task = task_hint(data)
    names = {"loss", *((train and train.metrics) or default_metrics(task))}
    metric = sweep.metric
    base = metric.removeprefix("val_").removeprefix("test_")
    if base not in names:
        choices = sorted({p + n for n in names for p in ("", "val_", "test_")})
        return f"not a logged metric; choose one of {', '.join(choices)}"
    has_validation = data.splits.validation is not None or getattr(data, "kfold", None) is not None
    if metric.startswith("val_") and not has_validation:
        return f"'{metric}' needs a validation split, and data.splits.validation is null; received {metric!r}"
    if metric.startswith("test_") and data.splits.test is None:
        return f"'{metric}' needs a test split, and data.splits.test is null; received {metric!r}"
    return None


def check_sweep(cfg, own: set) -> list:
    """(location inside the sweep block, message, value) for each bad key or value: every dotted key must exist
    in the spec and take its domain's values, each applied like `--set` to the spec and validated. `own` holds
    the dotted keys of the spec's own problems: they are reported at their own lines and blame no value."""
    sweep = cfg.sweep
    # what the spec wrote, without the defaults it left out: a searched key is then applied as `--set` would be,
    # and `train.optimizer.name: sgd` does not inherit adam's beta_1 default
    raw = cfg.model_dump(mode="json", exclude={"sweep"}, exclude_unset=True)
    problems = []
    if problem := _metric_problem(sweep, dict(cfg)):
        problems.append((("metric",), problem, sweep.metric))
    for key, domain in sweep.params.items():
        if not _KEY.match(key) or key.split(".")[0] in _RESERVED:
            problems.append((("params", key), f"must be a dotted key of the spec other than "
                                              f"{' or '.join(_RESERVED)}, such as train.lr.base; received {key!r}", key))
            continue
        for value in sample_values(domain):
            arg = override(key, value)
            loaded = Loaded(copy.deepcopy(raw), {}, "<sweep>")
            try:
                set_value(loaded, _path(key), copy.deepcopy(value), f"--set {arg}")
                validate(loaded)
            except ConfigError as e:
                new = [p for p in (_problem(line, arg) for line in e.problems) if p.split(": ", 1)[0] not in own]
                if new:
                    problems.append((("params", key), f"value {value!r} is rejected: {new[0]}", value))
                    break
    return problems


def trial_config(cfg, params: dict):
    """The config of one trial: the spec as resolved (file, extends, --set) with the trial's values set as values
    (not re-parsed text), and no sweep block (a trial is one run). The same path as the check of `dlrun validate`."""
    loaded = Loaded(cfg.model_dump(mode="json", exclude_unset=True), {}, "<trial>")  # as written: see check_sweep
    for key, value in params.items():
        set_value(loaded, _path(key), copy.deepcopy(value), f"--set {override(key, value)}")
    set_value(loaded, ("sweep",), None, "<trial>")
    return validate(loaded)


def validate_with_sweep(loaded: Loaded):
    """validate(), then the sweep's searched values, each applied to the spec (whose own problems blame no value)."""
    from runner.language.yaml12 import dotted
    from runner.spec.schema import Config
    from runner.spec.validate import check, format_errors

    cfg, own, problems = check(loaded)
    if cfg.sweep is not None:  # after the spec's own problems, which blame no searched value
        try:
            raise_problems(check_sweep(cfg, {dotted(path) for path, _ in own}), ("sweep",))
        except ValidationError as e:
            problems += format_errors(e, Loaded(loaded.data, loaded.where, loaded.origin), Config)
    if problems:
        raise ConfigError(problems)
    return cfg


def _path(key: str) -> tuple:
    """A dotted key as --set reads it: digits index lists."""
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))
