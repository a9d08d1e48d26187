"""The program's TensorFlow import: the garbage collector paused for it, what it leaves frozen, the collector on
after (tests/cli/test_quiet.py: what it keeps off stderr)."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT

PROBE = """
import gc, json, sys
from runner.cli.tensorflow_import import import_tensorflow_when_needed

import_tensorflow_when_needed(quiet=True)
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
import tensorflow
print(json.dumps({"collections": len(collections), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "devices": [d.device_type for d in tensorflow.config.list_physical_devices()]}))
"""


def test_tensorflow_imports_without_a_collection_and_leaves_its_objects_frozen():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.splitlines()[-1])
    # measured: 365,000-420,000 objects (TensorFlow, Keras, scikit-learn, SciPy); without the pause, 878 collections
    # ran during the import, 6 of them full ones over all of those objects
    assert facts["collections"] == 0 and facts["enabled"] and facts["frozen"] > 300_000, facts
    assert facts["devices"] == ["CPU"]
    assert "All log messages before absl::InitializeLog()" not in proc.stderr
