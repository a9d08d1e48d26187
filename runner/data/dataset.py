"""What every data source hands back: a split's examples as tf.data (Data), a single pool sliced into the spec's
splits, and the in-memory sample that adapting preprocessing steps learn from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runner.data.info import DataInfo
from runner.data.preprocess import PREPROCESS
from runner.data.sources.registry import Pool
from runner.data.splits import pool_order, slice_bounds
from runner.language.fields import step_name
from runner.kernel.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclass
class Data:
    info: DataInfo
    splits: dict  # split name -> unbatched tf.data.Dataset of (x, y)
    train_x: np.ndarray | None = None  # in-memory training inputs, for normalize's statistics

    def has(self, split: str) -> bool:
        return split in self.splits


def split_pool(pool: Pool, cfg_data, seed: int) -> dict:
    order = (pool_order(pool.y, seed, stratified=pool.task == "classification")
             if cfg_data.shuffle_split else np.arange(len(pool.y)))
    out = {}
    for name in SPLITS:
        text = getattr(cfg_data.splits, name)
        if text is None:
            continue
        lo, hi = slice_bounds(text, len(order))
        if hi <= lo:
            raise DataError(f"data.splits.{name}: {text!r} selects no examples of the {len(order)} in the pool")
        idx = order[lo:hi]
        out[name] = (pool.x[idx], pool.y[idx])
    if cfg_data.kfold is not None and cfg_data.kfold.fold is not None:  # one fold's run of data.kfold
        from runner.data.kfold import hold_out

        out = hold_out(out, cfg_data.kfold, pool.task, seed)
    return out


def _adapts(step) -> bool:
    name = step_name(step)
    return PREPROCESS.get(name).adapts(getattr(step, name))


def adapt_sample(train, cfg_data) -> np.ndarray | None:
    """The training inputs in memory, only when a preprocessing step adapts on them (normalize, whiten, ...)."""
    if not any(_adapts(step) for step in cfg_data.preprocess):
        return None
    return np.concatenate([x for x, _ in train.batch(4096).as_numpy_iterator()])
