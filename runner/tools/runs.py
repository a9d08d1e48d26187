"""Finding run directories and reading them back: `dlrun ls` and `dlrun compare`. No TensorFlow."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from runner.kernel.text import table

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError

STAMP = re.compile(r"^(\d{8}-\d{6})-[0-9a-f]{6}$")


@dataclass
class RunInfo:
    run_dir: str
    name: str | None
    state: str
    epochs: int | None
    best: dict | None
    test: dict | None
    wall_s: float | None
    started: float  # seconds since the epoch, for ordering; not part of the JSON


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_config(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _started(path: Path) -> float:
    """The time in the directory name (runs/<name>/<YYYYmmdd-HHMMSS>-<hex>), else when config.yaml was written."""
    match = STAMP.match(path.name)
    if match:
        return datetime.datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").timestamp()
    return (path / rd.CONFIG).stat().st_mtime


def _process_gone(path: Path) -> bool:
    """True when the pid in the run's lock file is no process on this machine (killed, crashed, rebooted).
    Asked without taking the lock, which a starting `dlrun resume` would then find taken."""
    env = _read_json(path / rd.ENV) or {}
    try:
        pid = int((path / rd.LOCK).read_text().strip())
    except (OSError, ValueError):
        return False
    if env.get("hostname") != socket.gethostname():
        return False  # another machine's process: nothing to ask here
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, run by another user
        pass
    return False


def read_run(path: Path) -> RunInfo:
    status = _read_json(path / rd.STATUS) or {}
    metrics = _read_json(path / rd.METRICS) or {}
    config = _read_config(path / rd.CONFIG)
    state = status.get("state", "unknown")
    if state == "running" and _process_gone(path):
        state = "interrupted"  # its process died without a word; `dlrun resume` continues it
    return RunInfo(
        run_dir=str(path), name=config.get("name"), state=state,
        epochs=metrics.get("epochs_run", status.get("epoch")), best=metrics.get("best"),
        test=metrics.get("test"), wall_s=metrics.get("wall_s"), started=_started(path))


def find_runs(root) -> list[RunInfo]:
    """Every run directory (config.yaml next to status.json or env.json) under `root`, newest first."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such directory; pass the folder that holds your runs (output.dir, "
                          "default 'runs')")
    paths = sorted(p.parent for p in root.rglob(rd.CONFIG)
                   if (p.parent / rd.STATUS).is_file() or (p.parent / rd.ENV).is_file())
    return sorted((read_run(p) for p in paths), key=lambda r: (r.started, r.run_dir), reverse=True)


def as_json(runs: list[RunInfo]) -> str:
    return json.dumps([{k: v for k, v in asdict(r).items() if k != "started"} for r in runs], indent=2)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def runs_table(runs: list[RunInfo], root) -> str:
    rows = [["run", "name", "state", "epochs", "best", "test", "wall"]]
    for r in runs:
        best = f"{r.best['monitor']}={_number(r.best['value'])}" if r.best else "-"
        test = " ".join(f"{k}={_number(v)}" for k, v in r.test.items()) if r.test else "-"
        wall = "-" if r.wall_s is None else f"{r.wall_s:.1f}s"
        rows.append([str(Path(r.run_dir).relative_to(root)), r.name or "-", r.state,
                     "-" if r.epochs is None else str(r.epochs), best, test, wall])
    return table(rows)


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict) and tree:
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _run_path(path) -> Path:
    path = Path(path)
    if not (path / rd.CONFIG).is_file():
        raise ConfigError(f"{path}: not a run directory (no {rd.CONFIG}); `dlrun ls` lists the runs you can "
                          "compare")
    return path


def compare(paths) -> str:
    """The config keys whose values differ between the runs, then their metrics side by side."""
    paths = [_run_path(p) for p in paths]
    runs = [read_run(p) for p in paths]
    configs = [_flatten(_read_config(p / rd.CONFIG)) for p in paths]
    header = ["", *(str(p) for p in paths)]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    differ = [k for k in keys if len({json.dumps(c.get(k, "<unset>"), default=str) for c in configs}) > 1]
    config_rows = [[k, *(_cell(c.get(k, "<unset>")) for c in configs)] for k in differ]
    metrics = [_read_json(p / rd.METRICS) or {} for p in paths]
    metric_rows = [["state", *(r.state for r in runs)], ["epochs", *("-" if r.epochs is None else str(r.epochs)
                                                                     for r in runs)]]
    monitors = list(dict.fromkeys(r.best["monitor"] for r in runs if r.best))
    for monitor in monitors:
        metric_rows.append([f"best {monitor}", *(_number(r.best["value"]) if r.best and r.best["monitor"] == monitor
                                                 else "-" for r in runs)])
    for split in ("train", "validation", "test"):
        names = list(dict.fromkeys(k for m in metrics for k in (m.get(split) or {})))
        metric_rows += [[f"{split} {n}", *(_number((m.get(split) or {}).get(n)) for m in metrics)] for n in names]
    metric_rows.append(["examples/s", *(_number((m.get("throughput") or {}).get("examples_per_sec"))
                                        for m in metrics)])
    metric_rows.append(["wall", *("-" if r.wall_s is None else f"{r.wall_s:.1f}s" for r in runs)])
    parts = ["config differences:", table([header, *config_rows]) if config_rows else "  (none: same config)",
             "", "metrics:", table([header, *metric_rows])]
    return "\n".join(parts)


def _cell(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
