"""scikit-learn's bundled data sets: no download, the offline default."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from runner.data.sources.common_fields import DataCommon
from runner.data.sources.registry import SOURCES, Pool

_TASKS = {"digits": "classification", "iris": "classification", "wine": "classification",
          "breast_cancer": "classification", "diabetes": "regression"}


class SklearnData(DataCommon):
    POOL: ClassVar[bool] = True
    source: Literal["sklearn"]
    name: Literal["digits", "iris", "wine", "breast_cancer", "diabetes"] = Field(
        description="bundled data set (digits are 8x8x1 images with raw values 0..16)")


def task_of(cfg) -> str:
    return _TASKS[cfg.name]


def not_images(cfg) -> str | None:
    return None if cfg.name == "digits" else f"sklearn's {cfg.name} is a table of features"


@SOURCES.register("sklearn", config=SklearnData, not_images=not_images)
def load_sklearn(cfg: SklearnData, seed: int) -> Pool:
    import numpy as np
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{cfg.name}")()
    x = np.asarray(bunch.data, dtype="float32")
    value_range = None
    if cfg.name == "digits":
        x = x.reshape(-1, 8, 8, 1)
        value_range = (0.0, 16.0)
    task = _TASKS[cfg.name]
    if task == "regression":
        return Pool(x, np.asarray(bunch.target, dtype="float32"), task)
    names = [str(n) for n in getattr(bunch, "target_names", range(int(bunch.target.max()) + 1))]
    return Pool(x, np.asarray(bunch.target, dtype="int64"), task, names, value_range)
