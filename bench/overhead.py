"""Time to result: a whole `dlrun train` process against the Keras scripts a user would write by hand.

    .venv/bin/python bench/overhead.py [--rounds 5] [--epochs 30]

Three programs train the digits CNN of experiments/digits.yaml (same layers, preprocessing, augmentation,
optimizer, schedule, batch size, epochs, and the very same train/validation/test examples), each in a process
of its own:

  dlrun    `python -m runner train experiments/digits.yaml`, every default artifact on (checkpoints, backups,
           TensorBoard with sample grid, graph and confusion matrix, history.csv, plots, model.keras, HParams),
           no environment variable set
  naive    from_tensor_slices -> shuffle -> batch -> augment -> prefetch, compile, fit, evaluate on test
  tuned    the naive script with every speed trick dlrun uses: cache, steps_per_execution (dlrun's value from
           env.json), one stream over all epochs (batches repeated, steps_per_epoch given, so Keras keeps
           one iterator instead of rebuilding it at every epoch), and tf.data without its autotuning thread

Each round runs all three; the order alternates (dlrun, naive, tuned / tuned, naive, dlrun), so a neighbour's
load hits each program alike. Per program and round:

  wall_s        the whole process, spawn to exit, as a user waits for it
  examples/s    steady state: training examples x (N - 1) / time from the end of epoch 1 to the end of epoch N
                (validation, callbacks, artifact writes and the gaps between epochs included)
  test acc      accuracy on the test split (dlrun: metrics.json)

The ratios are medians of the per-round ratios (a round's programs ran side by side).
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
SEED = 42


def splits_file(folder: Path) -> Path:
    """dlrun's train/validation/test indices of the digits pool, for the scripts to use the same examples."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from sklearn.datasets import load_digits

    from runner.data.splits import pool_order

    y = load_digits().target
    order = pool_order(y, SEED, stratified=True)
    n = len(order)
    cut = [0, round(n * 0.7), round(n * 0.8), n]  # the spec's [:70%], [70%:80%], [80%:]
    path = folder / "splits.npz"
    np.savez(path, **{name: order[cut[i]:cut[i + 1]] for i, name in enumerate(("train", "validation", "test"))})
    return path


def handwritten(epochs: int, tuned: bool, steps_per_execution: int, splits: str) -> dict:
    """The hand-written script; returns its epoch-end times and test accuracy."""
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(SEED)
    digits = load_digits()
    x, y = digits.images[..., None].astype("float32"), digits.target
    index = np.load(splits)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = ((x[index[s]], y[index[s]])
                                                            for s in ("train", "validation", "test"))
    batch = 64
    steps = -(-len(x_train) // batch)
    augment = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")

    train = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch)
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(batch)
    if tuned:
        train, val, test = train.cache(), val.cache(), test.cache()
    train = train.shuffle(len(x_train)).batch(batch)
    if tuned:
        train = train.repeat(epochs)  # one stream over all epochs (reshuffled at each repetition)
    train = (train.map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    val, test = val.prefetch(tf.data.AUTOTUNE), test.prefetch(tf.data.AUTOTUNE)
    if tuned:  # no autotuning thread, whose join as fit frees the stream can stall for seconds (dlrun's pipeline.py)
        static = tf.data.Options()
        static.autotune.enabled = False
        train, val, test = (ds.with_options(static) for ds in (train, val, test))

    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.Rescaling(1 / 16),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.3), L.Dense(10)])
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps * (epochs - 2), warmup_target=0.003,
                                                      warmup_steps=steps * 2)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution if tuned else 1)

    ends = []

    class EpochEnds(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    model.fit(train, validation_data=val, epochs=epochs, callbacks=[EpochEnds()], verbose=0, shuffle=False,
              steps_per_epoch=steps if tuned else None)
    test_accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    return {"examples_per_sec": len(x_train) * (len(ends) - 1) / (ends[-1] - ends[0]),
            "test_accuracy": test_accuracy}


def run_handwritten(kind: str, epochs: int, spe: int, splits: Path) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--epochs", str(epochs), "--spe", str(spe),
                           "--splits", str(splits)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": wall}


def run_dlrun(epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "runner", "train", str(SPEC), "--set", f"train.epochs={epochs}",
                               "--run-dir", str(run)], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(f"dlrun failed ({proc.returncode}):\n{proc.stderr}")
        metrics = json.loads((run / "metrics.json").read_text())
        env = json.loads((run / "env.json").read_text())
    return {"examples_per_sec": metrics["throughput"]["examples_per_sec"],
            "test_accuracy": metrics["test"]["accuracy"], "wall_s": wall,
            "spe": env["speed"]["steps_per_execution"], "dlrun_wall_s": metrics.get("wall_s"),
            "train_s": metrics.get("train_s"),
            "stderr_lines": sum(not line.startswith("epoch ") for line in proc.stderr.splitlines())}


def spread(values, digits: int = 1) -> str:
    return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}..{max(values):,.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--child", choices=("naive", "tuned"))
    parser.add_argument("--spe", type=int, default=20)
    parser.add_argument("--splits")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(handwritten(args.epochs, args.child == "tuned", args.spe, args.splits)))
        return

    loads = [os.getloadavg()[0]]
    results = {"dlrun": [], "naive": [], "tuned": []}
    spe = args.spe
    with tempfile.TemporaryDirectory() as tmp:
        splits = splits_file(Path(tmp))
        for i in range(args.rounds):
            order = ("dlrun", "naive", "tuned") if i % 2 == 0 else ("tuned", "naive", "dlrun")
            for kind in order:
                if kind == "dlrun":
                    results[kind].append(run_dlrun(args.epochs))
                    spe = results[kind][-1]["spe"]
                else:
                    results[kind].append(run_handwritten(kind, args.epochs, spe, splits))
            loads.append(os.getloadavg()[0])
            print(f"round {i + 1} ({', '.join(order)}): " + "  ".join(
                f"{k} {v[-1]['wall_s']:.1f}s {v[-1]['examples_per_sec']:,.0f}/s" for k, v in results.items())
                  + f"  load {loads[-1]:.1f}", file=sys.stderr, flush=True)

    print(f"digits CNN, {args.epochs} epochs, {args.rounds} rounds, dlrun steps_per_execution {spe}; "
          f"1-minute load average {min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} cores\n")
    print("| program | whole process, s | steady examples/s | test accuracy |")
    print("|---|---:|---:|---:|")
    for kind, rows in results.items():
        print(f"| {kind} | {spread([r['wall_s'] for r in rows])} | {spread([r['examples_per_sec'] for r in rows], 0)}"
              f" | {spread([100 * r['test_accuracy'] for r in rows], 2)} % |")
    print()
    print("| dlrun vs | whole-process wall ratio | steady examples/s ratio | test accuracy, points |")
    print("|---|---:|---:|---:|")
    for base in ("naive", "tuned"):
        pairs = list(zip(results["dlrun"], results[base]))
        wall = [d["wall_s"] / b["wall_s"] for d, b in pairs]
        speed = [d["examples_per_sec"] / b["examples_per_sec"] for d, b in pairs]
        points = [100 * (d["test_accuracy"] - b["test_accuracy"]) for d, b in pairs]
        print(f"| {base} | **{statistics.median(wall):.3f}** ({min(wall):.2f}..{max(wall):.2f}) "
              f"| **{statistics.median(speed):.3f}** ({min(speed):.2f}..{max(speed):.2f}) "
              f"| {statistics.median(points):+.2f} ({min(points):+.2f}..{max(points):+.2f}) |")
    d = results["dlrun"]
    print(f"\ndlrun's own figures: metrics.json wall_s {spread([r['dlrun_wall_s'] for r in d])} (process start "
          f"to summary), train_s {spread([r['train_s'] for r in d])}; stderr lines besides the epoch lines: "
          f"{[r['stderr_lines'] for r in d]}")
    print(json.dumps({k: [{m: round(v, 4) if isinstance(v, float) else v for m, v in r.items()} for r in rows]
                      for k, rows in results.items()}))


if __name__ == "__main__":
    main()
