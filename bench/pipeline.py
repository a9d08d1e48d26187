"""Input pipeline benchmark: does the cifar10 recipe's pipeline keep its model fed?

    .venv/bin/python bench/pipeline.py [--steps 10] [--epochs 3] [--rounds 3] [--spec experiments/cifar10.yaml]
                                       [--set 'data.batch_augment=[mixup]' ...]

The recipe's model, preprocessing, augmentation and batch size come from the spec, so the figures follow the
recipe as it changes. The data is CIFAR-shaped: scikit-learn's digits upsampled to 32x32x3 uint8 (values
0..255), tiled to 10,000 examples, fed exactly as a prepared tfds split is (unbatched uint8 -> the pipeline).
Three rates, in training examples per second, each measured after a warm-up epoch:

  pipeline alone   iterate dlrun's train_dataset (cache, per-epoch shuffle, batch, augment, prefetch)
  model only       model.fit on a handful of already-augmented batches held in memory (cached batches)
  end to end       model.fit on dlrun's train_dataset

stall fraction = 1 - end_to_end / model_only, the median over rounds of adjacent pairs (the machine is shared,
so its load drifts); headroom = pipeline_alone / model_only. The 1-minute load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N = 10_000


def cifar_shaped():
    """(x uint8 [N, 32, 32, 3], y int64 [N]): real digits, upsampled and coloured per class."""
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = tf.image.resize(bunch.images[..., None] * (255 / 16), (32, 32)).numpy()
    tint = np.stack([np.linspace(0.5, 1.0, 10), np.linspace(1.0, 0.5, 10), np.full(10, 0.8)], 1)[bunch.target]
    x = np.clip(x * tint[:, None, None, :], 0, 255).astype("uint8")
    reps = -(-N // len(x))
    return np.tile(x, (reps, 1, 1, 1))[:N], np.tile(bunch.target, reps)[:N].astype("int64")


class EpochTimer:
    """Wall time of each fit epoch."""

    def __init__(self):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.started = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                self.times.append(time.perf_counter() - cb.started)

        self.times: list[float] = []
        self.callback = Timer()


def fit_rate(model, ds, steps: int, batch: int, epochs: int) -> float:
    """Median examples/s of fit epochs 2..epochs (the first holds tracing and the shuffle buffer's fill)."""
    timer = EpochTimer()
    model.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[timer.callback])
    return steps * batch / statistics.median(timer.times[1:])


def pipeline_rate(ds, steps: int, batch: int) -> float:
    it = iter(ds)
    for _ in range(steps):  # warm-up: cache fill, tracing of the map functions
        next(it)
    started = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="experiments/cifar10.yaml")
    parser.add_argument("--steps", type=int, default=10, help="batches per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit; the first is not timed")
    parser.add_argument("--rounds", type=int, default=3, help="model-only / end-to-end pairs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the spec, e.g. --set 'data.batch_augment=[mixup]' (repeatable)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from runner.spec import load_config
    from runner.data.augment import augment_fn
    from runner.data.info import DataInfo
    from runner.data.pipeline import label_fn, train_dataset
    from runner.data.preprocess import build_preprocess
    from runner.models import build_model, outputs_logits
    from runner.training.compile_options import compile_model, label_mode, resolve_speed

    cfg, _ = load_config(str(ROOT / args.spec), args.overrides)
    keras.utils.set_random_seed(cfg.seed)
    x, y = cifar_shaped()
    info = DataInfo((32, 32, 3), "float32", "classification", 10, [str(i) for i in range(10)],
                    {"train": N}, (0.0, 255.0))
    batch = cfg.data.batch_size
    mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
    labels = label_fn(mode, info.num_classes)
    steps = args.steps
    speed = resolve_speed(cfg.train, steps, on_gpu=bool(tf.config.list_logical_devices("GPU")))
    model = build_model(cfg.model, info, build_preprocess(cfg.data.preprocess, info, x.astype("float32")), mode)
    compile_model(model, cfg.train, info, mode, outputs_logits(model), steps, speed)

    source = tf.data.Dataset.from_tensor_slices((x, y))
    pipeline = train_dataset(source, N, cfg.data, cfg.seed, 10_000, labels, augment_fn(cfg.data, info))
    cached = pipeline.take(8).cache().repeat()  # augmented batches in memory: the model's own pace

    load_before = os.getloadavg()[0]
    alone = pipeline_rate(pipeline, 50, batch)
    model_only, end_to_end = [], []
    for _ in range(args.rounds):  # adjacent pairs: other processes' load drifts slower than a round
        model_only.append(fit_rate(model, cached, steps, batch, args.epochs))
        end_to_end.append(fit_rate(model, pipeline, steps, batch, args.epochs))
    mo, e2e = statistics.median(model_only), statistics.median(end_to_end)
    paired = statistics.median(e / m for e, m in zip(end_to_end, model_only))
    result = {
        "spec": args.spec, "model": cfg.model.arch, "augment": [next(iter(type(s).model_fields)) for s in cfg.data.augment],
        "batch_augment": [next(iter(type(s).model_fields)) for s in cfg.data.batch_augment], "batch_size": batch,
        "steps": steps, "rounds": args.rounds, "cpus": os.cpu_count(),
        "pipeline_alone_examples_per_s": round(alone, 1),
        "model_only_examples_per_s": round(mo, 1), "end_to_end_examples_per_s": round(e2e, 1),
        "model_only_rounds": [round(r, 1) for r in model_only], "end_to_end_rounds": [round(r, 1) for r in end_to_end],
        "stall_fraction": round(1 - paired, 4), "headroom": round(alone / mo, 2),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
