"""A CSV table with a header row: one label column, numeric feature columns, categorical columns one-hot or indexed."""

from __future__ import annotations

import csv
from typing import ClassVar, Literal, Optional

from pydantic import Field

from runner.data.sources.common_fields import DataCommon
from runner.data.sources.registry import SOURCES, Pool
from runner.kernel.errors import DataError


class CsvData(DataCommon):
    POOL: ClassVar[bool] = True
    source: Literal["csv"]
    path: str = Field(description="a .csv file with a header row")
    label: str = Field(description="the label (or regression target) column")
    features: Optional[list[str]] = Field(None, description="feature columns; null: every column but the label")
    categorical: list[str] = Field(default_factory=list, description="feature columns holding categories")
    categorical_encoding: Literal["one_hot", "index"] = Field(
        "one_hot", description="one_hot: a 0/1 column per category; index: one column of category numbers "
                               "(for an Embedding layer)")
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: a text or integer label column is classes, a float column is regression")
    delimiter: str = Field(",", min_length=1, max_length=1, description="field separator")


def _read(cfg: CsvData) -> tuple[list[str], list[list[str]]]:
    try:
        with open(cfg.path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter=cfg.delimiter))
    except FileNotFoundError:
        raise DataError(f"data.path: {cfg.path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"data.path: {cfg.path}: not a readable CSV file ({e})") from None
    if len(rows) < 2:
        raise DataError(f"data.path: {cfg.path}: needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{cfg.path}:{line}: {len(row)} fields, but the header has {len(header)}")
    return header, body


def _columns(cfg: CsvData, header: list[str]) -> list[str]:
    from runner.kernel.registry import did_you_mean

    features = cfg.features if cfg.features is not None else [h for h in header if h != cfg.label]
    for key, names in (("label", [cfg.label]), ("features", features), ("categorical", cfg.categorical)):
        for name in names:
            if name not in header:
                raise DataError(f"data.{key}: no column {name!r} in {cfg.path}{did_you_mean(name, header)}; "
                                f"columns: {', '.join(header)}")
    if cfg.label in features:
        raise DataError(f"data.features: the label column {cfg.label!r} cannot also be a feature")
    return features


def _number(cfg: CsvData, value: str, line: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{cfg.path}:{line}: column {column!r}: {value!r} is not a number; list the column "
                        f"in data.categorical if it holds categories") from None


def _is_int(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except ValueError:
        return False


def _labels(cfg: CsvData, values: list[str]):
    import numpy as np

    numeric = all(is_float(v) for v in values)
    task = cfg.task if cfg.task != "auto" else (
        "regression" if numeric and not all(_is_int(v) for v in values) else "classification")
    if task == "regression":
        if not numeric:
            raise DataError(f"data.label: column {cfg.label!r} of {cfg.path} is not numeric; a regression "
                            "target must be")
        return np.asarray(values, "float32"), task, None
    names = sorted(set(values), key=lambda v: (float(v), v) if numeric else (0.0, v))
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[v] for v in values], "int64"), task, names


def is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@SOURCES.register("csv", config=CsvData, not_images=lambda cfg: "a csv source gives a table of features")
def load_csv(cfg: CsvData, seed: int) -> Pool:
    import numpy as np

    header, body = _read(cfg)
    features = _columns(cfg, header)
    col = {name: header.index(name) for name in header}
    categories = {c: sorted({row[col[c]].strip() for row in body}) for c in cfg.categorical}
    blocks = []
    for name in features:
        values = [row[col[name]].strip() for row in body]
        if name in categories:
            codes = np.asarray([categories[name].index(v) for v in values])
            blocks.append(np.eye(len(categories[name]))[codes] if cfg.categorical_encoding == "one_hot"
                          else codes[:, None])
        else:
            blocks.append(np.asarray([_number(cfg, v, i + 2, name) for i, v in enumerate(values)])[:, None])
    y, task, names = _labels(cfg, [row[col[cfg.label]].strip() for row in body])
    return Pool(np.concatenate(blocks, axis=1).astype("float32"), y, task, names)
