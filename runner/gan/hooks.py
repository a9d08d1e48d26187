"""What the lifecycle calls for `task: gan`: build + compile (in strategy scope), the callbacks, and the finish
(model.keras = the averaged generator, FID, metrics.json)."""

from __future__ import annotations


def build(cfg, info, steps_per_epoch: int, speed):
    """The GAN model compiled with its two optimizers; call inside strategy.scope()."""
    from runner.distribute import multi_worker_fix as multi_worker
    from runner.gan.model import build_gan
    from runner.training.compile_options import fix_gradient_reduction, jit_compile_for
    from runner.training.optimizers import build_optimizer
    from runner.training.schedules import build_schedule

    model = build_gan(cfg, info)
    d = cfg.train.discriminator
    g_opt = build_optimizer(cfg.train.optimizer, build_schedule(cfg.train.lr, steps_per_epoch, cfg.train.epochs))
    d = d or cfg.train  # without train.discriminator both networks train alike
    d_opt = build_optimizer(d.optimizer, build_schedule(d.lr, steps_per_epoch, cfg.train.epochs))
    model.compile(g_opt, d_opt, jit_compile=jit_compile_for(model, speed),
                  steps_per_execution=speed.steps_per_execution)
    for optimizer in (g_opt, d_opt):
        fix_gradient_reduction(optimizer, model.distribute_strategy.num_replicas_in_sync)
    multi_worker.install(model)
    return model


def callbacks_config(cfg):
    """The spec's callbacks less what reads a classifier: the confusion matrix and a best-by-loss checkpoint."""
    update = {}
    if cfg.callbacks.tensorboard is not None:
        update["tensorboard"] = cfg.callbacks.tensorboard.model_copy(update={"confusion_matrix": None})
    if cfg.callbacks.checkpoint is not None:  # an adversarial loss ranks no generator: keep the last only
        update["checkpoint"] = cfg.callbacks.checkpoint.model_copy(update={"save_best": False})
    return cfg.callbacks.model_copy(update=update)


def callbacks(cfg, ctx, model) -> list:
    """The epoch sample grid (samples.png and TensorBoard), on the chief only."""
    from runner.gan.samples import sample_callback
    from runner.kernel import run_dir as rd

    if not ctx.is_chief:
        return []
    grid = cfg.gan.grid if cfg.gan else 8
    tensorboard = ctx.run_dir.file(rd.TENSORBOARD) / "train" if cfg.callbacks.tensorboard is not None else None
    return [sample_callback(model, ctx.run_dir, grid, cfg.seed, tensorboard)]


def _real_images(dataset, n: int):
    import numpy as np

    return np.concatenate([x for x, _ in dataset.as_numpy_iterator()])[:n]


def _initial_generator(cfg, info, value_range):
    """The untrained generator of this spec and seed, its output on the raw range (gan.fid_initial)."""
    import keras

    from runner.gan.model import build_generator

    keras.utils.set_random_seed(cfg.seed)
    generator = build_generator(cfg.model, tuple(info.input_shape), info.num_classes)
    low, high = value_range
    image = keras.layers.Rescaling((high - low) / 2.0, offset=(high + low) / 2.0)(generator.outputs[0])
    return keras.Model(generator.input, image)


def evaluate(cfg, model, info, real, features_file: str) -> dict:
    """gan.fid, gan.fid_initial and class_agreement / class_fractions on the same fixed noise."""
    from runner.gan.fid import Features, quality
    from runner.gan.samples import generate, grid_labels, noise

    n = cfg.gan.fid.samples
    features = Features(features_file)
    z = noise(n, cfg.model.latent_dim, cfg.seed + 1)  # not the grid's noise: FID samples are a fresh draw
    labels = grid_labels(n, 1, info.num_classes) if cfg.model.conditional else None
    out = quality(features, real, generate(model.averaged_generator(), z, labels), labels, info.num_classes)
    initial = quality(features, real, generate(_initial_generator(cfg, info, model.value_range), z, labels),
                      labels, info.num_classes)
    out["fid_initial"] = initial["fid"]
    out["features"] = features_file
    out["samples"] = n
    return out


def finish(cfg, run_dir, model, info, train_eval_ds, progress, started: float, features_file: str | None) -> dict:
    """model.keras (the averaged generator), the FID figures and metrics.json; returns the metrics."""
    import time

    from runner.artifacts.plots import write_plots
    from runner.kernel import run_dir as rd

    rows = progress.rows
    last = rows[-1] if rows else {}
    metrics = {"train": {k: float(v) for k, v in last.items()
                         if k not in ("epoch", "epoch_seconds", "learning_rate") and not k.startswith("val_")},
               "epochs_run": len(rows), "best": None,
               "throughput": {"examples_per_sec": progress.examples_per_sec()}}
    if any(k.startswith("val_") for k in last):
        metrics["validation"] = {k[4:]: float(v) for k, v in last.items() if k.startswith("val_")}
    rd.atomic_save(run_dir.file(rd.MODEL), model.save)
    if features_file is not None:
        real = _real_images(train_eval_ds, cfg.gan.fid.samples)
        metrics["gan"] = evaluate(cfg, model, info, real, features_file)
    metrics["wall_s"] = time.perf_counter() - started
    run_dir.write_json(rd.METRICS, metrics)
    write_plots(run_dir, model, info, True, {})
    return metrics
