"""One run: prepare -> fit under the spec's NaN policy -> finish, holding the run directory's lock throughout."""

from __future__ import annotations

from runner.kernel import run_dir as rd
from runner.run.lifecycle import RunResult, finish, prepare
from runner.run.rollback import fit_with_rollback
from runner.training.gradient_registry import released_custom_gradients


def run_experiment(cfg, run_dir: rd.RunDir | None = None, spec_path=None, extra_callbacks=(), teacher_file=None,
                   started_at: float | None = None, fid_file: str | None = None) -> RunResult:
    """prepare -> fit (with the spec's NaN policy) -> finish; a run directory holding this run continues it."""
    # every fit of the run: the training, and finish's quantization-aware fine-tuning
    with released_custom_gradients():
        exp = prepare(cfg, run_dir, spec_path, extra_callbacks, teacher_file, started_at, fid_file)
        with exp.stack:
            fit_with_rollback(exp)
            return finish(exp)
