"""The bad-spec corpus: each file in tests/data/bad_specs fails `dlrun validate` with exit 2 and its exact message.
Through the CLI's `main` in this process: test_cli.py runs `validate` failures as real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_inline

pytestmark = pytest.mark.config_errors

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_specs"
CASES = sorted(p.stem for p in CORPUS.glob("*.expected"))
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
    proc = run_inline("validate", f"{name}.yaml", *extra, cwd=CORPUS)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (CORPUS / f"{name}.expected").read_text()
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
