"""An `.npz` file of arrays: inputs under `x`, labels under `y` (keys configurable)."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field

from runner.data.sources.common_fields import DataCommon
from runner.data.sources.registry import SOURCES, Pool
from runner.kernel.errors import DataError


class NumpyData(DataCommon):
    POOL: ClassVar[bool] = True
    source: Literal["numpy"]
    path: str = Field(description="an .npz file")
    x_key: str = Field("x", description="array of inputs")
    y_key: str = Field("y", description="array of labels or targets")
    class_names: Optional[list[str]] = Field(None, description="names of classes 0..N-1")


@SOURCES.register("numpy", config=NumpyData)
def load_numpy(cfg: NumpyData, seed: int) -> Pool:
    import numpy as np

    try:
        with np.load(cfg.path, allow_pickle=False) as archive:
            missing = [k for k in (cfg.x_key, cfg.y_key) if k not in archive.files]
            if missing:
                raise DataError(f"data.path: {cfg.path}: no array named {missing[0]!r}; "
                                f"the file holds {sorted(archive.files)} (set data.x_key / data.y_key)")
            x, y = archive[cfg.x_key], archive[cfg.y_key]
    except FileNotFoundError:
        raise DataError(f"data.path: {cfg.path}: file not found") from None
    except (OSError, ValueError) as e:
        raise DataError(f"data.path: {cfg.path}: not a readable .npz file ({e})") from None
    if len(x) != len(y):
        raise DataError(f"data.path: {cfg.path}: {len(x)} inputs but {len(y)} labels")
    if y.ndim == 4 and y.shape[-1] == 1:  # masks with a channel axis
        y = y[..., 0]
    if x.ndim == 3 and y.ndim == 3 and y.shape[1:] == x.shape[1:]:  # grayscale images without a channel axis
        x = x[..., None]
    task = cfg.task
    if task == "auto":
        task = ("regression" if not np.issubdtype(y.dtype, np.integer) else
                "segmentation" if x.ndim == 4 and y.shape[1:] == x.shape[1:3] else "classification")
    if task == "regression":
        return Pool(x.astype("float32"), y.astype("float32"), task)
    y = y.astype("int64")
    names = cfg.class_names or [str(i) for i in range(int(y.max()) + 1)]
    return Pool(x.astype("float32"), y, task, names)
