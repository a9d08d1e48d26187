"""What the lifecycle calls: callbacks to add, the epoch from which a best may be picked, the fold before the
final save, and the `compress` entry of metrics.json."""

from __future__ import annotations

from runner.compress import schedule


class Compression:
    """The `compress:` block of one run, from prepare to finish."""

    def __init__(self, cfg_compress, epochs: int, steps_per_epoch: int):
        self.cfg, self.epochs, self.steps = cfg_compress, epochs, steps_per_epoch
        self.pruning = None
        prune = cfg_compress.prune if cfg_compress is not None else None
        # checkpoint selection, early stopping and restore_best_weights only see epochs that end fully pruned
        self.monitor_from_epoch = schedule.monitor_from_epoch(prune, epochs, steps_per_epoch) if prune else 0

    def callbacks(self, model, ctx, tensorboard: bool) -> list:
        """The pruning callback (stateful: its masks go into every backup); call after compile."""
        if self.cfg is None or self.cfg.prune is None:
            return []
        from runner.compress.prune import make_pruning_callback
        from runner.kernel import run_dir as rd

        logs = ctx.run_dir.file(rd.TENSORBOARD) / rd.TENSORBOARD_COMPRESS if tensorboard and ctx.is_chief else None
        self.pruning = make_pruning_callback(self.cfg.prune, model, self.epochs, self.steps, logs)
        return [self.pruning]

    def fold(self, model) -> None:
        """Masks into the weights, constraints off: the model saved next holds plain layers with real zeros."""
        if self.pruning is not None:
            self.pruning.fold()

    def finish(self, model, run_dir, test_ds, train_ds) -> dict:
        """metrics.json's `compress`: sparsity per layer and overall, and the quantized model's test metrics."""
        if self.cfg is None:
            return {}
        from runner.compress.prune import sparsity_of
        from runner.kernel import run_dir as rd

        out = {}
        if self.cfg.prune is not None:
            out["sparsity"] = sparsity_of(model)
        if self.cfg.quantize is not None:
            from runner.compress.quantize import quantize_saved

            out["quantize"] = quantize_saved(self.cfg.quantize, run_dir.file(rd.MODEL), run_dir.file(rd.MODEL_INT8),
                                             test_ds, train_ds, self.steps)
        return {"compress": out}
