"""Start-up benchmark: `dlrun --help`, `dlrun validate`, per-spec rejection of the bad-spec corpus, SIGTERM latency.

    .venv/bin/python bench/startup.py [--rounds 10] [--spec experiments/digits.yaml] [--sigterm-rounds 3]

Each command runs as a fresh process through the installed `dlrun` entry point, interleaved round by round.
Reports medians (min..max) in seconds and each median as a ratio of a bare `python -c pass`, so a figure taken on
a loaded host can still be compared with one from a quiet one. The contract (docs/design): --help and validate
under 0.5 s, a bad spec refused under 1 s, SIGTERM to exit under 5 s. Also says whether TensorFlow was imported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DLRUN = Path(sys.executable).with_name("dlrun")
CORPUS = ROOT / "tests" / "data" / "bad_specs"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


def dlrun() -> list[str]:
    return [str(DLRUN)] if DLRUN.exists() else [sys.executable, "-m", "runner"]


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True)
    return time.perf_counter() - started


def line(name: str, values: list[float], baseline: float | None, note: str = "") -> None:
    median = statistics.median(values)
    ratio = f"  {median / baseline:5.1f}x python" if baseline else ""
    print(f"{name:26} {median:7.3f} s  ({min(values):.3f}..{max(values):.3f}, {len(values)} runs){ratio}{note}")


def imports_tensorflow(args: list[str]) -> bool:
    trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "runner", *args], cwd=ROOT, env=ENV,
                           capture_output=True, text=True).stderr
    return any(row.rstrip().endswith("| tensorflow") for row in trace.splitlines())


def sigterm_latency(folder: Path) -> float:
    """Seconds from SIGTERM (after the first epoch) to the exit of a digits run: backup, status, exit 143."""
    run = folder / "run"
    spec = yaml.safe_load((ROOT / "experiments" / "digits.yaml").read_text())
    spec["train"]["epochs"] = 50
    spec["output"] = {"dir": str(folder / "runs")}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen([*dlrun(), "train", str(path), "--run-dir", str(run)], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if json.loads((run / "status.json").read_text())["epoch"] >= 1:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=300)
    elapsed = time.perf_counter() - sent
    if code != 143:
        raise SystemExit(f"SIGTERM: exit {code}, expected 143")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--spec", default="experiments/digits.yaml")
    parser.add_argument("--sigterm-rounds", type=int, default=3, help="0 skips the SIGTERM measurement")
    args = parser.parse_args()
    bad = sorted(p.stem for p in CORPUS.glob("*.yaml") if not p.stem.startswith("_")
                 and (CORPUS / f"{p.stem}.expected").exists())
    commands = {"python -c pass": ([sys.executable, "-c", "pass"], ROOT),
                "dlrun --help": ([*dlrun(), "--help"], ROOT),
                "dlrun validate": ([*dlrun(), "validate", args.spec], ROOT)}
    times = {name: [] for name in commands}
    rejections: dict[str, list[float]] = {name: [] for name in bad}
    for _ in range(args.rounds):
        for name, (argv, cwd) in commands.items():
            times[name].append(timed(argv, cwd))
    # the corpus is large: fewer rounds per spec, the median over all specs is the figure
    for _ in range(max(1, args.rounds // 3)):
        for name in bad:
            extra = CORPUS / f"{name}.args"
            argv = [*dlrun(), "validate", f"{name}.yaml", *(extra.read_text().split() if extra.exists() else [])]
            rejections[name].append(timed(argv, CORPUS))
    baseline = statistics.median(times["python -c pass"])
    line("python -c pass", times["python -c pass"], None)
    for name, argv in (("dlrun --help", ["--help"]), ("dlrun validate", ["validate", args.spec])):
        line(name, times[name], baseline, f"  imports TensorFlow: {'yes' if imports_tensorflow(argv) else 'no'}")
    per_spec = [statistics.median(v) for v in rejections.values()]
    line(f"reject a bad spec ({len(bad)})", per_spec, baseline)
    slowest = max(rejections, key=lambda n: statistics.median(rejections[n]))
    print(f"{'':26} slowest: {slowest} {statistics.median(rejections[slowest]):.3f} s")
    if args.sigterm_rounds:
        with tempfile.TemporaryDirectory() as tmp:
            latencies = []
            for i in range(args.sigterm_rounds):
                folder = Path(tmp) / str(i)
                folder.mkdir()
                latencies.append(sigterm_latency(folder))
        line("SIGTERM to exit 143", latencies, None)


STANDINS = """class Plain:
    pass


def passthrough(*args, **kwargs):
    return args[0] if args else None
"""

CORE_ONLY = """import pickle, sys
import yaml, pydantic_core
validator = pydantic_core.SchemaValidator(pickle.loads(open(sys.argv[1], "rb").read()))
try:
    validator.validate_python(yaml.safe_load(open(sys.argv[2])))
except pydantic_core.ValidationError:
    pass
"""


def core_only_schema(folder: Path) -> Path:
    """dlrun's Config core schema for pydantic-core alone, pickled: its Python callables (validators,
    discriminators, default factories) made pass-throughs and its model classes one plain class, so loading it
    imports no dlrun module and no pydantic model machinery. A lower bound, not a validate: nothing of dlrun's own
    runs, and the tagged unions' callable discriminators then fail (the validation still walks the schema)."""
    import pickle

    sys.path.insert(0, str(folder))
    (folder / "standins.py").write_text(STANDINS)
    import standins

    from runner.spec.schema import Config

    Config.model_rebuild(force=True)

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "metadata"}  # metadata: JSON Schema only
        if isinstance(node, (list, tuple)):
            return type(node)(strip(v) for v in node)
        if isinstance(node, type) and node.__module__ != "builtins":
            return standins.Plain
        return standins.passthrough if callable(node) and not isinstance(node, type) else node

    path = folder / "core_schema.pickle"
    path.write_bytes(pickle.dumps(strip(Config.__pydantic_core_schema__)))
    return path


def validate_vs_import(rounds: int, spec: str) -> None:
    """`dlrun validate SPEC` over `python -c "import yaml, pydantic"`: the median of interleaved pairs (the order
    alternates), with bytecode caching on as users have it and off: dlrun's package compiled afresh at every start,
    the installed libraries from their bytecode, as in a fresh checkout under PYTHONDONTWRITEBYTECODE=1 (that
    variable alone still reads the bytecode an earlier run left, so the uncached half deletes runner's
    __pycache__ folders first; the next ordinary start writes them again). Also the floor
    of any pydantic validation: a script that defines one one-field model and validates one value, over the same
    import (`import pydantic` is lazy; the first model imports pydantic's model machinery and builds a validator),
    and the lower bound of a validate built on pydantic-core's schemas alone (core_only_schema)."""
    folder = Path(tempfile.mkdtemp())
    commands = {"import": [sys.executable, "-c", "import yaml, pydantic"],
                "validate": [sys.executable, "-m", "runner", "validate", spec],
                # dlrun turns pydantic's plugin lookup off too (runner/cli/main.py)
                "one model": [sys.executable, "-c", "import os, yaml\n"
                              "os.environ.setdefault('PYDANTIC_DISABLE_PLUGINS', '__all__')\n"
                              "from pydantic import BaseModel\nclass A(BaseModel):\n    x: int\nA(x=1)"],
                "core only": [sys.executable, "-c", CORE_ONLY, str(core_only_schema(folder)), spec]}
    for mode in ("cached", "uncached"):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = os.pathsep.join((str(ROOT), str(folder)))
        if mode == "uncached":
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            for cache in [*(ROOT / "runner").rglob("__pycache__"), *folder.rglob("__pycache__")]:
                shutil.rmtree(cache)
        else:
            for argv in commands.values():  # the first run writes the bytecode cache
                subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)
        times = {name: [] for name in commands}
        loads = [os.getloadavg()[0]]
        for i in range(rounds):
            for name in (commands if i % 2 == 0 else reversed(list(commands))):
                started = time.perf_counter()
                subprocess.run(commands[name], cwd=ROOT, env=env, check=True, capture_output=True)
                times[name].append(time.perf_counter() - started)
            loads.append(os.getloadavg()[0])
        ratios = [v / i for v, i in zip(times["validate"], times["import"])]
        floor = [v / i for v, i in zip(times["one model"], times["import"])]
        print(f"validate / import yaml, pydantic, bytecode {mode:8}: {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}..{max(ratios):.2f}); validate {statistics.median(times['validate']):.3f} s, "
              f"import {statistics.median(times['import']):.3f} s; {rounds} pairs, load {min(loads):.1f}..{max(loads):.1f}")
        core = [v / i for v, i in zip(times["core only"], times["import"])]
        print(f"{'  floor: one pydantic model / import':45}: {statistics.median(floor):.2f}x "
              f"({min(floor):.2f}..{max(floor):.2f}); one model {statistics.median(times['one model']):.3f} s")
        print(f"{'  dlrun schema in pydantic-core alone / import':45}: {statistics.median(core):.2f}x "
              f"({min(core):.2f}..{max(core):.2f}); {statistics.median(times['core only']):.3f} s")


if __name__ == "__main__":
    if "--ratio" in sys.argv:  # bench/startup.py --ratio [ROUNDS]
        sys.argv.remove("--ratio")
        validate_vs_import(int(sys.argv[1]) if len(sys.argv) > 1 else 15, "experiments/digits.yaml")
    else:
        main()
