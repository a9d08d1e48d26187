"""A folder with one sub-folder of .txt files per class (`keras.utils.text_dataset_from_directory` layout)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from runner.data.sources.common_fields import DataCommon
from runner.data.sources.image_folder import index_folder
from runner.data.sources.registry import SOURCES, Pool
from runner.kernel.errors import DataError


class TextFolderData(DataCommon):
    POOL: ClassVar[bool] = True
    source: Literal["text_folder"]
    path: str = Field(description="folder with one sub-folder of .txt files per class, one example per file")
    encoding: str = Field("utf-8", description="text encoding of the files")


def describe_text_folder(cfg: TextFolderData):
    """DataInfo from the folder names alone: scalar string inputs, one class per sub-folder."""
    from runner.data.info import DataInfo

    _, _, classes = index_folder(cfg.path, (".txt",), "texts")
    return DataInfo((), "string", "classification", len(classes), classes)


@SOURCES.register("text_folder", config=TextFolderData, describe=describe_text_folder,
                  not_images=lambda cfg: "a text_folder source gives token sequences", text=True)
def load_text_folder(cfg: TextFolderData, seed: int) -> Pool:
    import numpy as np

    files, labels, classes = index_folder(cfg.path, (".txt",), "texts")
    texts = []
    for f in files:
        try:
            with open(f, encoding=cfg.encoding) as handle:
                texts.append(handle.read())
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"data.path: {f}: unreadable as {cfg.encoding} text ({e}); set data.encoding "
                            "or fix the file") from None
    return Pool(np.asarray(texts, dtype=object), np.asarray(labels, "int64"), "classification", classes)
