"""Resuming a run: the config check, the newest valid backup (falling back past corrupt ones), where to restart."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import yaml

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError, EnvironmentProblem

log = logging.getLogger(__name__)

# keys a resume may change: where outputs go and how they are logged, and what happens after training
# (and distribute.task_index: every worker of a multi-worker run resumes the chief's run directory as itself)
MAY_CHANGE = ("output", "callbacks.tensorboard", "callbacks.backup", "export", "distribute.task_index")


@dataclass
class Start:
    """Where training (re)starts: after `step` batches of epoch `epoch` (0-based), from `backup` if any."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    position: int = 0  # batches consumed from the training stream
    stopped: bool = False
    backup: tuple | None = None  # (meta, arrays)

    @classmethod
    def of(cls, backup) -> "Start":
        meta = backup[0]
        return cls(meta["epoch"], meta["step"], meta["global_step"], meta["position"], meta["stopped"], backup)

    def resumed_from(self) -> dict:
        return {"epoch": self.epoch, "step": self.global_step}


_ABSENT = object()


def _show(value) -> str:
    if value is _ABSENT:
        return "(absent)"
    return yaml.safe_dump(value, default_flow_style=True, width=1_000).removesuffix("...\n").strip()


def _differences(old, new, path: str, out: list) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _differences(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else str(key), out)
    elif old != new:
        out.append((path, old, new))


def config_differences(old: dict, new: dict) -> list[str]:
    """`key.path: old -> new` for every difference a resume does not allow."""
    found = []
    _differences(old, new, "", found)
    lines = []
    for key, before, after in found:
        if any(key == p or key.startswith(p + ".") for p in MAY_CHANGE):
            continue
        if key == "train.epochs" and isinstance(before, int) and isinstance(after, int) and after > before:
            continue
        rule = " (epochs may grow, not shrink)" if key == "train.epochs" else ""
        lines.append(f"{key}: {_show(before)} -> {_show(after)}{rule}")
    return lines


def check_config(run_dir: rd.RunDir, cfg) -> None:
    """ConfigError (exit 2) listing the differing keys when `cfg` may not continue the run in `run_dir`."""
    path = run_dir.file(rd.CONFIG)
    try:
        old = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise EnvironmentProblem(f"cannot read {path} to check the config of the run to resume: {e}") from None
    diffs = config_differences(old, cfg.model_dump(mode="json"))
    if diffs:
        raise ConfigError([f"{path}: resume refused: the config differs from the run's in {len(diffs)} "
                           f"key{'s' if len(diffs) > 1 else ''} (only {', '.join(MAY_CHANGE)} may change, "
                           "and train.epochs may grow):"]
                          + [f"  {d}" for d in diffs]
                          + ["train into a new run directory to use a different config"])


def latest_backup(run_dir: rd.RunDir):
    """(meta, arrays) of the newest valid backup, falling back with a warning; None when there is none at all."""
    from runner.callbacks.backup import BackupInvalid, backup_files, read_backup

    folder = run_dir.file(rd.BACKUP)
    if not folder.is_dir():
        return None
    rd.discard_temp_files(folder)
    files = backup_files(folder)
    problems = []
    for path in files:
        try:
            backup = read_backup(path)
        except BackupInvalid as e:
            problems.append(f"{path}: {e}")
            log.warning(f"dlrun: warning: backup {path} is not usable ({e}); trying the previous one")
            continue
        return backup
    if problems:
        raise EnvironmentProblem(
            f"no valid backup to resume from: {'; '.join(problems)}. The run is not restarted from scratch "
            f"silently: move {folder} away to train this run directory from the beginning")
    return None
