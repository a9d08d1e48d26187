"""`dlrun sweep`: an Optuna study in a database, one normal run directory per trial, resumable and shared by
any number of workers; the budget counts finished trials of the whole study."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import warnings
from collections import Counter
from pathlib import Path

from runner.kernel import run_dir as rd
from runner.spec import load_config
from runner.kernel.errors import ConfigError, DlrunError, EnvironmentProblem, TrainingError
from runner.sweep.best import write_best
from runner.spec.sweep import Choice, IntRange, LogUniform, decode, encode, trial_params
from runner.spec.trials import trial_config

SQLITE_BUSY_S = 60  # concurrent workers wait this long for SQLite's write lock instead of failing at once
DUPLICATE_SQLSTATES = ("42P07", "42710")  # PostgreSQL's duplicate_table, duplicate_object
MAX_FAILURES_IN_A_ROW = 3  # trials failing one after another mean the spec, not the values, is broken


log = logging.getLogger(__name__)


def _say(message: str) -> None:
    log.info(f"dlrun sweep: {message}")


def _shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def sweep_root(cfg) -> Path:
    return Path(cfg.output.dir) / cfg.name


def storage_url(cfg, url: str | None) -> str:
    return url or f"sqlite:///{(sweep_root(cfg) / rd.SWEEP_DB).resolve()}"


def _retry(sweep):
    """Queues a failed trial's values again (optuna's heartbeat callback, also used after a signal)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=sweep.retries)


def open_storage(url: str, sweep):
    """RDBStorage with heartbeats; a trial whose heartbeat stops is failed and its values queued again."""
    import optuna
    import sqlalchemy.exc

    # a lost race to create the schema (retried), or a database that refuses (exit 5)
    database_errors = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)
    kwargs = {}
    if url.startswith("sqlite:///"):
        kwargs = {"connect_args": {"timeout": SQLITE_BUSY_S}}
        folder = Path(url[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EnvironmentProblem(f"cannot create {folder} for the sweep database: {e.strerror}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            _connect_once(url, kwargs)  # a server that refuses or a wrong password is no race: no retries
            for attempt in range(5):
                try:
                    return optuna.storages.RDBStorage(
                        url, engine_kwargs=kwargs, heartbeat_interval=sweep.heartbeat_interval,
                        grace_period=sweep.grace_period,
                        heartbeat_stale_trial_callback=_retry(sweep))
                except database_errors as e:
                    # two workers creating the tables of a new database at once: the loser retries and finds them
                    if attempt == 4 or not _lost_creation_race(e):
                        raise
                    time.sleep(0.5 + attempt)
        except sqlalchemy.exc.ArgumentError as e:
            raise ConfigError(f"--storage: {url!r} is not a SQLAlchemy URL ({e}); e.g. "
                              "postgresql+psycopg2://user@host/db or sqlite:///path/sweep.db") from None
        except ImportError as e:
            # create_engine imports the driver. SQLAlchemy 2.1 reads postgresql:// as psycopg 3, so the fix also
            # shows the URL form of the pinned psycopg2-binary
            raise EnvironmentProblem(f"--storage: the database driver for {url.split(':')[0]!r} is not "
                                     f"installed ({e}); install it, or name an installed "
                                     "driver in the URL, e.g. postgresql+psycopg2://user@host/db with "
                                     "pip install psycopg2-binary") from None
        except database_errors as e:
            raise EnvironmentProblem(f"cannot open the sweep storage {url}: {e.orig}") from None


def _lost_creation_race(e) -> bool:
    """Whether another worker created a table or type of the schema between this one's check and its CREATE.

    PostgreSQL reports that as duplicate_table or duplicate_object (a ProgrammingError), or as a unique violation
    in its catalog; SQLite and MySQL as an OperationalError.
    """
    import sqlalchemy.exc

    code = getattr(e.orig, "pgcode", None) or getattr(e.orig, "sqlstate", None)
    return not isinstance(e, sqlalchemy.exc.ProgrammingError) or code in DUPLICATE_SQLSTATES


def _connect_once(url: str, engine_kwargs: dict) -> None:
    """One connection to the database, closed again: raises what connecting raises."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def open_study(cfg, url: str, create: bool = True):
    """The study named after the spec; refuses one that was started with a different search."""
    import optuna

    storage = open_storage(url, cfg.sweep)
    if not create:
        try:
            return optuna.load_study(study_name=cfg.name, storage=storage)
        except KeyError:
            return None
    study = optuna.create_study(storage=storage, study_name=cfg.name, direction=cfg.sweep.direction(),
                                load_if_exists=True)
    outline = cfg.sweep.outline()
    recorded = study.user_attrs.get("sweep")
    if recorded is None:
        study.set_user_attr("sweep", outline)
    elif recorded != outline or study.direction.name.lower() != cfg.sweep.direction():
        changed = sorted(k for k in outline if outline[k] != recorded.get(k))
        raise ConfigError(f"sweep: the study '{cfg.name}' in {url} was started with another search "
                          f"({', '.join(changed) or 'mode'} differ); restore the sweep block, or start a new study "
                          "with another name or --storage")
    return study


def make_sampler(sweep, seed: int, trial_number: int):
    """A sampler seeded by (seed, trial number): a sweep is reproducible and concurrent workers draw apart."""
    import optuna

    if sweep.method == "grid":  # the seed shuffles the grid's numbering, which must agree in every worker
        return optuna.samplers.GridSampler(sweep.grid(), seed=seed)
    seed += trial_number
    if sweep.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: concurrent workers treat each other's running trials as bad and explore elsewhere
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(sweep):
    import optuna

    pruner = sweep.pruner
    if pruner is None:
        return optuna.pruners.NopPruner()
    if pruner.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_epochs)
    return optuna.pruners.HyperbandPruner(min_resource=pruner.min_epochs, reduction_factor=pruner.reduction_factor)


def suggest(trial, sweep) -> dict:
    """The trial's value of every searched key, as spec values."""
    out = {}
    for key, domain in sweep.params.items():
        if isinstance(domain, Choice):
            out[key] = decode(domain, trial.suggest_categorical(key, [encode(c) for c in domain.choice]))
        elif isinstance(domain, IntRange):
            out[key] = trial.suggest_int(key, *domain.int)
        else:
            low, high = domain.loguniform if isinstance(domain, LogUniform) else domain.uniform
            out[key] = trial.suggest_float(key, low, high, log=isinstance(domain, LogUniform))
    return out


def _history_best(path: Path, metric: str, maximize: bool) -> float | None:
    import csv
    import math

    try:
        with open(path / rd.HISTORY, newline="") as f:
            values = [float(row[metric]) for row in csv.DictReader(f) if row.get(metric) not in (None, "")]
    except FileNotFoundError:
        return None
    values = [v for v in values if math.isfinite(v)]
    return (max if maximize else min)(values) if values else None


def objective_value(run_dir: Path, cfg, sweep) -> float | None:
    """The trial's objective: the best epoch of `metric` (the mean of each fold's best with data.kfold), or
    test_<metric> from metrics.json."""
    import json

    if sweep.metric.startswith("test_"):
        return json.loads((run_dir / rd.METRICS).read_text()).get("test", {}).get(sweep.metric[len("test_"):])
    runs = sorted((run_dir / rd.FOLDS).iterdir()) if cfg.data.kfold is not None else [run_dir]
    bests = [_history_best(p, sweep.metric, sweep.direction() == "maximize") for p in runs]
    bests = [b for b in bests if b is not None]
    return sum(bests) / len(bests) if bests else None


def _log_objective(run_dir: Path, metric: str, value: float) -> None:
    """The objective as scalar `sweep/<metric>` beside the run's HParams session, so the dashboard sorts by it."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(run_dir / rd.TENSORBOARD))
    with writer.as_default(step=0):
        tf.summary.scalar(f"sweep/{metric}", value)
    writer.close()


def _counts(study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def _finished(counts: Counter) -> int:
    return counts["COMPLETE"] + counts["PRUNED"]


class _Surplus(Exception):
    """Another worker took the last place of the budget between this worker's check and its new trial."""


def _budget_taken(study, trial, budget: int) -> bool:
    """Trials are numbered in creation order by the storage, so every worker agrees on which trials fill the
    budget: the first `budget` that are not failed. A trial behind them is surplus and never trains."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    ahead = [t for t in study.get_trials(deepcopy=False, states=live)
             if t.number < trial.number and not t.user_attrs.get("surplus")]
    return len(ahead) >= budget


def run_sweep(spec_path, overrides=(), trials: int | None = None, storage: str | None = None) -> str:
    """Work on the study until `trials` trials of it have finished (over every worker and restart)."""
    import optuna
    from optuna.trial import TrialState

    from runner.spec.deep_checks import deep_check

    cfg, loaded = load_config(spec_path, overrides)
    if cfg.sweep is None:
        raise ConfigError(f"{spec_path}: no `sweep:` block; add one naming the keys to search "
                          "(see docs/sweeps.md)")
    deep_check(cfg, loaded)
    sweep = cfg.sweep
    budget = trials or sweep.trials
    url = storage_url(cfg, storage)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # this loop says what happens, once
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes: every trial builds a new model
    study = open_study(cfg, url)
    study.pruner = make_pruner(sweep)
    root = Path(os.path.abspath(sweep_root(cfg)))  # run_dir attributes must mean the same in every worker
    retry = _retry(sweep)
    current = {}

    def objective(trial):
        current["trial"] = trial
        # Optuna's heartbeat thread may not have written yet: a trial killed before its first heartbeat would
        # stay RUNNING for ever, since staleness is judged from heartbeats only
        study._storage.record_heartbeat(trial._trial_id)
        trial.study.sampler = make_sampler(sweep, cfg.seed, trial.number)  # the number is known now
        params = suggest(trial, sweep)
        if _budget_taken(study, trial, budget):
            trial.set_user_attr("surplus", True)
            raise _Surplus
        trial_cfg = trial_config(cfg, params)
        previous = trial.user_attrs.get("run_dir")  # a re-run of an interrupted trial continues its directory
        if previous and (Path(previous) / rd.CONFIG).is_file():
            run_dir = rd.RunDir.at(previous)
        else:
            run_dir = rd.RunDir.at(root / rd.SWEEP_TRIALS / f"{trial.number:04d}-{secrets.token_hex(3)}")
        trial.set_user_attr("run_dir", str(run_dir.path))
        trial.set_user_attr("host", socket.gethostname())
        shown = ", ".join(f"{k}={_shown(v)}" for k, v in params.items())
        _say(f"trial {trial.number}: {shown} -> {run_dir.path}")
        from runner.sweep.pruning import TrialReporter

        # no trial inherits the graphs and names of the last: the lifecycle's prepare clears the Keras session
        reporter = TrialReporter(trial, sweep.metric, prune=sweep.pruner is not None)
        from runner.run.train import train

        train(trial_cfg, run_dir, spec_path=spec_path, extra_callbacks=[reporter])
        if reporter.stop_all:
            _say(f"trial {trial.number}: pruned after {reporter.step} epoch{'' if reporter.step == 1 else 's'}")
            raise optuna.TrialPruned()
        value = objective_value(run_dir.path, trial_cfg, sweep)
        if value is None:
            raise TrainingError(f"trial {trial.number}: no finite value of {sweep.metric} in {run_dir.path}")
        _say(f"trial {trial.number}: {sweep.metric} = {value:.6g}")
        if trial_cfg.callbacks.tensorboard is not None:
            _log_objective(run_dir.path, sweep.metric, value)
        return value

    started = time.monotonic()
    failures = 0
    waiting_said = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, its values queued again
        counts = _counts(study)
        if _finished(counts) >= budget:
            break
        if sweep.method == "grid" and make_sampler(sweep, cfg.seed, 0).is_exhausted(study):
            _say("every grid point has been tried")
            break
        if sweep.timeout is not None and time.monotonic() - started >= sweep.timeout:
            _say(f"timeout of {sweep.timeout:g} s reached; rerun the command to go on")
            break
        if _finished(counts) + counts["RUNNING"] >= budget:
            if not waiting_said:
                _say(f"waiting for {counts['RUNNING']} running trial(s) of other workers to finish (or, if "
                     f"they died, to miss their heartbeat for {sweep.grace_period} s)")
                waiting_said = True
            time.sleep(min(sweep.heartbeat_interval, 5))
            continue
        study.sampler = make_sampler(sweep, cfg.seed, sum(counts.values()))
        current.clear()
        try:
            study.optimize(objective, n_trials=1, catch=(), gc_after_trial=True)
            failures = 0
        except _Surplus:
            continue
        except optuna.exceptions.UpdateFinishedTrialError:
            # another worker missed this trial's heartbeat for grace_period s and failed it: its values run again
            _say(f"trial {current['trial'].number}: taken for dead by another worker (a heartbeat older than "
                 f"{sweep.grace_period} s); its values run again; raise sweep.grace_period on a busy machine")
        except TrainingError as e:
            failures += 1
            _say(f"trial {current['trial'].number if current else '?'} failed: {e.message}")
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise TrainingError(f"{failures} trials failed in a row; the last: {e.message}") from None
        except (KeyboardInterrupt, DlrunError) as e:
            interrupted = isinstance(e, KeyboardInterrupt) or e.exit_code in (130, 143)
            trial = next((t for t in study.get_trials(deepcopy=False)
                          if current.get("trial") and t.number == current["trial"].number), None)
            if interrupted and trial is not None and trial.state == TrialState.FAIL:
                retry(study, trial)  # interrupted, not wrong: the same values run again when the sweep resumes
            raise
        write_best(study, root / rd.BEST_SPEC, cfg)
    best = write_best(study, root / rd.BEST_SPEC, cfg)
    return status_text(cfg, study, url, budget) + (f"\nbest spec: {best}" if best is not None else "")


def status_text(cfg, study, url: str, budget: int) -> str:
    """Progress of the study: counts by state, the best trial, and one line per trial."""
    from runner.kernel.text import table

    sweep = cfg.sweep
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    surplus = sum(1 for t in trials if t.user_attrs.get("surplus"))
    lines = [f"sweep {cfg.name}: {sweep.method}, {sweep.direction()} {sweep.metric}; storage {url}",
             f"finished {_finished(counts)}/{budget} ({counts['COMPLETE']} complete, {counts['PRUNED']} pruned), "
             f"{counts['RUNNING']} running, {counts['WAITING']} queued, {counts['FAIL'] - surplus} failed"
             + (f", {surplus} surplus (not run)" if surplus else "")]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        lines.append(f"best: trial {best.number}, {sweep.metric} = {best.value:.6g}")
    rows = [["trial", "state", sweep.metric, "epochs", *sweep.params, "run"]]
    for t in trials:
        if t.user_attrs.get("surplus"):
            continue
        params = trial_params(sweep, t.params)
        retried = t.system_attrs.get("failed_trial")
        state = t.state.name.lower() + (f" (re-run of {retried})" if retried is not None else "")
        rows.append([str(t.number), state, "-" if t.value is None else f"{t.value:.6g}",
                     str(max(t.intermediate_values, default=0)) if t.intermediate_values else "-",
                     *(_shown(params[k]) if k in params else "-" for k in sweep.params),
                     os.path.relpath(t.user_attrs["run_dir"]) if "run_dir" in t.user_attrs else "-"])
    return "\n".join([*lines, "", table(rows)])


def show_status(spec_path, overrides=(), trials: int | None = None, storage: str | None = None) -> str:
    import optuna

    cfg, _ = load_config(spec_path, overrides)
    if cfg.sweep is None:
        raise ConfigError(f"{spec_path}: no `sweep:` block, so no sweep to show")
    url = storage_url(cfg, storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return f"sweep {cfg.name}: not started (no {url[len('sqlite:///'):]}); start it with `dlrun sweep {spec_path}`"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study(cfg, url, create=False)
    if study is None:
        return f"sweep {cfg.name}: not started in {url}; start it with `dlrun sweep {spec_path}`"
    return status_text(cfg, study, url, trials or cfg.sweep.trials)
