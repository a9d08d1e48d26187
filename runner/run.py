"""run_experiment(cfg): strategy -> data -> model -> compile -> fit -> evaluate -> artifacts. Read top to bottom."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from runner import run_dir as rd
from runner.config import render
from runner.errors import TrainingError


@dataclass
class RunResult:
    run_dir: rd.RunDir
    metrics: dict


def _best(history: dict, monitor: str, mode: str):
    values = history.get(monitor)
    if not values:
        return None
    pick = max if mode == "max" else min
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return None
    value, index = pick(finite)
    return {"monitor": monitor, "value": float(value), "epoch": index + 1}


def _default_monitor(cfg, metric_names, has_validation: bool) -> str:
    first = metric_names[0] if metric_names else "loss"
    return f"val_{first}" if has_validation else "loss"


def run_experiment(cfg, run_dir: rd.RunDir | None = None, spec_path=None, quiet: bool = False) -> RunResult:
    import keras
    import tensorflow as tf

    from runner.callbacks import CallbackContext, build_callbacks, monitor_mode
    from runner.callbacks.progress import NanGuard, Progress
    from runner.data.augment import augment_fn
    from runner.data.build import build_data
    from runner.data.pipeline import eval_dataset, label_fn, steps_per_epoch, train_dataset
    from runner.data.preprocess import build_preprocess
    from runner.distribute import get_strategy
    from runner.env_info import environment
    from runner.models import build_model, outputs_logits
    from runner.training.setup import compile_model, label_mode, portable_compile, resolve_speed

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = get_strategy(cfg.distribute)

    data = build_data(cfg.data, cfg.seed)
    info = data.info
    has_validation = data.has("validation")
    mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
    labels = label_fn(mode, info.num_classes)
    n_train = info.cardinality["train"]
    steps = steps_per_epoch(n_train, cfg.data.batch_size)
    speed = resolve_speed(cfg.train, steps, on_gpu=bool(tf.config.list_logical_devices("GPU")))
    keras.mixed_precision.set_global_policy(speed.precision)

    run_dir = run_dir or rd.RunDir.create(cfg.output.dir, cfg.name)
    run_dir.write_text(rd.CONFIG, render(cfg))
    run_dir.write_json(rd.ENV, {**environment(spec_path, strategy, speed), "data": info.to_json()})

    with strategy.scope():
        preprocess = build_preprocess(cfg.data.preprocess, info, data.train_x)
        model = build_model(cfg.model, info, preprocess, mode)
        from_logits = outputs_logits(model)
        metric_names = compile_model(model, cfg.train, info, mode, from_logits, steps, speed)

    train_ds = train_dataset(data.splits["train"], n_train, cfg.data, cfg.seed, cfg.train.epochs, labels,
                             augment_fn(cfg.data, info))
    val_ds = eval_dataset(data.splits["validation"], cfg.data, labels) if has_validation else None
    test_ds = eval_dataset(data.splits["test"], cfg.data, labels) if data.has("test") else None

    monitor = _default_monitor(cfg, metric_names, has_validation)
    ctx = CallbackContext(run_dir, monitor, has_validation, steps, info=info, train_data=train_ds,
                          validation_data=val_ds)
    progress = Progress(run_dir, steps, n_train)
    nan_guard = NanGuard()
    callbacks = [nan_guard, *build_callbacks(cfg.callbacks, ctx), progress]

    started = time.perf_counter()
    try:
        history = model.fit(train_ds, epochs=cfg.train.epochs, steps_per_epoch=steps, validation_data=val_ds,
                            callbacks=callbacks, verbose=0 if quiet else 2)
    except KeyboardInterrupt:
        run_dir.write_json(rd.STATUS, progress.status("preempted", len(progress.rows), "interrupted (SIGINT)"))
        raise
    if nan_guard.where:
        where = nan_guard.where
        message = (f"training failed: non-finite loss {where['loss']} at epoch {where['epoch']}, "
                   f"step {where['step']}; checkpoints are kept in {run_dir.file(rd.CHECKPOINTS)}. "
                   "Try a lower train.lr.base or gradient clipping (train.optimizer.global_clipnorm)")
        run_dir.write_json(rd.STATUS, {**progress.status("failed", len(progress.rows), message),
                                       "step": (where["epoch"] - 1) * steps + where["step"]})
        raise TrainingError(message)

    results = {"train": {k: float(v[-1]) for k, v in history.history.items() if not k.startswith("val_")}}
    for split, ds in (("validation", val_ds), ("test", test_ds)):
        if ds is not None:
            results[split] = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
    results["train"].pop("learning_rate", None)
    best = _best(history.history, monitor, monitor_mode(monitor))
    metrics = {**results, "epochs_run": len(history.history.get("loss", [])), "best": best,
               "throughput": {"examples_per_sec": progress.examples_per_sec()},
               "wall_s": time.perf_counter() - started}

    with strategy.scope():
        portable_compile(model, cfg.train, mode, from_logits, metric_names, info)
    rd.atomic_save(run_dir.file(rd.MODEL), model.save)
    run_dir.write_json(rd.METRICS, metrics)
    # ---- tracking (issue 7): PNG plots and the TensorBoard HParams session, from the files just written ----
    from runner.tracking.plots import write_plots

    write_plots(run_dir, model, info, from_logits, {"validation": val_ds, "test": test_ds})
    if cfg.callbacks.tensorboard is not None:
        from runner.callbacks.tensorboard import write_hparams

        write_hparams(run_dir)
    # ---- tracking: end ----
    # ---- export (issue 9): the spec's `export:` formats into RUN_DIR/export/, from the model.keras just saved ----
    if cfg.export:
        from runner.export import export_run
        from runner.safe_load import open_run

        export_run(open_run(run_dir.path), cfg.export)
    # ---- export: end ----
    run_dir.write_json(rd.STATUS, progress.status("completed", metrics["epochs_run"]))
    return RunResult(run_dir, metrics)


def summary_table(metrics: dict) -> str:
    splits = [s for s in ("train", "validation", "test") if s in metrics]
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    rows = [["split", *names]] + [[s, *(f"{metrics[s][n]:.4f}" if n in metrics[s] else "-" for n in names)]
                                  for s in splits]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
