"""Scaling benchmark: steady-state examples/s of the digits CNN with 1 and 2 replicas.

    .venv/bin/python bench/scaling.py [--rounds 3] [--epochs 6] [--spec experiments/digits.yaml] [--gpus]

Replicas are CPU logical devices (`distribute.cpu_replicas`) by default, or GPUs with --gpus. Three
configurations run as separate `dlrun train` processes, interleaved round by round: the default strategy on one
device, and `mirrored` over 1 and over 2 replicas. Reports metrics.json's examples/s (epochs 2..N, callbacks
and artifacts included): median and min..max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def configs(gpus: bool) -> dict:
    if gpus:
        replicas = lambda n: [f"distribute.devices=[{', '.join(f'/gpu:{i}' for i in range(n))}]"]  # noqa: E731
    else:
        replicas = lambda n: [f"distribute.cpu_replicas={n}"]  # noqa: E731
    return {"default, 1 device": ["distribute.strategy=default"],
            "mirrored, 1 replica": ["distribute.strategy=mirrored", *replicas(1)],
            "mirrored, 2 replicas": ["distribute.strategy=mirrored", *replicas(2)]}


def run(spec: str, epochs: int, sets: list[str]) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "runner", "train", spec, "--set", f"train.epochs={epochs}",
                "--run-dir", f"{tmp}/run"]
        for s in sets:
            argv += ["--set", s]
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        metrics = json.loads(Path(f"{tmp}/run/metrics.json").read_text())
        env = json.loads(Path(f"{tmp}/run/env.json").read_text())
    return metrics["throughput"]["examples_per_sec"], env["speed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--spec", default="experiments/digits.yaml")
    parser.add_argument("--gpus", action="store_true", help="replicas are GPUs instead of CPU logical devices")
    args = parser.parse_args()
    cases = configs(args.gpus)
    rates, speeds = {name: [] for name in cases}, {}
    for i in range(args.rounds):
        for name, sets in cases.items():
            rate, speeds[name] = run(args.spec, args.epochs, sets)
            rates[name].append(rate)
            print(f"round {i + 1}: {name}: {rate:.0f} examples/s", file=sys.stderr, flush=True)
    base = statistics.median(rates["default, 1 device"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:22} {median:8.0f} examples/s ({min(values):.0f}..{max(values):.0f})  x{median / base:.2f}  "
              f"steps_per_execution {speeds[name]['steps_per_execution']}")


if __name__ == "__main__":
    main()
