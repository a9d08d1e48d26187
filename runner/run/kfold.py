"""k-fold cross-validation over the lifecycle: one run per fold in RUN_DIR/folds/fold-<i>/, then the mean and
std of every metric in RUN_DIR/metrics.json. Rerunning (or resuming) the parent keeps the finished folds as they
are, continues the interrupted one from its backup and runs the rest."""

from __future__ import annotations

import logging
import time

from runner.data.kfold import SPLITS, KFold
from runner.kernel import run_dir as rd
from runner.kernel.errors import Preempted
from runner.spec import render

log = logging.getLogger(__name__)


def with_fold(cfg, fold: int):
    """`cfg` with data.kfold.fold set and validated again."""
    from runner.language.load import Loaded, set_value
    from runner.spec.validate import validate

    loaded = Loaded(cfg.model_dump(mode="json"), {}, "<kfold>")
    set_value(loaded, ("data", "kfold", "fold"), fold, "<kfold>")
    return validate(loaded)


def _status(state: str, epochs: int, error=None) -> dict:
    return {"state": state, "epoch": epochs, "step": None, "resumed_from": None, "error": error}


def aggregate(folds: list[dict], kfold: KFold, fold_sizes: list[int]) -> dict:
    """metrics.json of a cross-validation: each split's metrics as the mean over folds, `std` beside them
    (population std, as scikit-learn's cross-validation reports), and every fold's own metrics."""
    import numpy as np

    out, std = {}, {}
    for split in SPLITS:
        names = [n for n in (folds[0].get(split) or {}) if all(n in (f.get(split) or {}) for f in folds)]
        if names:
            values = {n: np.array([f[split][n] for f in folds], dtype=float) for n in names}
            out[split] = {n: float(v.mean()) for n, v in values.items()}
            std[split] = {n: float(v.std()) for n, v in values.items()}
    bests = [f["best"] for f in folds if f.get("best")]
    best = None
    if len(bests) == len(folds):
        values = np.array([b["value"] for b in bests])
        best = {"monitor": bests[0]["monitor"], "value": float(values.mean()), "std": float(values.std()),
                "epoch": None}
    return {**out, "std": std, "epochs_run": sum(f.get("epochs_run", 0) for f in folds), "best": best,
            "kfold": {"k": kfold.k, "stratified": kfold.stratified, "folds_run": len(folds),
                      "fold_sizes": fold_sizes},
            "folds": folds}


def _finished(fold_dir: rd.RunDir) -> dict | None:
    """A fold's metrics.json when the fold completed; None when it has still to run or to resume."""
    try:
        if fold_dir.read_json(rd.STATUS).get("state") == "completed":
            return fold_dir.read_json(rd.METRICS)
    except (OSError, ValueError):
        pass
    return None


def run_kfold(cfg, run_dir=None, spec_path=None, extra_callbacks=()):
    """Train one model per fold (each a normal run directory), then aggregate. An extra callback with `stop_all`
    set (a pruned sweep trial) ends the cross-validation after the current fold."""
    from runner.run.experiment import run_experiment
    from runner.run.lifecycle import RunResult
    from runner.run.resume import check_config
    from runner.run.signals import Preemption

    run_dir = run_dir or rd.RunDir.create(cfg.output.dir, cfg.name)
    if run_dir.file(rd.CONFIG).exists():
        check_config(run_dir, cfg)
    run_dir.write_text(rd.CONFIG, render(cfg))
    run_dir.write_json(rd.STATUS, _status("running", 0))
    started = time.perf_counter()
    folds, sizes, epochs = [], [], 0
    try:
        # a signal that reaches a fold after its last check is handed on here: no further fold starts
        with Preemption() as preemption:
            for fold in range(cfg.data.kfold.k):
                fold_dir = rd.RunDir.at(run_dir.file(rd.fold_dir(fold + 1)))
                metrics = _finished(fold_dir)
                if metrics is None:
                    if preemption.requested and folds:
                        raise _between_folds(preemption.requested, folds[-1]["run_dir"])
                    log.info(f"dlrun: fold {fold + 1}/{cfg.data.kfold.k} -> {fold_dir.path}")
                    metrics = run_experiment(with_fold(cfg, fold), fold_dir, spec_path=spec_path,
                                             extra_callbacks=extra_callbacks).metrics
                folds.append({**metrics, "run_dir": str(fold_dir.path)})
                sizes.append(fold_dir.read_json(rd.ENV)["data"]["cardinality"]["validation"])
                epochs += metrics.get("epochs_run", 0)
                if any(getattr(cb, "stop_all", False) for cb in extra_callbacks):
                    break
    except BaseException as e:
        state = "preempted" if isinstance(e, (KeyboardInterrupt, Preempted)) else "failed"
        if isinstance(e, Preempted):
            e.resume_at(run_dir.path)  # resuming the parent finishes this fold and runs the rest
        run_dir.write_json(rd.STATUS, _status(state, epochs, getattr(e, "message", None) or repr(e)))
        raise
    metrics = aggregate(folds, cfg.data.kfold, sizes)
    metrics["wall_s"] = time.perf_counter() - started
    run_dir.write_json(rd.METRICS, metrics)
    if cfg.callbacks.tensorboard is not None:  # one HParams row for the whole cross-validation, with the means
        from runner.callbacks.tensorboard import write_hparams

        write_hparams(run_dir)
    run_dir.write_json(rd.STATUS, _status("completed", epochs))
    return RunResult(run_dir, metrics)


def _between_folds(signum: int, last_fold: str) -> Preempted:
    """The stop after a finished fold: its status names where it ended."""
    from pathlib import Path

    status = rd.RunDir(Path(last_fold)).read_json(rd.STATUS)
    return Preempted(signum, status["epoch"], 0, status.get("step") or 0, Path(last_fold) / rd.BACKUP)
