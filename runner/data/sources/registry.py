"""The source registry and what a source returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy stays out of `dlrun validate`, which imports the source registry
    import numpy as np

from runner.kernel.registry import Registry

SOURCES = Registry("data source")


@dataclass
class Pool:
    """A single pool of in-memory examples that dlrun splits itself (sklearn, numpy, csv, ...)."""

    x: np.ndarray
    y: np.ndarray
    task: str
    class_names: list | None = None
    value_range: tuple | None = None
