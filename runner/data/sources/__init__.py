"""Data sources, registered under their `data.source` name."""

from runner.data.sources.registry import SOURCES
from runner.data.sources import numpy_source, sklearn_source  # noqa: F401  (register)
from runner.data.sources import csv_source, image_folder, text_folder, tfds_source  # noqa: F401  (register)

__all__ = ["SOURCES"]
