"""What every training verb calls: one run, a k-fold cross-validation, or a teacher then its student."""

from __future__ import annotations

from runner.kernel import run_dir as rd


def train(cfg, run_dir: rd.RunDir | None = None, spec_path=None, extra_callbacks=(), started_at: float | None = None):
    """Train `cfg` into `run_dir` (new if None); a run directory that holds this run continues where it stopped.

    `started_at`: time.perf_counter() at the process's start, from which a single run's wall_s counts.
    """
    if cfg.data.kfold is not None and cfg.data.kfold.fold is None:
        from runner.run.kfold import run_kfold

        return run_kfold(cfg, run_dir, spec_path, extra_callbacks)
    if cfg.distill is not None or cfg.task == "gan":  # a teacher or a FID classifier trains first
        from runner.run.teacher import run_after_prior

        return run_after_prior(cfg, run_dir, spec_path, extra_callbacks, started_at)
    from runner.run.experiment import run_experiment

    return run_experiment(cfg, run_dir, spec_path, extra_callbacks, started_at=started_at)
