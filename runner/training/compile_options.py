"""Compile options: optimizer with its schedule, loss, metrics, precision, XLA and steps per execution."""

from __future__ import annotations

from dataclasses import dataclass, replace

from runner.distribute import multi_worker_fix as multi_worker
from runner.kernel.errors import ConfigError
from runner.kernel.keras_pins import require
from runner.training.losses import build_loss, label_mode
from runner.training.metrics import build_metric
from runner.training.optimizers import build_optimizer
from runner.training.schedules import build_schedule


@dataclass
class Speed:
    """The speed settings in force, resolved from `auto` and recorded in env.json."""

    precision: str
    jit_compile: bool
    steps_per_execution: int


def resolve_speed(cfg_train, steps_per_epoch: int, on_gpu: bool, replicas: int = 1,
                  deterministic: bool = False) -> Speed:
    """`auto` settings from measurement (docs/performance.md); explicit values are kept."""
    precision = cfg_train.precision
    if precision == "auto":
        precision = _gpu_precision() if on_gpu else "float32"  # CPUs gain nothing from float16/bfloat16 math
    jit = cfg_train.jit_compile
    if jit == "auto":
        # an explicit bool, because Keras's own "auto" turns XLA off under any strategy; XLA halved the
        # digits CNN's throughput on CPU (docs/performance.md), and it pays off on GPUs. Keras compiles without
        # XLA while op determinism is on (trainer.model_supports_jit), so env.json says so too
        jit = on_gpu and not deterministic
    spe = cfg_train.steps_per_execution
    if spe != "auto" and steps_per_epoch % spe:
        # Keras runs whole executions, so an epoch would consume ceil(steps/spe)*spe batches and eat into
        # the next epoch's, breaking the per-epoch data order that resume relies on
        raise ConfigError(f"train.steps_per_execution: must divide the {steps_per_epoch} steps of an epoch; "
                          f"received {spe}; try {_largest_divisor(steps_per_epoch, spe)} or auto")
    if spe != "auto" and spe > 1 and replicas > 1:
        raise ConfigError(f"train.steps_per_execution: Keras 3.15 fails with more than one step per execution "
                          f"under {replicas} replicas (\"You must feed a value for placeholder tensor\"); "
                          f"received {spe}; use 1 or auto")
    if spe == "auto":
        # up to 32 steps per tf.function call amortize the per-step Python and dispatch overhead
        # (bench/overhead.py, docs/performance.md), as a divisor of the epoch (see above); with several
        # replicas Keras 3.15 only runs one
        spe = 1 if replicas > 1 else _largest_divisor(steps_per_epoch, 32)
    return Speed(precision, bool(jit), int(spe))


def jit_compile_for(model, speed: Speed) -> bool:
    """XLA as resolved, unless a layer lacks XLA support (TextVectorization, StringLookup, an LSTM or GRU on cuDNN):
    Keras would drop it then, saying so only through the warnings module, which runs silence."""
    return speed.jit_compile and not layers_without_xla(model)


def compiled_speed(speed: Speed, model) -> Speed:
    """The speed Keras compiled with, for env.json."""
    return replace(speed, jit_compile=bool(model.jit_compile))


def layers_without_xla(model) -> list[str]:
    """`name (Class)` of each layer, nested models included, that Keras compiles without XLA for."""
    found, todo = [], [model]
    while todo:
        layer = todo.pop(0)
        if not getattr(layer, "supports_jit", True):
            found.append(f"{layer.name} ({type(layer).__name__})")
        todo += getattr(layer, "layers", [])
    return found


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _gpu_precision() -> str:
    """bfloat16 on compute capability 8.0+ (no loss scaling needed), float16 with loss scaling on 7.x."""
    import tensorflow as tf

    best = max((tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0))
                for g in tf.config.list_physical_devices("GPU")), default=(0, 0))
    if best >= (8, 0):
        return "mixed_bfloat16"
    return "mixed_float16" if best >= (7, 0) else "float32"


def fix_gradient_reduction(optimizer, replicas: int) -> None:
    """Keras's gradient all-reduce, fixed under several replicas: clipping after it."""
    if replicas > 1:
        clip_after_all_reduce(optimizer)


def clip_after_all_reduce(optimizer) -> None:
    """Under several replicas, clip the summed gradients, not each replica's own.

    Keras 3.15 clips in `_backend_apply_gradients` and all-reduces later, in the TF backend's
    `_backend_update_step`, so `global_clipnorm` would bound each replica's share of the gradient.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer clips in its inner one
    if not (inner.clipnorm or inner.global_clipnorm or inner.clipvalue):
        return
    require("clip_after_all_reduce")
    clip, all_reduce = inner._clip_gradients, inner._all_reduce_sum_gradients

    def all_reduce_then_clip(grads_and_vars):
        pairs = all_reduce(grads_and_vars)
        present = [i for i, (g, _) in enumerate(pairs) if g is not None]
        clipped = dict(zip(present, clip([pairs[i][0] for i in present])))
        return [(clipped.get(i), v) for i, (_, v) in enumerate(pairs)]

    inner._clip_gradients = lambda grads: grads
    inner._all_reduce_sum_gradients = all_reduce_then_clip


def compile_model(model, cfg_train, info, mode: str, from_logits: bool, steps_per_epoch: int, speed: Speed, names):
    """Compile with the spec's optimizer, schedule and loss, and the metrics `names` (the task's defaults when the
    spec lists none)."""
    schedule = build_schedule(cfg_train.lr, steps_per_epoch, cfg_train.epochs)
    optimizer = build_optimizer(cfg_train.optimizer, schedule)
    loss = build_loss(cfg_train.loss, info.task, mode, from_logits)
    metrics = [build_metric(n, mode, from_logits, info.num_classes) for n in names]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile_for(model, speed),
                  steps_per_execution=speed.steps_per_execution)
    fix_gradient_reduction(model.optimizer, model.distribute_strategy.num_replicas_in_sync)
    multi_worker.install(model)
    return names


def portable_compile(model, cfg_train, mode: str, from_logits: bool, metric_names, info):
    """Re-compile with built-in Keras objects only, so model.keras loads without dlrun installed."""
    import keras

    loss = build_loss(cfg_train.loss, info.task, mode, from_logits)
    if not type(loss).__module__.startswith("keras"):
        loss = None  # dlrun's own losses (dice) need dlrun to deserialize; the weights need no loss
    builtin = [m for m in (build_metric(n, mode, from_logits, info.num_classes) for n in metric_names)
               if type(m).__module__.startswith("keras")]
    previous = model.optimizer
    trained = getattr(previous, "inner_optimizer", previous)
    lr = float(keras.ops.convert_to_numpy(trained.learning_rate))
    optimizer = type(trained).from_config({**trained.get_config(), "learning_rate": lr})
    if trained is not previous:
        # mixed_float16: wrapped here, not by compile, so that the compile config (what a load rebuilds) names the
        # LossScaleOptimizer whose variables the file holds
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=loss, metrics=builtin)
    carry_optimizer_state(previous, model)


def carry_optimizer_state(trained, model) -> None:
    """The re-compiled `model`'s optimizer built on its trainable variables, with the values of `trained`'s
    variables of the same name (step count, moments): a saved model then holds the state its run ended with, and
    loading it does not warn "Skipping variable loading for optimizer" as it does for an optimizer saved unbuilt
    or built on other variables."""
    fresh = model.optimizer
    fresh.build(model.trainable_variables)
    pairs = [(trained, fresh)]
    if hasattr(trained, "inner_optimizer") and hasattr(fresh, "inner_optimizer"):  # LossScaleOptimizer
        pairs.append((trained.inner_optimizer, fresh.inner_optimizer))
    for old, new in pairs:
        state = _own_variables(old)
        for name, variable in _own_variables(new).items():
            # a schedule's learning rate is no variable: the fresh constant keeps its value
            if name in state and tuple(state[name].shape) == tuple(variable.shape):
                variable.assign(state[name])


def _own_variables(optimizer) -> dict:
    """name -> variable, without those of a wrapped inner optimizer (its names repeat the outer's)."""
    inner = getattr(optimizer, "inner_optimizer", None)
    skip = {id(v) for v in inner.variables} if inner is not None else set()
    return {v.name: v for v in optimizer.variables if id(v) not in skip}


__all__ = ["Speed", "carry_optimizer_state", "clip_after_all_reduce", "compile_model", "label_mode", "portable_compile",
           "resolve_speed"]
