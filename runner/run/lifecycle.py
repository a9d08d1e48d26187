"""run_experiment(cfg): strategy -> data -> model -> compile -> fit -> evaluate -> artifacts. Read top to bottom."""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import dataclass

from runner.kernel import run_dir as rd
from runner.spec import render
from runner.kernel.errors import ConfigError, TrainingError


@dataclass
class RunResult:
    run_dir: rd.RunDir
    metrics: dict


def _best(history: dict, monitor: str, mode: str, first: int = 0):
    values = history.get(monitor)
    if not values:
        return None
    pick = max if mode == "max" else min
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v) and i >= first]
    if not finite:
        return None
    value, index = pick(finite)
    return {"monitor": monitor, "value": float(value), "epoch": index + 1}


def _default_monitor(cfg, metric_names, has_validation: bool) -> str:
    first = metric_names[0] if metric_names else "loss"
    return f"val_{first}" if has_validation else "loss"


def _history(rows: list[dict]) -> dict:
    """history.csv's rows (restored ones included) as Keras's History.history: {name: [value per epoch]}."""
    names = dict.fromkeys(k for r in rows for k in r if k not in ("epoch", "epoch_seconds"))
    return {k: [r[k] for r in rows if k in r] for k in names}


def _raw_weights_keeper():
    """A callback that keeps the trainable weights of the last epoch end, before fit's EMA swap."""
    import keras

    class RawWeights(keras.callbacks.Callback):
        values = None

        def on_epoch_end(self, epoch, logs=None):
            self.values = [keras.ops.convert_to_numpy(v.value) for v in self.model.trainable_variables]

    return RawWeights()


class _Fit:
    """model.fit from any backed-up position: a shortened first fit for a partial epoch, then whole epochs."""

    def __init__(self, model, callbacks, backup_cb, nan_guard, stateful, steps, epochs, val_ds, verbose):
        self.model, self.callbacks, self.backup_cb, self.nan_guard = model, callbacks, backup_cb, nan_guard
        self.stateful, self.steps, self.epochs = stateful, steps, epochs
        self.val_ds, self.verbose = val_ds, verbose

    def _fit(self, ds, epochs: int, initial_epoch: int, steps: int, extra=()) -> None:
        self.model.fit(ds, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                       validation_data=self.val_ds, callbacks=[*self.callbacks, *extra], verbose=self.verbose)

    def _partial(self, value: bool, offset: int, initial_step) -> None:
        """Tell the callbacks that count steps or finish training that this fit starts/ends mid-run."""
        self.backup_cb.step_offset = self.nan_guard.step_offset = offset
        for cb in self.callbacks:
            if hasattr(cb, "partial"):
                cb.partial = value
            if hasattr(cb, "initial_step"):  # TensorBoard: the global step the first epoch starts at
                cb.initial_step = initial_step

    def run_from(self, start, train_from) -> None:
        self._partial(False, 0, None)  # a NaN rollback may have interrupted a resume's shortened first fit
        if start.backup is not None:
            meta, arrays = start.backup
            self.backup_cb.pending = start.backup
            for key, cb in self.stateful.items():
                extra = [arrays[f"cb/{key}/{i}"] for i in range(sum(k.startswith(f"cb/{key}/") for k in arrays))]
                cb.set_state(meta["callbacks"][key], extra)
        epoch, position = start.epoch, start.position
        if start.stopped or epoch >= self.epochs:
            # nothing left to train: a fit of no epochs restores the backup and runs the train-end callbacks
            self._fit(train_from(position), epoch, epoch, self.steps)
            return
        if start.step:
            # fit cannot start mid-epoch: run the rest of this epoch as a shortened epoch of its own
            # fit builds the compiled metrics at its first step, too late to restore their running sums;
            # evaluating one batch builds them (and changes no weight: metrics are reset at epoch begin)
            self.model.evaluate(train_from(position).take(1), steps=1, verbose=0)
            self._partial(True, start.step, start.global_step)
            # with use_ema, every fit ends by swapping the EMA weights in; this one is not the end of training
            raw = _raw_weights_keeper() if getattr(self.model.optimizer, "use_ema", False) else None
            self._fit(train_from(position), epoch + 1, epoch, self.steps - start.step, extra=[raw] if raw else [])
            self._partial(False, 0, None)
            if raw is not None and not self.model.stop_training:
                for variable, value in zip(self.model.trainable_variables, raw.values):
                    variable.assign(value)
            for cb in self.stateful.values():  # carried into the next fit, whose on_train_begin resets them
                cb.set_state(*cb.get_state())
            if self.model.stop_training:
                return
            epoch, position = epoch + 1, (epoch + 1) * self.steps
        self._fit(train_from(position), self.epochs, epoch, self.steps)

    def flush_tensorboard(self) -> None:
        """Close the TensorBoard writers (flushing them) without the end-of-training summaries."""
        import keras

        for cb in self.callbacks:
            if isinstance(cb, keras.callbacks.TensorBoard):
                keras.callbacks.TensorBoard.on_train_end(cb)


def run_experiment(cfg, run_dir: rd.RunDir | None = None, spec_path=None, quiet: bool = False,
                   extra_callbacks=()) -> RunResult:
    """Train `cfg` into `run_dir`; a run directory that already holds this run continues from its last backup."""
    import keras
    import tensorflow as tf

    from runner.callbacks import CallbackContext, build_callbacks, monitor_mode
    from runner.callbacks.backup import AttributeState, make_backup_callback
    from runner.callbacks.progress import NanGuard, NonFiniteLoss, Progress
    from runner.data.augment import augment_fn
    from runner.data.build import build_data
    from runner.data.pipeline import eval_dataset, label_fn, steps_per_epoch, train_dataset
    from runner.data.preprocess import build_preprocess
    from runner.distribute.strategy import check_batch, get_strategy, is_chief
    from runner.distribute.environment import environment
    from runner.run.lock import RunLock
    from runner.models import build_model, outputs_logits
    from runner.run.resume import Start, check_config, latest_backup
    from runner.kernel.errors import Preempted
    from runner.run.signals import Preemption
    from runner.training.compile_options import compile_model, label_mode, portable_compile, resolve_speed

    if cfg.train.nan_policy == "rollback" and cfg.callbacks.backup is None:
        raise ConfigError("train.nan_policy: 'rollback' restores the last backup, and callbacks.backup is null; "
                          "enable callbacks.backup or set train.nan_policy: fail")
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = get_strategy(cfg.distribute)
    check_batch(strategy, cfg.data.batch_size)
    chief = is_chief(strategy)
    if cfg.distill is not None:  # ---- distill (issue 4): a spec teacher trains first, in its own run ----
        from runner.run.teacher import teacher_path
        from runner.training.distill import make_distiller, student_of

        teacher_file = teacher_path(cfg.distill, cfg.seed)

    # Only the chief writes the run directory. The other workers run the very same callbacks (their collective
    # ops must pair up with the chief's) and write into a temp dir instead
    if not chief:
        worker_dir = tempfile.TemporaryDirectory(prefix="dlrun-worker-")
        run_dir = rd.RunDir(worker_dir.name)
    run_dir = run_dir or rd.RunDir.create(cfg.output.dir, cfg.name)
    # the lock comes first: a second process on the same run directory fails at once, before loading data
    with RunLock(run_dir.file(rd.LOCK)), Preemption() as preemption:
        start = Start()
        if run_dir.file(rd.CONFIG).exists():  # `dlrun resume DIR`, or `dlrun train SPEC --run-dir DIR` again
            check_config(run_dir, cfg)
            backup = latest_backup(run_dir)
            if backup is not None:
                start = Start.of(backup)
                print(f"dlrun: resuming {run_dir.path} at epoch {start.epoch + 1}, step {start.step} "
                      f"(global step {start.global_step})", file=sys.stderr, flush=True)

        data = build_data(cfg.data, cfg.seed)
        info = data.info
        has_validation = data.has("validation")
        mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
        labels = label_fn(mode, info.num_classes)
        n_train = info.cardinality["train"]
        steps = steps_per_epoch(n_train, cfg.data.batch_size)
        speed = resolve_speed(cfg.train, steps, on_gpu=bool(tf.config.list_logical_devices("GPU")),
                              replicas=strategy.num_replicas_in_sync)
        keras.mixed_precision.set_global_policy(speed.precision)

        run_dir.write_text(rd.CONFIG, render(cfg))
        run_dir.write_json(rd.ENV, {**environment(spec_path, strategy, speed), "data": info.to_json()})

        with strategy.scope():
            preprocess = build_preprocess(cfg.data.preprocess, info, data.train_x)
            model = build_model(cfg.model, info, preprocess, mode)
            from_logits = outputs_logits(model)
            if cfg.distill is not None:  # ---- distill (issue 4): the student trains inside a Distiller ----
                model = make_distiller(cfg.distill, model, teacher_file, from_logits)
            metric_names = compile_model(model, cfg.train, info, mode, from_logits, steps, speed)

        augment = augment_fn(cfg.data, info)

        def train_from(position: int):
            """The training stream from `position` batches on: epoch e's order depends on (seed, e) only."""
            return train_dataset(data.splits["train"], n_train, cfg.data, cfg.seed, cfg.train.epochs, labels,
                                 augment, initial_epoch=position // steps, skip_batches=position % steps)

        train_ds = train_from(start.position)
        if cfg.train.class_weight is not None:  # ---- class weights (issue 4): fit's stream gets example weights ----
            from runner.training.losses import class_weighted

            train_from = class_weighted(train_from, cfg.train.class_weight, data, mode)
        val_ds = eval_dataset(data.splits["validation"], cfg.data, labels) if has_validation else None
        test_ds = eval_dataset(data.splits["test"], cfg.data, labels) if data.has("test") else None

        monitor = _default_monitor(cfg, metric_names, has_validation)
        # ---- compress (issue 18): a best is only picked once pruning has reached its target ----
        from runner.compress.hooks import Compression

        compression = Compression(cfg.compress, cfg.train.epochs, steps)
        ctx = CallbackContext(run_dir, monitor, has_validation, steps, info=info, train_data=train_ds,
                              validation_data=val_ds, monitor_from_epoch=compression.monitor_from_epoch)
        progress = Progress(run_dir, steps, n_train, resumed_from=start.resumed_from() if start.backup else None)
        nan_guard = NanGuard(steps)
        user_callbacks = build_callbacks(cfg.callbacks, ctx)
        # ---- compress (issue 18): the pruning callback, stateful, so its masks go into every backup ----
        user_callbacks += compression.callbacks(model, ctx, tensorboard=cfg.callbacks.tensorboard is not None)
        stateful = {type(cb).__name__: cb for cb in [*user_callbacks, progress] if hasattr(cb, "get_state")}
        for cb in user_callbacks:  # Keras's own counters, reset by its on_train_begin
            if isinstance(cb, keras.callbacks.ReduceLROnPlateau):
                stateful[type(cb).__name__] = AttributeState(cb, ("wait", "cooldown_counter", "best"))
        backup_cb = make_backup_callback(run_dir.file(rd.BACKUP), cfg.callbacks.backup and cfg.callbacks.backup.every,
                                         steps, stateful, preemption)
        # backup last: it saves the others' state; extra_callbacks come from the caller (a sweep trial's pruning)
        callbacks = [nan_guard, *user_callbacks, *extra_callbacks, progress, backup_cb]
        if start.backup is not None:
            backup_cb.lr_scale = start.backup[0]["lr_scale"]  # NaN rollbacks before the interruption
        fit = _Fit(model, callbacks, backup_cb, nan_guard, stateful, steps, cfg.train.epochs, val_ds, 0 if quiet else 2)

        started = time.perf_counter()
        rollbacks = 0
        while True:
            try:
                fit.run_from(start, train_from)
                break
            except NonFiniteLoss as e:
                where = e.where
                backup = latest_backup(run_dir) if cfg.train.nan_policy == "rollback" else None
                if backup is not None and rollbacks < cfg.train.nan_retries:
                    rollbacks += 1
                    backup_cb.lr_scale *= cfg.train.nan_lr_factor
                    start = Start.of(backup)
                    print(f"dlrun: non-finite loss {where['loss']} at epoch {where['epoch']}, step {where['step']}; "
                          f"rollback {rollbacks}/{cfg.train.nan_retries} to epoch {start.epoch + 1}, step "
                          f"{start.step} with the learning rate x{backup_cb.lr_scale:g}", file=sys.stderr, flush=True)
                    continue
                tried = f" after {rollbacks} rollbacks" if rollbacks else ""
                message = (f"training failed: non-finite loss {where['loss']} at epoch {where['epoch']}, "
                           f"step {where['step']}{tried}; checkpoints are kept in {run_dir.file(rd.CHECKPOINTS)}. "
                           "Try a lower train.lr.base, gradient clipping (train.optimizer.global_clipnorm) or "
                           "train.nan_policy: rollback")
                run_dir.write_json(rd.STATUS, progress.status("failed", where["epoch"] - 1, message,
                                                              step=where["global_step"]))
                raise TrainingError(message) from None
            except Preempted as e:
                fit.flush_tensorboard()
                run_dir.write_json(rd.STATUS, progress.status("preempted", e.epoch, e.message, step=e.global_step))
                raise
            except KeyboardInterrupt:
                fit.flush_tensorboard()
                run_dir.write_json(rd.STATUS, progress.status("preempted", len(progress.rows),
                                                              "interrupted (second SIGINT)"))
                raise

        history = _history(progress.rows)
        results = {"train": {k: float(v[-1]) for k, v in history.items() if not k.startswith("val_")}}
        for split, ds in (("validation", val_ds), ("test", test_ds)):
            if ds is not None:
                results[split] = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
        results["train"].pop("learning_rate", None)
        best = _best(history, monitor, monitor_mode(monitor), compression.monitor_from_epoch)  # compress (issue 18)
        metrics = {**results, "epochs_run": len(history.get("loss", [])), "best": best,
                   "throughput": {"examples_per_sec": progress.examples_per_sec()},
                   "wall_s": time.perf_counter() - started}

        if cfg.distill is not None:  # ---- distill (issue 4): the run's model is the student ----
            model = student_of(model)
        compression.fold(model)  # ---- compress (issue 18): masks into the weights, plain layers saved ----
        with strategy.scope():
            portable_compile(model, cfg.train, mode, from_logits, metric_names, info)
        rd.atomic_save(run_dir.file(rd.MODEL), model.save)
        # ---- compress (issue 18): sparsity, and the int8 model quantized from the model.keras just saved ----
        metrics.update(compression.finish(model, run_dir, test_ds, train_from(0)))
        run_dir.write_json(rd.METRICS, metrics)
        # ---- tracking (issue 7): PNG plots and the TensorBoard HParams session, from the files just written ----
        from runner.artifacts.plots import write_plots

        write_plots(run_dir, model, info, from_logits, {"validation": val_ds, "test": test_ds})
        if cfg.callbacks.tensorboard is not None:
            from runner.callbacks.tensorboard import write_hparams

            write_hparams(run_dir)
        # ---- tracking: end ----
        # ---- export (issue 9): the spec's `export:` formats into RUN_DIR/export/, from the model.keras just saved ----
        if cfg.export and chief:  # other workers' run dirs are throwaway temp dirs
            from runner.tools.export import export_run, format_results
            from runner.tools.open_run import open_run

            exports = export_run(open_run(run_dir.path), cfg.export)
            if not quiet:
                print(format_results(exports))
            for failed in (e for e in exports if "error" in e):  # the run itself succeeded: warn, go on
                print(f"warning: {failed['error']}", file=sys.stderr)
        # ---- export: end ----
        run_dir.write_json(rd.STATUS, progress.status("completed", metrics["epochs_run"]))
        return RunResult(run_dir, metrics)
