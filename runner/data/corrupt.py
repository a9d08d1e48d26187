"""Unreadable input files: found before training, reported (at most 20 named) or skipped and counted."""

from __future__ import annotations

import logging

SHOWN = 20
log = logging.getLogger("dlrun")


def unreadable_images(paths) -> list[tuple[str, str]]:
    """(path, reason) for every file that PIL cannot fully decode (truncated, not an image, empty)."""
    from PIL import Image

    bad = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()  # decodes the pixels: catches truncated files that open() alone accepts
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for broken files
            bad.append((str(path), str(e).splitlines()[0] if str(e) else type(e).__name__))
    return bad


def check_corrupt(bad: list[tuple[str, str]], total: int, key: str, skip: bool) -> int:
    """Raise a DataError naming the bad files, or (skip) log and return how many are skipped."""
    from runner.kernel.errors import DataError

    if not bad:
        return 0
    if skip:
        log.warning("%s: skipped %d unreadable file(s) of %d (data.skip_corrupt)", key, len(bad), total)
        return len(bad)
    lines = [f"  {path}: {reason}" for path, reason in bad[:SHOWN]]
    more = [f"  ... and {len(bad) - SHOWN} more"] if len(bad) > SHOWN else []
    raise DataError("\n".join([f"{key}: {len(bad)} of {total} image files are unreadable; fix or remove them, "
                               "or set data.skip_corrupt: true to skip them", *lines, *more]))
