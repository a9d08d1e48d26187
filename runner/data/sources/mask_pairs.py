"""image_folder pairs for segmentation: `images/` and `masks/` with the same file names; masks are palette or
grayscale PNGs whose pixel values (palette indices or gray levels) are class ids."""

from __future__ import annotations

import os

from runner.kernel.errors import DataError

IMAGES, MASKS = "images", "masks"
MASK_MODES = ("P", "L", "1", "I", "I;16")  # palette indices or gray levels; colour masks would need a palette map


def has_pairs(root: str) -> bool:
    return all(os.path.isdir(os.path.join(root, d)) for d in (IMAGES, MASKS))


def index_pairs(root: str, formats) -> tuple[list[str], list[str]]:
    """(image files, mask files) matched by their path under images/ and masks/, suffix aside (photo.jpg pairs
    with photo.png)."""
    if not has_pairs(root):
        raise DataError(f"data.path: {root}: data.task: segmentation reads image/mask pairs from {root}/{IMAGES}/ "
                        f"and {root}/{MASKS}/ (the same file names in both); these folders are missing")
    masks = {}
    for folder, dirs, names in sorted(os.walk(os.path.join(root, MASKS), followlinks=True)):
        dirs.sort()
        for name in names:
            if name.lower().endswith(formats):
                rel = os.path.relpath(os.path.join(folder, name), os.path.join(root, MASKS))
                masks[os.path.splitext(rel)[0]] = os.path.join(folder, name)
    images, paired, missing = [], [], []
    for folder, dirs, names in sorted(os.walk(os.path.join(root, IMAGES), followlinks=True)):
        dirs.sort()
        for name in sorted(n for n in names if n.lower().endswith(formats)):
            path = os.path.join(folder, name)
            key = os.path.splitext(os.path.relpath(path, os.path.join(root, IMAGES)))[0]
            if key in masks:
                images.append(path)
                paired.append(masks[key])
            else:
                missing.append(path)
    if missing:
        raise DataError(f"data.path: {root}: {len(missing)} images have no mask of the same name in "
                        f"{root}/{MASKS}/, e.g. {missing[0]}")
    if not images:
        raise DataError(f"data.path: {root}: no images ({', '.join(formats)}) in {root}/{IMAGES}/")
    return images, paired


def read_masks(paths: list[str], size: tuple[int, int]):
    """The masks as one (N, height, width) int64 array, resized nearest-neighbour to `size` where they differ."""
    import numpy as np
    from PIL import Image

    out = np.empty((len(paths), *size), dtype="int64")
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as mask:
                if mask.mode not in MASK_MODES:
                    raise DataError(f"{path}: a mask must be a palette or grayscale image whose pixel values are "
                                    f"class ids; this one is {mask.mode}")
                if (mask.height, mask.width) != tuple(size):
                    mask = mask.resize((size[1], size[0]), Image.NEAREST)
                out[i] = np.asarray(mask, dtype="int64")
        except DataError:
            raise
        except Exception as e:  # PIL raises several types for unreadable files
            raise DataError(f"{path}: unreadable mask ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
                from None
    return out


def class_names(cfg, masks) -> list[str]:
    """`data.class_names`, or '0'..'K' for the highest class id in the masks."""
    top = int(masks.max()) + 1 if masks.size else 1
    names = list(cfg.class_names) if cfg.class_names else [str(i) for i in range(max(2, top))]
    if top > len(names):
        raise DataError(f"data.class_names: {len(names)} names, but the masks hold class ids up to {top - 1}")
    return names
