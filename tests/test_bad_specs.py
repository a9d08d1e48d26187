"""The bad-spec corpus: each file in tests/data/bad_specs fails `dlrun validate` with exit 2 and its exact message."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

CORPUS = Path(__file__).parent / "data" / "bad_specs"
CASES = sorted(p.stem for p in CORPUS.glob("*.expected"))
# as a user's Python runs it: with cached bytecode (this sandbox sets PYTHONDONTWRITEBYTECODE, which
# recompiles every module on every start)
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(ROOT)}


def timed_cli(*args, cwd=ROOT) -> tuple[subprocess.CompletedProcess, float, float]:
    """`dlrun ARGS` in a fresh process: (result, wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd, env=CLI_ENV,
                          capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def oversubscribed() -> bool:
    return os.getloadavg()[0] >= (os.cpu_count() or 1)


def assert_fast(run, limit: float) -> subprocess.CompletedProcess:
    """Run `run()` and hold it to `limit` seconds, best of three.

    The CPU time of the command is always held to the limit. Wall time is held to it too unless the machine is
    oversubscribed (load above the core count: on the shared 2-core host a neighbour's build can triple any wall
    time, which measures the neighbour, not dlrun; retrying then only adds load).
    """
    proc, wall, cpu = run()
    for _ in range(2):
        if (wall < limit and cpu < limit) or oversubscribed():
            break
        proc, wall2, cpu2 = run()
        wall, cpu = min(wall, wall2), min(cpu, cpu2)
    assert cpu < limit, f"{cpu:.2f} s of CPU"
    if not oversubscribed():
        assert wall < limit, f"{wall:.2f} s wall"
    return proc


def test_corpus_covers_at_least_40_failure_kinds():
    assert len(CASES) >= 40
    specs = {p.stem for p in CORPUS.glob("*.yaml") if not p.stem.startswith("_")}
    # every spec has its expected message; only `missing_file` has a message without a spec
    assert specs - set(CASES) == set()
    assert set(CASES) - specs == {"missing_file"}
    assert {p.stem for p in CORPUS.glob("*.args")} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_bad_spec(name):
    args_file = CORPUS / f"{name}.args"
    extra = args_file.read_text().splitlines() if args_file.exists() else []
    proc = assert_fast(lambda: timed_cli("validate", f"{name}.yaml", *extra, cwd=CORPUS), 1.0)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (CORPUS / f"{name}.expected").read_text()
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
