"""data.kfold: k-fold cross-validation; the folds of the training pool, one run per fold, mean and std per metric."""

from __future__ import annotations

import sys
import time
from typing import Optional

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from runner.config.base import NonNegInt, Strict

SPLITS = ("train", "validation", "test")


class KFold(Strict):
    k: int = Field(5, ge=2, le=100, description="folds: k models, each validated on one fold and trained on the rest")
    stratified: bool = Field(True, description="keep the class proportions in every fold (classification)")
    fold: Optional[NonNegInt] = Field(
        None, description="set by dlrun in each fold's own run: the held-out fold (0-based); null trains all k")

    @model_validator(mode="after")
    def _fold_in_range(self):
        if self.fold is not None and self.fold >= self.k:
            raise PydanticCustomError("kfold", "must be < k ({k}); received {fold}",
                                      {"k": self.k, "fold": self.fold, "subpath": "fold"})
        return self


def check_kfold(kfold: KFold | None, pool: bool) -> KFold | None:
    """Folds are slices of one pool of examples: sources that name their splits (tfds) have none."""
    if kfold is not None and not pool:
        raise PydanticCustomError("kfold", "needs a source with a single pool of examples (sklearn, numpy, csv, "
                                           "image_folder); remove data.kfold for this source")
    return kfold


def fold_indices(y, kfold: KFold, seed: int, task: str) -> list:
    """[(train indices, held-out indices)] of the pool labelled `y`, seeded; stratified for classification."""
    import numpy as np
    from sklearn.model_selection import KFold as Splitter, StratifiedKFold

    from runner.errors import DataError

    stratify = kfold.stratified and task == "classification"
    splitter = (StratifiedKFold if stratify else Splitter)(n_splits=kfold.k, shuffle=True, random_state=seed)
    try:
        return list(splitter.split(np.zeros((len(y), 1)), y))
    except ValueError as e:
        raise DataError(f"data.kfold: cannot make {kfold.k} folds of the {len(y)} training examples: {e}") from None


def hold_out(arrays: dict, kfold: KFold, task: str, seed: int) -> dict:
    """The splits of fold `kfold.fold`: the training pool (train plus validation split) minus the fold, and the
    fold as validation; the test split is untouched."""
    import numpy as np

    parts = [arrays[name] for name in ("train", "validation") if name in arrays]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    train, held = fold_indices(y, kfold, seed, task)[kfold.fold]
    return {**arrays, "train": (x[train], y[train]), "validation": (x[held], y[held])}


def with_fold(cfg, fold: int):
    """`cfg` with data.kfold.fold set, applied like `--set` and validated again."""
    from runner.config.load import Loaded, apply_set
    from runner.config.validate import validate

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

    from runner import run_dir as rd
    from runner.config import render
    from runner.run import RunResult, run_experiment

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


def summary_table(metrics: dict) -> str:
    """Like run.summary_table, each cell 'mean ± std' over the folds."""
    from runner.tracking.runs import table

    splits = [s for s in SPLITS if s in metrics]
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    std = metrics.get("std", {})
    rows = [["split", *names]]
    for s in splits:
        rows.append([s, *(f"{metrics[s][n]:.4f} ± {std.get(s, {}).get(n, 0.0):.4f}" if n in metrics[s] else "-"
                          for n in names)])
    k = metrics.get("kfold", {})
    return f"{k.get('folds_run')}-fold cross-validation (mean ± std over folds)\n{table(rows)}"
