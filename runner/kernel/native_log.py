"""Calls whose native library writes its own lines to stderr (LiteRT's minimal logger: "INFO: Created TensorFlow
Lite XNNPACK delegate for CPU."): library code marks them, and the CLI decides what becomes of those lines
(runner/cli/quiet.py keeps them off stderr unless --verbose). Used as a library, dlrun leaves stderr alone."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

_around: Callable[[], ContextManager] = contextlib.nullcontext


def set_native_log_filter(factory: Callable[[], ContextManager]) -> None:
    """What native_log() enters from now on: the CLI's filter, or nothing (contextlib.nullcontext)."""
    global _around
    _around = factory


def native_log() -> ContextManager:
    """Enter around a call that may write native log lines to file descriptor 2."""
    return _around()
