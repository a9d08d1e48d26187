"""Overhead benchmark: dlrun against the Keras script a user would write by hand, on the digits CNN.

    .venv/bin/python bench/overhead.py [--rounds 5] [--epochs 8]

Three programs train the model of experiments/digits.yaml (same layers, preprocessing, augmentation, optimizer,
schedule, batch size, splits and epochs), each in its own process, interleaved round by round (the machine is
shared, so neighbours' load hits all three alike):

  dlrun    `dlrun train experiments/digits.yaml`, default callbacks and artifacts on (checkpoints, backup,
           TensorBoard, history.csv, status.json)
  naive    from_tensor_slices -> shuffle -> batch -> augment -> prefetch, compile, fit; no callbacks
  tuned    the same script given dlrun's settings: cache and steps_per_execution (from dlrun's env.json)

Steady-state examples/s is what metrics.json defines: training examples / wall time of epochs 2..N, validation
included. Fixed cost = process wall time - N x the steady epoch time (imports, data, tracing, evaluation,
artifacts). Reports medians with min..max over the rounds, and dlrun's ratio to each script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "digits.yaml"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def handwritten(epochs: int, tuned: bool, steps_per_execution: int) -> dict:
    """The hand-written script; returns its epoch times."""
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(42)
    digits = load_digits()
    x, y = digits.images[..., None].astype("float32"), digits.target
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, train_size=0.7, stratify=y, random_state=42)
    x_val, _, y_val, _ = train_test_split(x_rest, y_rest, train_size=1 / 3, stratify=y_rest, random_state=42)
    batch = 64
    augment = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")

    train = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch)
    if tuned:
        train, val = train.cache(), val.cache()
    train = (train.shuffle(len(x_train)).batch(batch)
             .map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    val = val.prefetch(tf.data.AUTOTUNE)

    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.Rescaling(1 / 16),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.3), L.Dense(10)])
    steps = -(-len(x_train) // batch)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps * (epochs - 2), warmup_target=0.003,
                                                      warmup_steps=steps * 2)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution if tuned else 1)

    times = []

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=[EpochTimes()], verbose=0)
    return {"epoch_seconds": times, "examples": len(x_train), "params": model.count_params(),
            "val_accuracy": history.history["val_accuracy"][-1]}


def run_handwritten(kind: str, epochs: int, spe: int) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--epochs", str(epochs), "--spe", str(spe)],
                          capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return summarize(out["epoch_seconds"], out["examples"], time.perf_counter() - started, out)


def run_dlrun(epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runner", "train", str(SPEC), "--set", f"train.epochs={epochs}",
                        "--run-dir", str(run)], cwd=ROOT, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        metrics = json.loads((run / "metrics.json").read_text())
        env = json.loads((run / "env.json").read_text())
        rows = (run / "history.csv").read_text().splitlines()
        column = rows[0].split(",").index("epoch_seconds")
        seconds = [float(r.split(",")[column]) for r in rows[1:]]
        examples = env["data"]["cardinality"]["train"]
    out = summarize(seconds, examples, wall, {"spe": env["speed"]["steps_per_execution"],
                                              "val_accuracy": metrics["validation"]["accuracy"]})
    out["examples_per_sec"] = metrics["throughput"]["examples_per_sec"]  # the figure dlrun reports itself
    return out


def summarize(epoch_seconds, examples: int, wall: float, extra: dict) -> dict:
    steady = epoch_seconds[1:]
    per_epoch = sum(steady) / len(steady)
    return {**extra, "examples_per_sec": examples / per_epoch,
            "fixed_s": wall - len(epoch_seconds) * per_epoch, "wall_s": wall}


def spread(values) -> str:
    return f"{statistics.median(values):8.1f}  ({min(values):.1f}..{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--child", choices=("naive", "tuned"))
    parser.add_argument("--spe", type=int, default=32)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(handwritten(args.epochs, args.child == "tuned", args.spe)))
        return

    results = {"dlrun": [], "naive": [], "tuned": []}
    for i in range(args.rounds):
        results["dlrun"].append(run_dlrun(args.epochs))
        spe = results["dlrun"][-1]["spe"]
        # alternate the order of the two scripts so neither always follows dlrun
        for kind in (("naive", "tuned") if i % 2 == 0 else ("tuned", "naive")):
            results[kind].append(run_handwritten(kind, args.epochs, spe))
        print(f"round {i + 1}: " + "  ".join(f"{k} {v[-1]['examples_per_sec']:.0f}/s" for k, v in results.items()),
              file=sys.stderr, flush=True)

    print(f"digits CNN, {args.epochs} epochs, {args.rounds} rounds; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':8}{'examples/s (median, min..max)':>34}{'fixed cost s':>24}")
    for kind, rows in results.items():
        print(f"{kind:8}{spread([r['examples_per_sec'] for r in rows]):>34}{spread([r['fixed_s'] for r in rows]):>24}")
    for base in ("naive", "tuned"):
        ratios = [d["examples_per_sec"] / b["examples_per_sec"] for d, b in zip(results["dlrun"], results[base])]
        print(f"dlrun / {base}: {statistics.median(ratios):.3f} (per round {min(ratios):.3f}..{max(ratios):.3f})")
    print(json.dumps({k: [round(r["examples_per_sec"], 1) for r in v] for k, v in results.items()}))


if __name__ == "__main__":
    main()
