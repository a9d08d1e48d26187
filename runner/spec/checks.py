"""Cross-field rules that no single field can check: each yields (key path, rule)."""

from __future__ import annotations

import os

from runner.data.augment import AUGMENTATIONS
from runner.data.preprocess import text_problems
from runner.data.sources import SOURCES
from runner.compress.checks import spec_problems as compress_problems
from runner.data.splits import SPLIT_RE, slice_bounds
from runner.kernel.registry import did_you_mean
from runner.language.fields import step_name
from runner.models import ANY_SHAPE, ARCHS, TAKES_IMAGES
from runner.training.losses import LOSSES
from runner.tasks.registry import default_metrics
from runner.training.metrics import METRICS, metric_names
from runner.tasks.registry import TASKS


def task_hint(data) -> str | None:
    """The task when the spec alone tells it (None when only the data can): `data.task`, the bundled set's, or
    for an .npz file the label array's shape and type, read from its header."""
    task = getattr(data, "task", None)
    if task not in (None, "auto"):
        return task
    if data.source == "sklearn":
        from runner.data.sources.sklearn_source import task_of

        return task_of(data)
    if data.source == "numpy":
        from runner.data.sources.numpy_source import header_task

        return header_task(data)
    return None


def _task_rules(cfg, task: str | None):
    """Labels whose shape the task cannot take (when the file header tells), else the task's own rules (tasks/):
    a label mismatch is the cause, and the model or metrics it makes look wrong are not reported beside it."""
    if task is None:
        return
    from runner.tasks import task as task_of

    if cfg.data.source == "numpy":
        from runner.data.sources.numpy_source import header_shapes
        from runner.kernel.errors import DataError

        shapes = header_shapes(cfg.data)
        if shapes is not None:
            try:
                task_of(task).check_labels(*shapes, where="")
            except DataError as e:
                # the key the user wrote: the task they forced, or the file whose labels decided it
                yield ("data", "task" if cfg.data.task != "auto" else "path"), e.message.removeprefix(": ")
                return
    if TASKS.get(task).per_pixel:  # classification and regression rules are the ones below
        yield from task_of(task).spec_problems(cfg)


def _not_images(data) -> str | None:
    """Why the inputs are not images at all, when the spec alone tells (a numpy file tells when loaded): the
    source's `not_images` fact."""
    why = getattr(SOURCES.get(data.source), "not_images", None)
    return why(data) if why else None


def _batch_augment_problem(data, task, loss: str) -> str | None:
    """The first reason mixup and cutmix cannot apply (one line for the key, however many reasons)."""
    if task == "regression":
        return "mixup and cutmix mix class labels; this data is regression"
    if why := _not_images(data):
        return f"mixup and cutmix mix images; {why}. Remove data.batch_augment"
    if "classification" not in LOSSES.get(loss).tasks:
        return f"mixup and cutmix mix class labels; '{loss}' is a regression loss"
    if LOSSES.get(loss).labels == "binary":
        return "mixup and cutmix need one-hot labels; use categorical_crossentropy"
    return None


def _not_rgb(data) -> str | None:
    """Why the inputs are not RGB images, when the spec alone tells (None when only the data can)."""
    if data.source == "sklearn" and data.name == "digits":  # sklearn's tables are refused by _not_images first
        return "sklearn's digits are 8x8x1 grayscale images"
    if data.source == "image_folder" and data.color_mode != "rgb":
        return f"data.color_mode is {data.color_mode}"
    return None


def _monitors(cfg):
    """Every callback block with a `monitor` set (early_stopping, checkpoint, reduce_on_plateau, ...)."""
    for name in type(cfg.callbacks).model_fields:
        block = getattr(cfg.callbacks, name, None)
        if block is not None and getattr(block, "monitor", None):
            yield ("callbacks", name, "monitor"), block.monitor


def _run_parent(cfg):
    """(key path, problem) if run directories derived from `name` would escape output.dir ('..', '.', a symlink)."""
    if cfg.name in (".", ".."):
        return ("name",), (f"'{cfg.name}' would put run directories outside output.dir; "
                           "use a name with a letter or digit, e.g. 'my-experiment'")
    root = os.path.realpath(cfg.output.dir)
    target = os.path.realpath(os.path.join(cfg.output.dir, cfg.name))
    if os.path.dirname(target) != root:
        return ("name",), (f"{os.path.join(cfg.output.dir, cfg.name)} resolves to {target}, outside output.dir "
                           f"({cfg.output.dir}); remove the link or choose another name")
    return None


def cross_checks(cfg):
    data, train = cfg.data, cfg.train
    if problem := _run_parent(cfg):
        yield problem
    for name in TASKS.where(top_level=True):  # each top-level task's rules (and its keys' misuse)
        yield from TASKS.get(name).checks(cfg)
    task = task_hint(data)
    has_validation = data.splits.validation is not None or data.kfold is not None  # each fold validates
    metrics = train.metrics or []
    known = {"loss", *(train.metrics or default_metrics(task))}
    if cfg.task != "supervised":  # what a top-level task logs
        known = set(TASKS.get(cfg.task).logs)
    for path, monitor in _monitors(cfg):
        if monitor.startswith("val_") and not has_validation:
            yield path, (f"{monitor!r} needs a validation split, and data.splits.validation is null; "
                         "monitor 'loss' or add a validation split")
        elif monitor.removeprefix("val_") not in known:
            logged = sorted({m for k in known for m in (k, "val_" + k)})
            yield path, f"{monitor!r} is not logged; choose one of {', '.join(logged)}{did_you_mean(monitor, logged)}"

    lr = train.lr
    if getattr(cfg.callbacks, "reduce_on_plateau", None) is not None and (
            lr.schedule != "constant" or lr.warmup_epochs or lr.warmup_steps):
        warmup = f"warmup_steps {lr.warmup_steps}" if lr.warmup_steps is not None else f"warmup_epochs {lr.warmup_epochs}"
        yield ("callbacks", "reduce_on_plateau"), (
            "needs train.lr.schedule: constant without warm-up (a schedule already sets the rate at every step); "
            f"received schedule {lr.schedule}, {warmup}; set train.lr to a number or remove "
            "callbacks.reduce_on_plateau")
    if train.class_weight is not None and task is not None and not TASKS.get(task).class_weights:
        takers = " and ".join(TASKS.where(class_weights=True))
        yield ("train", "class_weight"), (f"only {takers} take class weights; this data is a {task} task. "
                                          "Remove train.class_weight")
    yield from _task_rules(cfg, task)

    warm = train.lr.warmup_epochs
    if train.lr.warmup_steps is None and warm >= train.epochs:
        yield ("train", "lr", "warmup_epochs"), (f"warm-up must be shorter than training ({train.epochs} epochs); "
                                                 f"received {warm}")
    smoothing = getattr(train.loss, "label_smoothing", 0.0)
    serves = LOSSES.get(train.loss.name).tasks
    if task in ("regression", "classification") and task not in serves:
        yield ("train", "loss", "name"), f"'{train.loss.name}' is a {serves[0]} loss; this data is {task}"
    if task == "regression":
        if smoothing:
            yield ("train", "loss", "label_smoothing"), "label smoothing needs a classification task; this data is regression"
        regression = metric_names("regression")
        for i, m in enumerate(metrics):
            if "regression" not in METRICS.get(m).tasks:
                yield ("train", "metrics", i), (f"'{m}' is a {METRICS.get(m).tasks[0]} metric; use "
                                                f"{', '.join(regression[:-1])} or {regression[-1]}")
    if task == "classification":
        for i, m in enumerate(metrics):
            if "classification" not in METRICS.get(m).tasks:
                yield ("train", "metrics", i), f"'{m}' is a {METRICS.get(m).tasks[0]} metric; use accuracy, f1, auc, ..."
    if data.batch_augment and (problem := _batch_augment_problem(data, task, train.loss.name)):
        yield ("data", "batch_augment"), problem

    if why := _not_images(data):
        for i in range(len(data.augment)):
            yield ("data", "augment", i), f"image augmentations need images; {why}. Remove data.augment"
        arch = getattr(cfg.model, "arch", None)  # a gan's model block names two networks instead
        if arch is not None and getattr(ARCHS.get(arch), "inputs", None) == "images":
            text = getattr(SOURCES.get(data.source), "text", False)
            fits = ", ".join(ARCHS.where(inputs="sequences")) if text else ANY_SHAPE
            yield ("model", "arch"), f"{arch} {TAKES_IMAGES}; {why}. Use {fits}"
    elif why := _not_rgb(data):
        for i, step in enumerate(data.augment):
            name = step_name(step)
            if AUGMENTATIONS.get(name).rgb_only:
                yield ("data", "augment", i, name), f"needs RGB images (3 channels); {why}"
    if getattr(SOURCES.get(data.source), "text", False):
        for i, name, rule in text_problems(data.preprocess):
            yield ("data", "preprocess", i, name), rule
    yield from compress_problems(cfg)

    if train.jit_compile is True and cfg.deterministic:
        yield ("train", "jit_compile"), ("Keras 3.15 compiles without XLA while TensorFlow's op determinism is on "
                                         "(deterministic: true); received true; set train.jit_compile: auto or "
                                         "false, or deterministic: false")

    replicas = cfg.distribute.cpu_replicas if cfg.distribute.strategy == "mirrored" else None
    if replicas is None and cfg.distribute.devices and cfg.distribute.strategy == "mirrored":
        replicas = len(cfg.distribute.devices)
    spe = train.steps_per_execution
    if replicas and replicas > 1 and spe != "auto" and spe > 1:
        yield ("train", "steps_per_execution"), (
            f"Keras 3.15 fails with more than one step per execution under {replicas} replicas (\"You must feed a "
            f"value for placeholder tensor\"); received {spe}; use 1 or auto")
    if replicas and data.batch_size % replicas:
        yield ("data", "batch_size"), (f"the global batch must divide evenly over {replicas} replicas; "
                                       f"received {data.batch_size} (try {data.batch_size - data.batch_size % replicas or replicas})")

    if type(data).POOL:
        spans = {}
        for name in ("train", "validation", "test"):
            text = getattr(data.splits, name)
            if text is not None and SPLIT_RE.match(text):
                spans[name] = slice_bounds(text, 10_000)
        names = list(spans)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                (a0, a1), (b0, b1) = spans[a], spans[b]
                if max(a0, b0) < min(a1, b1):
                    yield ("data", "splits", b), (f"overlaps the {a} split ({getattr(data.splits, a)!r}); "
                                                  f"received {getattr(data.splits, b)!r}")
