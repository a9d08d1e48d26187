"""An `.npz` file of arrays: inputs under `x`, labels under `y` (keys configurable)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import AfterValidator, Field

from runner.data.sources.common_fields import DataCommon
from runner.data.sources.registry import SOURCES, Pool
from runner.kernel.errors import DataError
from runner.language.fields import low_high

ValueRange = Annotated[list[float], Field(min_length=2, max_length=2), AfterValidator(low_high)]


class NumpyData(DataCommon):
    POOL: ClassVar[bool] = True
    source: Literal["numpy"]
    path: str = Field(description="an .npz file")
    x_key: str = Field("x", description="array of inputs")
    y_key: str = Field("y", description="array of labels or targets")
    class_names: Optional[list[str]] = Field(None, description="names of classes 0..N-1")
    value_range: Optional[ValueRange] = Field(
        None, description="[low, high] of the input values, which the pixel-range augmentations (brightness, contrast, "
                    "...) and a GAN's outputs use; default for images: [0, 255] for 8-bit arrays, otherwise the "
                    "array's own minimum and maximum")


def _npy_header(archive, name: str) -> dict | None:
    """The header dict ({'descr', 'fortran_order', 'shape'}) of one array of an .npz, read without numpy."""
    import ast
    import struct

    try:
        with archive.open(f"{name}.npy") as f:
            if f.read(6) != b"\x93NUMPY":
                return None
            major = f.read(2)[0]
            size = struct.unpack("<H", f.read(2))[0] if major == 1 else struct.unpack("<I", f.read(4))[0]
            return ast.literal_eval(f.read(size).decode("latin1"))
    except (KeyError, OSError, ValueError, SyntaxError, struct.error):
        return None


def as_loaded(x_shape: tuple, y_shape: tuple) -> tuple[tuple, tuple]:
    """Shapes as load_numpy passes them on: masks lose a trailing channel axis of 1, grayscale images get one."""
    if len(y_shape) == 4 and y_shape[-1] == 1:
        y_shape = y_shape[:3]
    if len(x_shape) == 3 and len(y_shape) == 3 and y_shape[1:] == x_shape[1:]:
        x_shape = (*x_shape, 1)
    return tuple(x_shape), tuple(y_shape)


def header_shapes(cfg: NumpyData) -> tuple[tuple, tuple] | None:
    """(x shape, y shape) as loaded, from the .npz file's array headers, for `dlrun validate`; None if unreadable."""
    info = header_info(cfg)
    return None if info is None else as_loaded(info[0][0], info[1][0])


def header_info(cfg: NumpyData):
    """((x shape, x dtype), (y shape, y dtype)) from the .npz headers, or None when the file cannot tell."""
    import zipfile

    try:
        with zipfile.ZipFile(cfg.path) as archive:
            headers = [_npy_header(archive, key) for key in (cfg.x_key, cfg.y_key)]
    except (OSError, zipfile.BadZipFile):
        return None  # loading the data reports it, with exit 3
    if None in headers:
        return None
    return tuple((tuple(h["shape"]), h["descr"]) for h in headers)


def infer_task(x_shape: tuple, y_shape: tuple, integer: bool) -> str:
    """auto (shapes as loaded): float labels are regression targets; integer masks of the image's size,
    segmentation; other integer labels, classes."""
    if not integer:
        return "regression"
    masks = len(x_shape) == 4 and len(y_shape) == 3 and y_shape[1:] == x_shape[1:3]
    return "segmentation" if masks else "classification"


def header_task(cfg: NumpyData) -> str | None:
    info = header_info(cfg)
    if info is None:
        return None
    (x_shape, _), (y_shape, y_type) = info
    return infer_task(*as_loaded(x_shape, y_shape), isinstance(y_type, str) and y_type[1:2] in ("i", "u"))


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
    x_shape, y_shape = as_loaded(x.shape, y.shape)
    x, y = x.reshape(x_shape), y.reshape(y_shape)
    task = cfg.task
    if task == "auto":
        task = infer_task(x.shape, y.shape, np.issubdtype(y.dtype, np.integer))
    value_range = _value_range(cfg, x)
    if task == "regression":
        return Pool(x.astype("float32"), y.astype("float32"), task, value_range=value_range)
    y = y.astype("int64")
    names = cfg.class_names or [str(i) for i in range(int(y.max()) + 1)]
    return Pool(x.astype("float32"), y, task, names, value_range)


def _value_range(cfg: NumpyData, x) -> tuple | None:
    """The spec's [low, high]; for images (as loaded: examples, height, width, channels) without one, 0..255 for
    8-bit arrays, else the array's own extremes (an array of [0, 1] images: about 0 and 1)."""
    import numpy as np

    if cfg.value_range:
        return tuple(cfg.value_range)
    if x.ndim != 4 or not len(x):
        return None
    return (0.0, 255.0) if x.dtype == np.uint8 else (float(x.min()), float(x.max()))
