"""train.nan_policy: rollback — on a non-finite loss, restart the fit from the last backup with a lower
learning rate, up to train.nan_retries times; otherwise fail with exit 4."""

from __future__ import annotations

import logging

from runner.kernel import run_dir as rd
from runner.kernel.errors import TrainingError

log = logging.getLogger(__name__)


def fit_with_rollback(exp) -> None:
    """lifecycle.fit, retried from the newest backup on a non-finite loss as the spec's NaN policy says."""
    from runner.callbacks.progress import NonFiniteLoss
    from runner.run.lifecycle import fit
    from runner.run.resume import Start, latest_backup

    cfg, run_dir = exp.cfg, exp.run_dir
    rollbacks = 0
    while True:
        try:
            fit(exp)
            return
        except NonFiniteLoss as e:
            where = e.where
            backup = latest_backup(run_dir) if cfg.train.nan_policy == "rollback" else None
            if backup is not None and rollbacks < cfg.train.nan_retries:
                rollbacks += 1
                exp.backup_cb.lr_scale *= cfg.train.nan_lr_factor
                exp.start = Start.of(backup)
                log.warning(f"dlrun: non-finite loss {where['loss']} at epoch {where['epoch']}, step {where['step']}; "
                            f"rollback {rollbacks}/{cfg.train.nan_retries} to epoch {exp.start.epoch + 1}, step "
                            f"{exp.start.step} with the learning rate x{exp.backup_cb.lr_scale:g}")
                continue
            tried = f" after {rollbacks} rollbacks" if rollbacks else ""
            message = (f"training failed: non-finite loss {where['loss']} at epoch {where['epoch']}, "
                       f"step {where['step']}{tried}; checkpoints are kept in {run_dir.file(rd.CHECKPOINTS)}. "
                       "Try a lower train.lr.base, gradient clipping (train.optimizer.global_clipnorm) or "
                       "train.nan_policy: rollback")
            run_dir.write_json(rd.STATUS, exp.progress.status("failed", where["epoch"] - 1, message,
                                                              step=where["global_step"]))
            raise TrainingError(message) from None
