"""Quiet by default: TensorFlow's C++ start-up lines and library warnings stay off stderr (`--verbose` shows them).

TensorFlow 2.21 writes absl/CUDA lines ("All log messages before absl::InitializeLog() ...", cudart stub,
cuInit) from C++ while `import tensorflow` runs and when it first lists its devices, before
TF_CPP_MIN_LOG_LEVEL applies; only the file descriptor can catch them. While that happens, fd 2 points at a
temp file (no pipe: nothing would read it, and a full pipe blocks the writer); afterwards every line that is
not one of those log lines is passed on, so a real error still shows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings

from runner.kernel.native_log import set_native_log_filter

# absl's prefix: severity and MMDD, time (TF 2.21 writes seconds since the epoch as its seconds), thread id, file:line]
_NATIVE_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-]+:\d+\] ")
_NATIVE_NOTES = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                 # the second line of cpu_feature_guard's message
                 "To enable the following instructions:",
                 # LiteRT's minimal logger at its INFO level (its WARNING and ERROR lines still show)
                 "INFO: ",
                 # the TFLite converter's quantizer, on LLVM's debug stream, at every int8 conversion
                 "fully_quantize: ")


def native_noise(line: str) -> bool:
    return bool(_NATIVE_LOG.match(line)) or line.startswith(_NATIVE_NOTES)


class NativeLogFilter:
    """fd 2 into a temp file for the duration; then its lines, less TensorFlow's native log, to stderr."""

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        text = self._file.read().decode(errors="replace")
        self._file.close()
        kept = [line for line in text.splitlines(keepends=True) if not native_noise(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return False


def quiet_libraries(verbose: bool) -> None:
    """Before anything imports TensorFlow: keep its native logs and library warnings off stderr, unless verbose."""
    # the calls library code marks with kernel.native_log (LiteRT's interpreter) go through the same filter
    set_native_log_filter(contextlib.nullcontext if verbose else NativeLogFilter)
    if verbose or "tensorflow" in sys.modules:
        return
    # 3: C++ ERROR lines too, such as tf.data's "NodeDef mentions attribute use_unbounded_threadpool" at a
    # run's first epoch, which a user cannot act on; a crash still shows (FATAL) and --verbose shows all
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    # library warnings (DeprecationWarning from a dependency, Keras's notes) are for their developers;
    # dlrun's own warnings are printed lines, not the warnings module
    warnings.simplefilter("ignore")
    # so are their log records (onnxruntime's quantizer warns through the root logger): a root handler that drops
    # them, which also keeps a library's `logging.warning()` from installing one (basicConfig) that prints them;
    # dlrun's own `runner` loggers have their handler (cli/output.py) and do not propagate
    logging.getLogger().addHandler(logging.NullHandler())
