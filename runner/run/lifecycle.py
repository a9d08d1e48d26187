"""The one experiment lifecycle: prepare(spec) -> Experiment, fit(experiment), finish(experiment) -> RunResult.

train, resume, a sweep trial, a k-fold fold and a distillation teacher all go through it (run/experiment.py); what
trains several models (k-fold, teacher then student, sweeps) and the NaN-rollback retry sit above it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError, Preempted
from runner.spec import render

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: rd.RunDir
    metrics: dict
    exports: list = field(default_factory=list)  # the spec's `export:` results, for the CLI to show


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
        # shuffle=False: the stream is shuffled by train_dataset; Keras's default True only warns on a Dataset
        self.model.fit(ds, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps, shuffle=False,
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
            # nothing left to train: a fit of no epochs restores the backup and runs the train-end callbacks.
            # Under a strategy Keras's fit reads one batch first (_maybe_symbolic_build), so a completed run's
            # stream, exhausted at its end, is given from its last batch
            self._fit(train_from(min(position, self.epochs * self.steps - 1)), epoch, epoch, self.steps)
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


def _first_stream(train_from, position: int, built):
    """`train_from` that hands out `built` for its first request of `position`."""
    first = {position: built}

    def stream(at: int):
        return first.pop(at) if at in first else train_from(at)

    return stream


@dataclass
class Experiment:
    """Everything a prepared run holds: built inside the strategy's scope, ready to fit from `start`."""

    cfg: object
    run_dir: rd.RunDir
    strategy: object
    chief: bool
    data: object
    mode: str
    steps: int
    model: object
    from_logits: bool
    metric_names: list
    train_from: object  # position -> the training stream from that many batches on
    val_ds: object
    test_ds: object
    monitor: str
    progress: object
    compression: object  # compress.prune / quantize: masks during fit, folded and quantized at the end
    backup_cb: object
    runner: "_Fit"
    start: object
    labels: object = None  # the label encoding of this run's loss
    task: object = None  # a top-level task's TASKS entry (gan), which builds, calls back and finishes its own way
    fid_file: str | None = None  # gan: the classifier whose features FID is measured in
    started_at: float = 0.0  # perf_counter at the process's start (the CLI's), from which wall_s counts
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def info(self):
        return self.data.info


def prepare(cfg, run_dir: rd.RunDir | None = None, spec_path=None, extra_callbacks=(), teacher_file=None,
            started_at: float | None = None, fid_file: str | None = None) -> Experiment:
    """Seeds, strategy, run directory (locked), resume point, data, model, compile and callbacks.

    `run_dir` holding this run's config.yaml continues from its newest backup; `teacher_file` is the distillation
    teacher's .keras file when cfg.distill is set, `fid_file` a GAN's FID classifier (run/teacher.py resolves
    both). The Experiment's `stack` holds the run-directory lock and the signal handlers until it is closed
    (run/experiment.py closes it after `finish`).
    """
    import keras
    import tensorflow as tf

    from runner.callbacks import CallbackContext, build_callbacks
    from runner.callbacks.backup import AttributeState, make_backup_callback
    from runner.callbacks.progress import NanGuard, Progress
    from runner.compress.hooks import Compression
    from runner.data.augment import augment_fn
    from runner.data.build import build_data
    from runner.data.pipeline import eval_dataset, label_fn, steps_per_epoch, train_dataset
    from runner.data.preprocess import build_preprocess
    from runner.distribute.environment import environment
    from runner.distribute.strategy import check_batch, get_strategy, is_chief
    from runner.models import build_model, outputs_logits
    from runner.run.lock import RunLock
    from runner.run.resume import Start, check_config, latest_backup
    from runner.run.signals import Preemption
    from runner.tasks.registry import TASKS, check_fit, default_metrics
    from runner.training.compile_options import (compile_model, compiled_speed, label_mode, layers_without_xla,
                                                 resolve_speed)

    if cfg.train.nan_policy == "rollback" and cfg.callbacks.backup is None:
        raise ConfigError("train.nan_policy: 'rollback' restores the last backup, and callbacks.backup is null; "
                          "enable callbacks.backup or set train.nan_policy: fail")
    task = None if cfg.task == "supervised" else TASKS.get(cfg.task)
    # a clean Keras state: layer names (which compress.prune.layers patterns match) do not depend on what this
    # process built before (a teacher, an earlier fold or trial)
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    # op determinism is process-wide: set for this run either way, so that an earlier deterministic run in this
    # process (a teacher, a fold, a trial) does not carry over, slowing ops and turning XLA off. TensorFlow exports
    # only the enabling half
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework.config import disable_op_determinism

        disable_op_determinism()
    strategy = get_strategy(cfg.distribute)
    check_batch(strategy, cfg.data.batch_size)
    chief = is_chief(strategy)
    created = run_dir is None and chief  # made here: removed again if the run fails before training
    run_dir = run_dir or (rd.RunDir.create(cfg.output.dir, cfg.name) if chief else None)
    stack = contextlib.ExitStack()
    # Only the chief writes the run directory. The other workers run the very same callbacks (their collective
    # ops must pair up with the chief's) and write into a temp dir; a resume restores the chief's backup, which
    # every worker reads from the shared run directory, so all of them continue from the same state
    shared = run_dir
    if not chief:
        run_dir = rd.RunDir(stack.enter_context(tempfile.TemporaryDirectory(prefix="dlrun-worker-")))
    try:
        # the lock comes first: a second process on the same run directory fails at once, before loading data
        stack.enter_context(RunLock(run_dir.file(rd.LOCK)))
        preemption = stack.enter_context(Preemption())
        start = Start()
        if shared is not None and shared.file(rd.CONFIG).exists():  # resume, or `train --run-dir DIR` again
            check_config(shared, cfg)
            backup = latest_backup(shared)
            if backup is not None:
                start = Start.of(backup)
                log.info(f"dlrun: resuming {shared.path} at epoch {start.epoch + 1}, step {start.step} "
                         f"(global step {start.global_step})")

        data = build_data(cfg.data, cfg.seed)
        info = data.info
        has_validation = data.has("validation")
        mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
        labels = label_fn(mode, info.num_classes)
        n_train = info.cardinality["train"]
        steps = steps_per_epoch(n_train, cfg.data.batch_size)
        speed = resolve_speed(cfg.train, steps, on_gpu=bool(tf.config.list_logical_devices("GPU")),
                              replicas=strategy.num_replicas_in_sync, deterministic=cfg.deterministic)
        keras.mixed_precision.set_global_policy(speed.precision)

        run_dir.write_text(rd.CONFIG, render(cfg))

        with strategy.scope():
            if task is not None:  # the task builds and compiles its own model
                model, from_logits, metric_names = task.builder(cfg, info, steps, speed), True, []
            else:
                preprocess = build_preprocess(cfg.data.preprocess, info, data.train_x)
                model = build_model(cfg.model, info, preprocess, mode)
                from_logits = outputs_logits(model)
                if cfg.distill is not None:  # the student trains inside a Distiller with its frozen teacher
                    from runner.training.distill import make_distiller

                    model = make_distiller(cfg.distill, model, teacher_file, from_logits)
                check_fit(model, cfg.train, info)
                metric_names = compile_model(model, cfg.train, info, mode, from_logits, steps, speed,
                                             cfg.train.metrics or default_metrics(info.task))
        speed = compiled_speed(speed, model)  # env.json records what Keras compiled, not what was asked
        if cfg.train.jit_compile is True and not speed.jit_compile:
            log.warning(f"dlrun: warning: train.jit_compile: true, but Keras {keras.__version__} compiles this model "
                        f"without XLA: {', '.join(layers_without_xla(model)) or 'this host'} does not support it; "
                        f"training goes on without XLA")
        run_dir.write_json(rd.ENV, {**environment(spec_path, strategy, speed), "data": info.to_json()})

        augment = augment_fn(cfg.data, info)

        def train_from(position: int):
            """The training stream from `position` batches on: epoch e's order depends on (seed, e) only."""
            return train_dataset(data.splits["train"], n_train, cfg.data, cfg.seed, cfg.train.epochs, labels,
                                 augment, initial_epoch=position // steps, skip_batches=position % steps)

        train_ds = train_from(start.position)
        if cfg.train.class_weight is not None:  # fit's stream gets example weights
            from runner.training.losses import class_weighted

            train_from = class_weighted(train_from, cfg.train.class_weight, data, mode,
                                        TASKS.get(info.task).per_pixel)
        else:  # the first fit takes the stream built for the callbacks instead of building it again
            train_from = _first_stream(train_from, start.position, train_ds)
        val_ds = eval_dataset(data.splits["validation"], cfg.data, labels) if has_validation else None
        test_ds = eval_dataset(data.splits["test"], cfg.data, labels) if data.has("test") else None

        monitor = _default_monitor(cfg, metric_names, has_validation)
        # a best is only picked once pruning has reached its target sparsity
        compression = Compression(cfg.compress, cfg.train.epochs, steps)
        ctx = CallbackContext(run_dir, monitor, has_validation, steps, info=info, train_data=train_ds,
                              validation_data=val_ds, monitor_from_epoch=compression.monitor_from_epoch)
        progress = Progress(run_dir, steps, n_train, resumed_from=start.resumed_from() if start.backup else None)
        nan_guard = NanGuard(steps)
        user_callbacks = build_callbacks(cfg.callbacks if task is None else task.callbacks_config(cfg), ctx)
        user_callbacks += task.callbacks(cfg, ctx, model) if task is not None else []
        # the pruning callback is stateful, so its masks go into every backup
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
        # verbose 0: Keras prints nothing; the CLI shows progress through a reporter callback in extra_callbacks
        runner = _Fit(model, callbacks, backup_cb, nan_guard, stateful, steps, cfg.train.epochs, val_ds, 0)
    except BaseException:
        stack.close()
        if created:  # missing data, a model that cannot take it: no run that never trained is left to list
            run_dir.discard()
        raise
    return Experiment(cfg, run_dir, strategy, chief, data, mode, steps, model, from_logits, metric_names,
                      train_from, val_ds, test_ds, monitor, progress, compression, backup_cb, runner, start, labels,
                      task, fid_file,
                      started_at=time.perf_counter() if started_at is None else started_at, stack=stack)


def fit(exp: Experiment) -> None:
    """Train from `exp.start` to the last epoch; a signal writes status.json `preempted` and re-raises."""
    try:
        exp.runner.run_from(exp.start, exp.train_from)
    except Preempted as e:
        exp.runner.flush_tensorboard()
        exp.run_dir.write_json(rd.STATUS, exp.progress.status("preempted", e.epoch, e.message, step=e.global_step))
        raise
    except KeyboardInterrupt:
        exp.runner.flush_tensorboard()
        exp.run_dir.write_json(rd.STATUS, exp.progress.status("preempted", len(exp.progress.rows),
                                                              "interrupted (second SIGINT)"))
        raise


def finish(exp: Experiment) -> RunResult:
    """Evaluate, save model.keras, write metrics, plots, HParams and the spec's exports, then status `completed`."""
    from runner.callbacks import monitor_mode
    from runner.tasks import task
    from runner.training.compile_options import portable_compile

    cfg, run_dir, model = exp.cfg, exp.run_dir, exp.model
    if exp.task is not None:
        return _finish_task(exp)
    history = _history(exp.progress.rows)
    results = {"train": {k: float(v[-1]) for k, v in history.items() if not k.startswith("val_")}}
    for split, ds in (("validation", exp.val_ds), ("test", exp.test_ds)):
        if ds is not None:
            results[split] = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
    results["train"].pop("learning_rate", None)
    best = _best(history, exp.monitor, monitor_mode(exp.monitor), exp.compression.monitor_from_epoch)
    # train_s: the fit, first to last epoch; wall_s: the process up to the summary, set when metrics.json is written
    metrics = {**results, "epochs_run": len(history.get("loss", [])), "best": best,
               "throughput": {"examples_per_sec": exp.progress.examples_per_sec()},
               "train_s": exp.progress.train_s(), "wall_s": None}

    if cfg.distill is not None:  # the run's model is the student
        from runner.training.distill import student_of

        model = student_of(model)
    exp.compression.fold(model)  # masks into the weights: plain layers with real zeros are saved
    with exp.strategy.scope():
        portable_compile(model, cfg.train, exp.mode, exp.from_logits, exp.metric_names, exp.info)
    rd.atomic_save(run_dir.file(rd.MODEL), model.save)
    if cfg.compress is not None:  # sparsity, and the int8 model quantized from the model.keras just saved
        metrics.update(exp.compression.finish(model, run_dir, exp.test_ds, exp.train_from(0)))
    from runner.artifacts.plots import write_plots

    write_plots(run_dir, model, exp.info, exp.from_logits, {"validation": exp.val_ds, "test": exp.test_ds},
                task(exp.info.task).write_artifacts)
    metrics["wall_s"] = time.perf_counter() - exp.started_at  # after the plots: all but the exports
    run_dir.write_json(rd.METRICS, metrics)
    if cfg.callbacks.tensorboard is not None:
        from runner.callbacks.tensorboard import write_hparams

        write_hparams(run_dir)
    exports = []
    if cfg.export and exp.chief:  # other workers' run dirs are throwaway temp dirs
        from runner.artifacts.export_formats import export_model

        exports = export_model(model, run_dir.file(rd.MODEL), exp.data, cfg.export, run_dir.subdir(rd.EXPORT),
                               exp.mode, cfg.data.batch_size, task(exp.info.task).export_check)
        for failed in (e for e in exports if "error" in e):  # the run itself succeeded: warn, go on
            log.warning(f"warning: {failed['error']}")
    run_dir.write_json(rd.STATUS, exp.progress.status("completed", metrics["epochs_run"]))
    return RunResult(run_dir, metrics, exports)


def _finish_task(exp: Experiment) -> RunResult:
    """A top-level task's own finish (gan: model.keras, metrics.json, samples, FID), then its exports."""
    from runner.data.pipeline import eval_dataset

    cfg, run_dir = exp.cfg, exp.run_dir
    metrics = exp.task.finish(cfg, run_dir, exp.model, exp.info,
                              eval_dataset(exp.data.splits["train"], cfg.data, exp.labels), exp.progress,
                              exp.started_at, exp.fid_file)
    exports = []
    if cfg.export and exp.chief:  # what model.keras holds (the averaged generator, in the data's range)
        import keras

        from runner.gan.export import export_generator

        saved = run_dir.file(rd.MODEL)
        exports = export_generator(keras.saving.load_model(saved), saved, cfg.export, run_dir.subdir(rd.EXPORT),
                                   cfg.seed, exp.info.num_classes)
    run_dir.write_json(rd.STATUS, exp.progress.status("completed", metrics["epochs_run"]))
    return RunResult(run_dir, metrics, exports)
