"""How a dlrun process imports TensorFlow: when a verb first needs it, with the garbage collector paused, and
quietly unless --verbose.

`import tensorflow` (Keras, scikit-learn and SciPy with it) leaves about 365,000 objects that live as long as the
process. The cyclic collector's passes over them while they are created took 0.9-1.1 s of the import's 4-5 s here.
With the collector paused for the import, and those objects then frozen (`gc.freeze`: kept out of every later
collection), the import takes that much less and the run's later collections skip them.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.machinery
import sys

from runner.cli.quiet import NativeLogFilter


class _TensorFlowImport:
    """A sys.meta_path finder: finds `tensorflow` as usual and wraps its import and its first device listing.

    A finder rather than an early `import tensorflow`: each verb still imports TensorFlow only when it needs
    it (train checks its data first, in seconds).
    """

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; and the lookup below must not find this finder again
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module
        quiet = self.quiet

        def exec_module(module):
            collecting = gc.isenabled()
            gc.disable()
            try:
                with NativeLogFilter() if quiet else contextlib.nullcontext():
                    loader_exec(module)
                    # the first device listing initializes CUDA (cuInit's error on a CPU host); it does not
                    # initialize the logical devices, which configure_devices may still split
                    module.config.list_physical_devices("GPU")
            finally:
                if collecting:
                    gc.freeze()
                    gc.enable()

        spec.loader.exec_module = exec_module
        return spec


def import_tensorflow_when_needed(quiet: bool) -> None:
    """Before anything imports TensorFlow: its import, when it comes, runs as this module says."""
    if "tensorflow" in sys.modules or any(isinstance(f, _TensorFlowImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowImport(quiet))
