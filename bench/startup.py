"""Start-up benchmark: wall time of `dlrun --help` and `dlrun validate` (neither may import TensorFlow).

    .venv/bin/python bench/startup.py [--rounds 10] [--spec experiments/digits.yaml]

Each command runs as a fresh process through the installed `dlrun` entry point, interleaved round by round;
reports the median and min..max in seconds, and whether TensorFlow was imported (python -X importtime).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DLRUN = Path(sys.executable).with_name("dlrun")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--spec", default="experiments/digits.yaml")
    args = parser.parse_args()
    commands = {"dlrun --help": [str(DLRUN), "--help"], "dlrun validate": [str(DLRUN), "validate", args.spec]}
    times = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    for name, argv in commands.items():
        trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "runner", *argv[1:]], cwd=ROOT,
                               capture_output=True, text=True).stderr
        imported_tf = any(line.rstrip().endswith("| tensorflow") for line in trace.splitlines())
        values = times[name]
        print(f"{name:16} {statistics.median(values):.3f} s  ({min(values):.3f}..{max(values):.3f}, "
              f"{args.rounds} runs)  imports TensorFlow: {'yes' if imported_tf else 'no'}")


def validate_vs_import(rounds: int, spec: str) -> None:
    """`dlrun validate SPEC` over `python -c "import yaml, pydantic"`: the median of interleaved pairs (the order
    alternates), with bytecode caching on as users have it and off (PYTHONDONTWRITEBYTECODE=1)."""
    import os

    commands = {"import": [sys.executable, "-c", "import yaml, pydantic"],
                "validate": [sys.executable, "-m", "runner", "validate", spec]}
    for mode in ("cached", "uncached"):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = str(ROOT)
        if mode == "uncached":
            env["PYTHONDONTWRITEBYTECODE"] = "1"
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
        print(f"validate / import yaml, pydantic, bytecode {mode:8}: {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}..{max(ratios):.2f}); validate {statistics.median(times['validate']):.3f} s, "
              f"import {statistics.median(times['import']):.3f} s; {rounds} pairs, load {min(loads):.1f}..{max(loads):.1f}")


if __name__ == "__main__":
    if "--ratio" in sys.argv:  # bench/startup.py --ratio [ROUNDS]
        sys.argv.remove("--ratio")
        validate_vs_import(int(sys.argv[1]) if len(sys.argv) > 1 else 15, "experiments/digits.yaml")
    else:
        main()
