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


if __name__ == "__main__":
    main()
