"""A folder with one sub-folder of images per class (`keras.utils.image_dataset_from_directory` layout)."""

from __future__ import annotations

import os
from typing import ClassVar, Literal, Optional

from pydantic import Field

from runner.language.fields import PositiveInt
from runner.data.sources.common_fields import DataCommon
from runner.data.sources.registry import SOURCES, Pool
from runner.kernel.errors import DataError

FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what image_dataset_from_directory reads
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


class ImageFolderData(DataCommon):
    POOL: ClassVar[bool] = True
    source: Literal["image_folder"]
    path: str = Field(description="folder with one sub-folder of images per class, or (segmentation) images/ and "
                                  "masks/ with the same file names")
    image_size: Optional[list[PositiveInt]] = Field(
        None, min_length=2, max_length=2, description="[height, width] to resize to; null: the first image's size")
    color_mode: Literal["rgb", "grayscale", "rgba"] = Field("rgb", description="channels the images are read with")
    interpolation: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian",
                           "mitchellcubic"] = Field("bilinear", description="resampling when an image is resized")
    skip_corrupt: bool = Field(False, description="skip unreadable images (counted in env.json) instead of failing")
    class_names: Optional[list[str]] = Field(
        None, description="segmentation: names of the mask's class ids 0..N-1 (default '0', '1', ...)")


def index_folder(root: str, formats=FORMATS, what: str = "images") -> tuple[list[str], list[int], list[str]]:
    """(files, labels, class names): sub-folders sorted by name are classes 0..N-1; files found recursively."""
    if not os.path.isdir(root):
        raise DataError(f"data.path: {root}: not a folder")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DataError(f"data.path: {root}: no class sub-folders; put each class's {what} in its own folder")
    files, labels = [], []
    for label, name in enumerate(classes):
        for folder, dirs, names in sorted(os.walk(os.path.join(root, name), followlinks=True)):
            dirs.sort()
            found = sorted(n for n in names if n.lower().endswith(formats))
            files += [os.path.join(folder, n) for n in found]
            labels += [label] * len(found)
    if not files:
        raise DataError(f"data.path: {root}: no {what} ({', '.join(formats)}) in {', '.join(classes)}")
    return files, labels, classes


def _size(cfg: ImageFolderData, first: str) -> tuple[int, int]:
    from PIL import Image

    if cfg.image_size:
        return tuple(cfg.image_size)
    try:
        with Image.open(first) as image:
            return image.height, image.width
    except Exception as e:  # PIL raises several types for unreadable files
        raise DataError(f"data.image_size: null takes the first image's size, and {first} is unreadable ({e}); "
                        "set data.image_size: [height, width]") from None


def is_segmentation(cfg: ImageFolderData) -> bool:
    """data.task: segmentation, or auto on a folder holding images/ and masks/."""
    from runner.data.sources.mask_pairs import has_pairs

    return cfg.task == "segmentation" or (cfg.task == "auto" and has_pairs(cfg.path))


def describe_image_folder(cfg: ImageFolderData):
    """DataInfo from the folder names and the first image's size: no decoding of the whole set."""
    from runner.data.info import DataInfo

    if is_segmentation(cfg):
        from runner.data.sources.mask_pairs import class_names, index_pairs, read_masks

        files, masks = index_pairs(cfg.path, FORMATS)
        size = _size(cfg, files[0])
        names = class_names(cfg, read_masks(masks, size))
        return DataInfo((*size, CHANNELS[cfg.color_mode]), "float32", "segmentation", len(names), names, {},
                        (0.0, 255.0))
    files, _, classes = index_folder(cfg.path)
    shape = (*_size(cfg, files[0]), CHANNELS[cfg.color_mode])
    return DataInfo(shape, "float32", "classification", len(classes), classes, {}, (0.0, 255.0))


@SOURCES.register("image_folder", config=ImageFolderData, describe=describe_image_folder)
def load_image_folder(cfg: ImageFolderData, seed: int):
    """Files are checked up front, split by path, and decoded in the pipeline (read_file, decode, resize)."""
    import numpy as np

    from runner.data.dataset import Data, adapt_sample, split_pool
    from runner.data.info import DataInfo

    if is_segmentation(cfg):
        return _load_pairs(cfg, seed)
    files, labels, classes = index_folder(cfg.path)
    files, labels, skipped = _readable(cfg, files, labels)
    import tensorflow as tf

    size, channels = _size(cfg, files[0]), CHANNELS[cfg.color_mode]

    def decode(path, label):  # what keras.utils.image_dataset_from_directory does per file
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        return tf.image.resize(image, size, method=cfg.interpolation), label

    pool = Pool(np.asarray(files), np.asarray(labels, "int64"), "classification", classes)
    arrays = split_pool(pool, cfg, seed)
    splits = {name: tf.data.Dataset.from_tensor_slices(v).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
              for name, v in arrays.items()}
    info = DataInfo((*size, channels), "float32", "classification", len(classes), classes,
                    {name: len(v[1]) for name, v in arrays.items()}, (0.0, 255.0), skipped)
    return Data(info, splits, adapt_sample(splits["train"], cfg))


def _readable(cfg, files: list, aligned: list):
    """(files, the list aligned with them, how many were skipped) without the unreadable images, which fail the
    run with their list unless data.skip_corrupt (data/corrupt.py)."""
    from runner.data.corrupt import check_corrupt, unreadable_images

    bad = unreadable_images(files)
    skipped = check_corrupt(bad, len(files), f"data.path: {cfg.path}", cfg.skip_corrupt)
    if skipped:
        broken = {path for path, _ in bad}
        keep = [i for i, f in enumerate(files) if f not in broken]
        files, aligned = [files[i] for i in keep], [aligned[i] for i in keep]
        if not files:
            raise DataError(f"data.path: {cfg.path}: every image is unreadable")
    return files, aligned, skipped


def _load_pairs(cfg: ImageFolderData, seed: int):
    """Segmentation pairs: masks read up front (PIL keeps palette indices, which tf.io.decode_png turns into
    colours), images decoded and resized in the pipeline as for classification."""
    import numpy as np

    from runner.data.dataset import Data, adapt_sample, split_pool
    from runner.data.info import DataInfo
    from runner.data.sources.mask_pairs import class_names, index_pairs, read_masks

    files, mask_files = index_pairs(cfg.path, FORMATS)
    files, mask_files, skipped = _readable(cfg, files, mask_files)
    size, channels = _size(cfg, files[0]), CHANNELS[cfg.color_mode]
    masks = read_masks(mask_files, size)
    names = class_names(cfg, masks)
    import tensorflow as tf

    def decode(path, mask):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        return tf.image.resize(image, size, method=cfg.interpolation), mask

    arrays = split_pool(Pool(np.asarray(files), masks, "segmentation", names), cfg, seed)
    splits = {name: tf.data.Dataset.from_tensor_slices(v).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
              for name, v in arrays.items()}
    info = DataInfo((*size, channels), "float32", "segmentation", len(names), names,
                    {name: len(v[1]) for name, v in arrays.items()}, (0.0, 255.0), skipped)
    return Data(info, splits, adapt_sample(splits["train"], cfg))
