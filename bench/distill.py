"""Distillation benchmark: the digits_distill student with and without its teacher, test accuracy over seeds.

    .venv/bin/python bench/distill.py [--seeds 1 2 3]

For each seed the teacher (experiments/digits_distill_teacher.yaml, a CNN) trains on 45% of the digits labels;
then the recipe's student (a 32-unit MLP on 5% of the labels, a subset of the teacher's) trains alone
(distill: null) and distilled from that teacher run. Both students share the seed, so the same init and order.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def train(spec: str, out: str, seed: int, *sets: str) -> tuple[dict, str]:
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    overrides = [f"seed={seed}", f"output.dir={out}", "callbacks.tensorboard=null", "callbacks.checkpoint=null",
                 *sets]
    cfg, _ = load_config(str(ROOT / spec), overrides)
    result = run_experiment(cfg, quiet=True)
    return result.metrics, str(result.run_dir.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for seed in args.seeds:
            started = time.perf_counter()
            teacher, teacher_dir = train("experiments/digits_distill_teacher.yaml", out, seed)
            alone, _ = train("experiments/digits_distill.yaml", out, seed, "distill=null")
            distilled, _ = train("experiments/digits_distill.yaml", out, seed, f"distill.teacher={teacher_dir}")
            rows.append({"seed": seed, "teacher": teacher["test"]["accuracy"], "alone": alone["test"]["accuracy"],
                         "distilled": distilled["test"]["accuracy"], "seconds": time.perf_counter() - started})
            print(json.dumps(rows[-1]), flush=True)
    summary = {k: statistics.mean(r[k] for r in rows) for k in ("teacher", "alone", "distilled")}
    summary["gain"] = summary["distilled"] - summary["alone"]
    summary["distilled_wins"] = sum(r["distilled"] > r["alone"] for r in rows)
    print(json.dumps({"mean": summary, "seeds": args.seeds}))


if __name__ == "__main__":
    main()
