"""Compile options: optimizer with its schedule, loss, metrics, precision, XLA and steps per execution."""

from __future__ import annotations

from dataclasses import dataclass

from runner.training.losses import LOSSES, label_mode
from runner.training.metrics import build_metric, default_metrics
from runner.training.optimizers import build_optimizer
from runner.training.schedules import build_schedule


@dataclass
class Speed:
    """The speed settings in force, resolved from `auto` and recorded in env.json."""

    precision: str
    jit_compile: bool
    steps_per_execution: int


def resolve_speed(cfg_train, steps_per_epoch: int, on_gpu: bool) -> Speed:
    precision = cfg_train.precision
    if precision == "auto":
        precision = "mixed_bfloat16" if on_gpu and _gpu_has_bf16() else "float32"
    jit = cfg_train.jit_compile
    if jit == "auto":
        jit = on_gpu  # XLA measured ~3x slower on CPU for small CNNs; it pays off on GPUs
    spe = cfg_train.steps_per_execution
    if spe == "auto":
        # several steps per tf.function call amortize the Python/dispatch overhead of each step
        spe = max(1, min(steps_per_epoch, 32))
    return Speed(precision, bool(jit), int(spe))


def _gpu_has_bf16() -> bool:
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        if cc >= (8, 0):
            return True
    return False


def compile_model(model, cfg_train, info, mode: str, from_logits: bool, steps_per_epoch: int, speed: Speed):
    schedule = build_schedule(cfg_train.lr, steps_per_epoch, cfg_train.epochs)
    optimizer = build_optimizer(cfg_train.optimizer, schedule)
    loss = LOSSES.get(cfg_train.loss.name).builder(cfg_train.loss, mode, from_logits)
    names = cfg_train.metrics or default_metrics(info.task)
    metrics = [build_metric(n, mode, from_logits, info.num_classes) for n in names]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=speed.jit_compile,
                  steps_per_execution=speed.steps_per_execution)
    return names


def portable_compile(model, cfg_train, mode: str, from_logits: bool, metric_names, info):
    """Re-compile with built-in Keras objects only, so model.keras loads without dlrun installed."""
    import keras

    loss = LOSSES.get(cfg_train.loss.name).builder(cfg_train.loss, mode, from_logits)
    builtin = [m for m in (build_metric(n, mode, from_logits, info.num_classes) for n in metric_names)
               if type(m).__module__.startswith("keras")]
    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    optimizer = type(model.optimizer).from_config({**model.optimizer.get_config(), "learning_rate": lr})
    model.compile(optimizer=optimizer, loss=loss, metrics=builtin)


__all__ = ["Speed", "compile_model", "label_mode", "portable_compile", "resolve_speed"]
