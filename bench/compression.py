"""Compression benchmark: digits dense, pruned and int8, each served by onnxruntime and LiteRT.

    .venv/bin/python bench/compression.py [--out runs/bench-compression] [--epochs 40]

Trains experiments/digits.yaml twice with the same seed (dense with Keras int8 quantization, and pruned to
sparsity 0.8), exports both to ONNX and LiteRT and the dense one to their int8 forms, then prints the
docs/performance.md table from the runs' metrics.json and export/export.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dlrun(*args) -> None:
    subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=ROOT, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-compression")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    common = ["--set", f"train.epochs={args.epochs}", "--set", f"output.dir={out}", "--set", "export=[onnx, tflite]"]
    dense, pruned = out / "dense", out / "pruned"
    if not (dense / "metrics.json").exists():
        dlrun("train", "experiments/digits.yaml", *common, "--set", "compress.quantize.mode=int8", "--run-dir", dense)
    if not (pruned / "metrics.json").exists():
        dlrun("train", "experiments/digits.yaml", *common, "--set", "compress.prune.sparsity=0.8", "--run-dir", pruned)
    for fmt in ("onnx", "tflite"):
        dlrun("export", dense, "--format", fmt, "--quantize", "int8")
    print(table(dense, pruned))


def table(dense: Path, pruned: Path) -> str:
    metrics = {k: json.loads((p / "metrics.json").read_text()) for k, p in (("dense", dense), ("pruned", pruned))}
    exports = {k: json.loads((p / "export" / "export.json").read_text()) for k, p in (("dense", dense),
                                                                                      ("pruned", pruned))}
    rows = [("dense", "dense", "model.onnx", "model.tflite"), ("pruned 0.8", "pruned", "model.onnx", "model.tflite"),
            ("int8", "dense", "model_int8.onnx", "model_int8.tflite")]
    lines = ["| model | Keras test acc. | sparsity | runtime | file | size | gzipped | runtime acc. | latency (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, run, onnx, litert in rows:
        m = metrics[run]
        keras_acc = (m["compress"]["quantize"]["test"]["accuracy"] if label == "int8" else m["test"]["accuracy"])
        sparsity = m.get("compress", {}).get("sparsity", {}).get("overall", 0.0)
        for runtime, name in (("onnxruntime", onnx), ("LiteRT", litert)):
            e = exports[run][name]
            lines.append(f"| {label} | {keras_acc:.4f} | {sparsity:.2f} | {runtime} | {name} | "
                         f"{e['size_bytes'] / 1024:.0f} KiB | {e['gzip_bytes'] / 1024:.0f} KiB | {e['accuracy']:.4f} | "
                         f"{e['latency_ms']['median']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
