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
UNSET = "<unset>"  # a config key one run has and another lacks
CELL = 40  # compare cuts longer values to this many characters; `compare --json` prints them whole


@dataclass
class RunInfo:
    run_dir: str
    name: str | None
    state: str
    epochs: int | None
    best: dict | None
    test: dict | None
    train_s: float | None  # the fit: first epoch's start to last epoch's end
    wall_s: float | None  # the whole process
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
        test=metrics.get("test"), train_s=metrics.get("train_s"), wall_s=metrics.get("wall_s"),
        started=_started(path))


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


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def runs_table(runs: list[RunInfo], root) -> str:
    rows = [["run", "name", "state", "epochs", "best", "test", "train_s", "wall_s"]]
    for r in runs:
        best = f"{r.best['monitor']}={_number(r.best['value'])}" if r.best else "-"
        test = " ".join(f"{k}={_number(v)}" for k, v in r.test.items()) if r.test else "-"
        rows.append([str(Path(r.run_dir).relative_to(root)), r.name or "-", r.state,
                     "-" if r.epochs is None else str(r.epochs), best, test, _seconds(r.train_s), _seconds(r.wall_s)])
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


def run_labels(runs: list[RunInfo]) -> list[str]:
    """Short column heads: name/YYYYmmdd-HHMMSS, with the directory's hex too where two runs share a second."""
    def label(r: RunInfo, full: bool) -> str:
        path = Path(r.run_dir)
        match = STAMP.match(path.name)
        tail = match.group(1) if match and not full else path.name
        return f"{r.name or path.parent.name}/{tail}"

    short = [label(r, False) for r in runs]
    return [label(r, True) if short.count(s) > 1 else s for r, s in zip(runs, short)]


def _comparison(paths) -> tuple[list[str], list[RunInfo], dict, dict]:
    """(labels, runs, {config key: values that differ}, {metric row: values}), one value per run: UNSET where a
    config lacks the key, None where a run lacks the metric."""
    paths = [_run_path(p) for p in paths]
    runs = [read_run(p) for p in paths]
    configs = [_flatten(_read_config(p / rd.CONFIG)) for p in paths]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    differ = {k: [c.get(k, UNSET) for c in configs] for k in keys
              if len({json.dumps(c.get(k, UNSET), default=str) for c in configs}) > 1}
    metrics = [_read_json(p / rd.METRICS) or {} for p in paths]
    rows = {"state": [r.state for r in runs], "epochs": [r.epochs for r in runs]}
    for monitor in dict.fromkeys(r.best["monitor"] for r in runs if r.best):
        rows[f"best {monitor}"] = [r.best["value"] if r.best and r.best["monitor"] == monitor else None for r in runs]
    for split in ("train", "validation", "test"):
        for n in dict.fromkeys(k for m in metrics for k in (m.get(split) or {})):
            rows[f"{split} {n}"] = [(m.get(split) or {}).get(n) for m in metrics]
    rows["examples/s"] = [(m.get("throughput") or {}).get("examples_per_sec") for m in metrics]
    rows["train_s"] = [r.train_s for r in runs]
    rows["wall_s"] = [r.wall_s for r in runs]
    return run_labels(runs), runs, differ, rows


def compare(paths) -> str:
    """The config keys whose values differ between the runs, then their metrics side by side."""
    labels, runs, differ, rows = _comparison(paths)
    header = ["", *labels]
    config_rows = [[k, *(_cell(v) for v in values)] for k, values in differ.items()]
    metric_rows = [[name, *(_metric(name, v) for v in values)] for name, values in rows.items()]
    parts = ["config differences:", table([header, *config_rows]) if config_rows else "  (none: same config)",
             "", "metrics:", table([header, *metric_rows]), "",
             "runs:", *(f"  {label}  {r.run_dir}" for label, r in zip(labels, runs))]
    if any(len(_cell(v, cut=False)) > CELL for values in differ.values() for v in values):
        parts.append(f"(values over {CELL} characters are cut: `dlrun compare --json` prints them whole)")
    return "\n".join(parts)


def compare_json(paths) -> str:
    """The comparison with every value whole: {runs: [{label, run_dir}], config: {key: [...]}, metrics: {...}}."""
    labels, runs, differ, rows = _comparison(paths)
    return json.dumps({"runs": [{"label": label, "run_dir": r.run_dir} for label, r in zip(labels, runs)],
                       "config": differ, "metrics": rows}, indent=2, default=str)


def _metric(name: str, value) -> str:
    if value is None:
        return "-"
    if name in ("train_s", "wall_s"):
        return _seconds(value)
    return str(value) if isinstance(value, str) or name == "epochs" else _number(value)


def _cell(value, cut: bool = True) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:CELL - 3] + "..." if cut and len(text) > CELL else text
