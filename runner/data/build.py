"""Config.data -> the splits as unbatched tf.data datasets plus DataInfo."""

from __future__ import annotations

from runner.data.dataset import Data, split_pool
from runner.data.info import DataInfo
from runner.data.sources import SOURCES
from runner.data.sources.registry import Pool
from runner.kernel.errors import DataError


def ensure_available(cfg_data) -> None:
    """Fail fast, before TensorFlow is imported, when the data is missing and cannot be fetched (tfds offline)."""
    if cfg_data.source == "tfds":
        from runner.data.sources.tfds_source import ensure_prepared

        ensure_prepared(cfg_data)


def pool_task(cfg_data, pool: Pool) -> Pool:
    """The pool with the task `data.task` asks for (or the source inferred), its labels checked against it, so a
    mismatch is a located data error (exit 3) before any slicing."""
    from runner.tasks import task

    wanted = getattr(cfg_data, "task", "auto")
    name = pool.task if wanted == "auto" else wanted
    where = f"data.path: {cfg_data.path}" if getattr(cfg_data, "path", None) else f"data.source: {cfg_data.source}"
    task(name).check_labels(pool.x.shape, pool.y.shape, where)
    pool.task = name
    return pool


def build_data(cfg_data, seed: int) -> Data:
    loaded = SOURCES.get(cfg_data.source).builder(cfg_data, seed)
    if isinstance(loaded, Data):
        wanted = getattr(cfg_data, "task", "auto")
        if wanted not in ("auto", loaded.info.task):
            raise DataError(f"data.task: {wanted}: the {cfg_data.source} source gives {loaded.info.task} labels "
                            f"here (inputs {list(loaded.info.input_shape)}); set data.task: auto or "
                            f"{loaded.info.task}")
        return loaded
    loaded = pool_task(cfg_data, loaded)
    import tensorflow as tf  # after the source: an offline tfds spec fails before TensorFlow loads

    arrays = split_pool(loaded, cfg_data, seed)
    info = DataInfo(
        input_shape=tuple(loaded.x.shape[1:]),
        input_dtype="string" if loaded.x.dtype == object else str(loaded.x.dtype), task=loaded.task,
        num_classes=len(loaded.class_names) if loaded.class_names else None,
        class_names=loaded.class_names, cardinality={k: int(len(v[1])) for k, v in arrays.items()},
        value_range=loaded.value_range)
    splits = {k: tf.data.Dataset.from_tensor_slices(v) for k, v in arrays.items()}
    return Data(info, splits, arrays["train"][0])
