"""k-fold cross-validation over the lifecycle: one run per fold in RUN_DIR/folds/fold-<i>/, then the mean and
std of every metric in RUN_DIR/metrics.json."""

from __future__ import annotations

import sys
import time

from runner.data.kfold import SPLITS, KFold

def with_fold(cfg, fold: int):
    """`cfg` with data.kfold.fold set, applied like `--set` and validated again."""
    from runner.language.load import Loaded, apply_set
    from runner.spec.validate import validate

    loaded = Loaded(cfg.model_dump(mode="json"), {}, "<kfold>")
    apply_set(loaded, f"data.kfold.fold={fold}")
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


def run_kfold(cfg, run_dir=None, spec_path=None, quiet: bool = False, extra_callbacks=()):
    """Train one model per fold into RUN_DIR/folds/fold-<i>/ (each a normal run directory), then write the
    mean and std of every metric to RUN_DIR/metrics.json. An extra callback with `stop_all` set (a pruned
    sweep trial) ends the cross-validation after the current fold."""
    import keras

    from runner.kernel import run_dir as rd
    from runner.spec import render
    from runner.run.lifecycle import RunResult, run_experiment

    run_dir = run_dir or rd.RunDir.create(cfg.output.dir, cfg.name)
    run_dir.write_text(rd.CONFIG, render(cfg))
    run_dir.write_json(rd.STATUS, _status("running", 0))
    started = time.perf_counter()
    folds, sizes, epochs = [], [], 0
    try:
        for fold in range(cfg.data.kfold.k):
            keras.backend.clear_session()  # each fold's model starts from a clean Keras state
            fold_dir = rd.RunDir.at(run_dir.path / "folds" / f"fold-{fold + 1}")
            if not quiet:
                print(f"dlrun: fold {fold + 1}/{cfg.data.kfold.k} -> {fold_dir.path}", file=sys.stderr, flush=True)
            result = run_experiment(with_fold(cfg, fold), fold_dir, spec_path=spec_path, quiet=quiet,
                                    extra_callbacks=extra_callbacks)
            folds.append({"run_dir": str(fold_dir.path), **result.metrics})
            sizes.append(fold_dir.read_json(rd.ENV)["data"]["cardinality"]["validation"])
            epochs += result.metrics.get("epochs_run", 0)
            if any(getattr(cb, "stop_all", False) for cb in extra_callbacks):
                break
    except BaseException as e:
        state = "preempted" if isinstance(e, KeyboardInterrupt) or getattr(e, "exit_code", 0) in (130, 143) \
            else "failed"
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
