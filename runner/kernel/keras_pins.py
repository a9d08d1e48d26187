"""dlrun's fixes to private Keras (and TensorFlow) code, each pinned to the source it was written for and checked at
run time before it is installed: on any other source dlrun stops (exit 5) instead of patching code it does not
know, or skips a fix that only saves memory."""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect

from runner.kernel.errors import EnvironmentProblem

PINNED_KERAS = "3.15.1"

# fix -> (the private Keras functions it replaces or relies on, with the sha256 prefix of their source; what to do
# instead on another Keras)
FIXES = {
    "multi_worker_fit": ({
        "keras.src.backend.tensorflow.trainer.TensorFlowTrainer._maybe_symbolic_build": "92a504f5eba9b29f",
        "keras.src.backend.tensorflow.trainer.reduce_per_replica": "2e7d54b1e6edc29a",
    }, "use distribute.strategy: mirrored (one host) or default, or install keras==" + PINNED_KERAS),
    "clip_after_all_reduce": ({
        "keras.src.optimizers.base_optimizer.BaseOptimizer._clip_gradients": "152b956e23c91ad9",
        "keras.src.optimizers.base_optimizer.BaseOptimizer._backend_apply_gradients": "48d6e24d58039241",
        "keras.src.backend.tensorflow.optimizer.TFOptimizer._all_reduce_sum_gradients": "953512efa56c9680",
        "keras.src.backend.tensorflow.optimizer.TFOptimizer._backend_update_step": "00bd759c099a6b72",
    }, "remove clipnorm/global_clipnorm/clipvalue from train.optimizer, train on one replica, or install keras=="
       + PINNED_KERAS),
    # skipped, not refused, on another TensorFlow: without it a process keeps each multi-replica run's graphs
    "release_custom_gradients": ({
        "tensorflow.python.ops.custom_gradient._graph_mode_decorator": "72791bee0d014a4b",
        "tensorflow.python.framework.registry.Registry.register": "466ececa28ad4f23",
    }, "nothing: the fix is skipped, and each run with several replicas in a process keeps its train step's "
       "graphs"),
    "stateless_augment": ({
        "keras.src.layers.preprocessing.data_layer.DataLayer._get_seed_generator": "3046a3c0c8ed49d1",
    }, "set data.augment: [], or install keras==" + PINNED_KERAS),
}


def _resolve(qualified: str):
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(qualified)


def source_hash(qualified: str) -> str:
    """The sha256 prefix of a function's source as installed, or 'missing'."""
    try:
        return hashlib.sha256(inspect.getsource(_resolve(qualified)).encode()).hexdigest()[:16]
    except (ImportError, AttributeError, OSError, TypeError):
        return "missing"


def _changed(fix: str) -> list[str]:
    return [name for name, digest in FIXES[fix][0].items() if source_hash(name) != digest]


@functools.cache
def pinned(fix: str) -> bool:
    """Whether every Keras function `fix` relies on is exactly the pinned source (for fixes that are skipped
    otherwise)."""
    return not _changed(fix)


@functools.cache
def require(fix: str) -> None:
    """EnvironmentProblem (exit 5) unless every Keras function `fix` relies on is exactly the pinned source."""
    import keras

    instead = FIXES[fix][1]
    changed = _changed(fix)
    if changed:
        raise EnvironmentProblem(
            f"Keras {keras.version()} is installed; dlrun's {fix} fix was written for Keras {PINNED_KERAS} and "
            f"its Keras code changed ({', '.join(changed)}), so dlrun will not patch it: {instead}")
