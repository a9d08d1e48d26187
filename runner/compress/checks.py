"""compress rules for `dlrun validate`: the schedule inside training (no TensorFlow), and, with the built model,
layer patterns that match nothing and 2:4 on kernels it cannot divide."""

from __future__ import annotations

import fnmatch

from runner.compress import schedule


def spec_problems(cfg):
    """(key path, rule) for what the spec alone tells."""
    prune = cfg.compress.prune if cfg.compress is not None else None
    if prune is None:
        return
    epochs = cfg.train.epochs
    bounds = {}
    for key in ("start_epoch", "end_epoch"):
        value = getattr(prune, key)
        if value >= 1 and value != int(value):
            yield ("compress", "prune", key), (f"below 1 a fraction of training, from 1 on a whole epoch; "
                                               f"received {value:g} (try {int(value)} or {value / epochs:.2g})")
            return
        bounds[key] = schedule.epochs_of(value, epochs)
    if bounds["end_epoch"] > epochs:
        yield ("compress", "prune", "end_epoch"), (f"the ramp must end inside training ({epochs} epochs); received "
                                                   f"{prune.end_epoch:g}")
    elif bounds["end_epoch"] <= bounds["start_epoch"]:
        yield ("compress", "prune", "end_epoch"), (f"must come after start_epoch ({prune.start_epoch:g}, epoch "
                                                   f"{bounds['start_epoch']:g}); received {prune.end_epoch:g} "
                                                   f"(epoch {bounds['end_epoch']:g})")
    if prune.structured and "sparsity" in prune.model_fields_set and prune.sparsity != 0.5:
        yield ("compress", "prune", "sparsity"), (f"structured '2:4' prunes exactly half of each kernel; received "
                                                  f"sparsity {prune.sparsity:g}; drop one of the two")
    for pattern, override in prune.layers.items():
        if override.structured and override.sparsity is not None and override.sparsity != 0.5:
            yield ("compress", "prune", "layers", pattern, "sparsity"), (
                f"structured '2:4' prunes exactly half of the kernel; received sparsity {override.sparsity:g}")


def model_problems(prune, layers: list[tuple[str, tuple]]):
    """(key path, rule) for what needs the model's Conv/Dense kernels: [(layer name, kernel shape)]."""
    from runner.compress.plan import GROUP, input_axis, plan, structured_fits

    names = [name for name, _ in layers]
    for pattern in prune.layers:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            yield ("compress", "prune", "layers", pattern), (
                f"matches none of the Conv/Dense layers ({', '.join(names)}); received {pattern!r}")
    for p in plan(prune, layers):
        if p.structured and not structured_fits(p.shape):
            # the override that decided (the first matching pattern), else the block's own `structured`
            pattern = next((pt for pt in prune.layers if fnmatch.fnmatchcase(p.name, pt)), None)
            where = ("compress", "prune", "structured")
            if pattern is not None and "structured" in prune.layers[pattern].model_fields_set:
                where = ("compress", "prune", "layers", pattern, "structured")
            channels = p.shape[input_axis(p.shape)]
            yield where, (f"2:4 needs a multiple of {GROUP} input channels; layer {p.name!r} (kernel {list(p.shape)}) "
                          f"has {channels}; exclude it with compress.prune.layers: {{{p.name}: {{structured: null}}}}")
