"""`dlrun eval`: a run's model on one of its splits: metrics, per-class report and confusion matrix in RUN_DIR/eval/."""

from __future__ import annotations

import json

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError
from runner.artifacts.export_formats import predicted_classes
from runner.tools.open_run import Run

def split_arrays(data, split: str, batch_size: int):
    """(x, y) numpy arrays of a split, in the split's order."""
    import numpy as np

    xs, ys = [], []
    for x, y in data.splits[split].batch(batch_size).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def rebuild_data(run: Run, split: str):
    """The run's data rebuilt from config.yaml: the same seed gives the same split."""
    from runner.data.build import build_data

    data = build_data(run.cfg.data, run.cfg.seed)
    if not data.has(split):
        present = [s for s in ("train", "validation", "test") if data.has(s)]
        raise ConfigError(f"--split {split}: this run has no {split} split (data.splits.{split} is null in "
                          f"{run.path / rd.CONFIG}); choose one of: {', '.join(present)}")
    return data


def evaluate_run(run: Run, split: str = "test", checkpoint: str = "final", unsafe: bool = False) -> dict:
    """Evaluate and write RUN_DIR/eval/<split>-<checkpoint>/; returns what metrics.json there holds."""
    from runner.data.pipeline import eval_dataset, label_fn
    from runner.models import outputs_logits
    from runner.training.losses import build_loss, label_mode
    from runner.tasks.registry import default_metrics
    from runner.training.metrics import build_metric
    from runner.tasks import task

    cfg = run.cfg
    if cfg.task == "gan":  # task gan: no labels to score; quality is gan.fid in metrics.json
        raise ConfigError(f"{run.path} is a gan run: its quality is gan.fid in metrics.json (gan.fid in the "
                          "spec); `dlrun predict RUN_DIR --samples N` draws new samples")
    model = run.load_model(checkpoint, unsafe)
    data = rebuild_data(run, split)
    info = data.info
    mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
    from_logits = outputs_logits(model)
    names = cfg.train.metrics or default_metrics(info.task)
    # the spec's own loss and metrics, as training compiled them, so the numbers match metrics.json
    model.compile(loss=build_loss(cfg.train.loss, info.task, mode, from_logits),
                  metrics=[build_metric(n, mode, from_logits, info.num_classes) for n in names])
    ds = eval_dataset(data.splits[split], cfg.data, label_fn(mode, info.num_classes))
    metrics = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
    result = {"split": split, "checkpoint": checkpoint, "model": str(run.model_file(checkpoint).relative_to(run.path)),
              "examples": info.cardinality[split], "metrics": metrics,
              "deployment": _deployment(model, run.model_file(checkpoint))}

    folder = run.path / rd.EVAL / f"{split}-{checkpoint}"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = split_arrays(data, split, cfg.data.batch_size)
    result.update(task(info.task).eval_report(model, x, y, mode, from_logits, info, folder,
                                              f"{split} split, {result['model']}"))
    if info.task == "classification" and checkpoint == "final":  # the exports of this model, each by its runtime
        result["deployment"]["exports"] = _exports_on_split(run, x, y, mode, from_logits)
    saved = {k: v for k, v in result.items() if k != "report_text"}  # report.txt holds the text
    rd.atomic_write(folder / rd.METRICS, lambda f: json.dump(saved, f, indent=2))
    return {**result, "folder": str(folder)}


def _deployment(model, model_file) -> dict:
    """The evaluated file's size, gzipped size, and the fraction of zeros in its Conv/Dense kernels."""
    from runner.artifacts.deployment import sizes
    from runner.compress.prune import sparsity_of

    return {**sizes(model_file), "sparsity": sparsity_of(model)["overall"]}


def _exports_on_split(run: Run, x, y, mode: str, from_logits: bool) -> dict:
    """Accuracy on the split of each file in RUN_DIR/export/export.json, as its own runtime computes it."""
    import numpy as np

    from runner.artifacts.export_formats import EXPORT_FORMATS, run_exported

    manifest_path = run.path / rd.EXPORT / rd.EXPORT_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    out = {}
    for name, entry in manifest.items():
        path = run.path / rd.EXPORT / name
        if "error" in entry or not path.exists() or entry["format"] not in EXPORT_FORMATS:
            continue
        predicted = predicted_classes(run_exported(entry["format"], path, x), mode, from_logits)
        out[name] = {"runtime": entry["runtime"], "accuracy": float(np.mean(predicted == y)),
                     **{k: entry[k] for k in ("size_bytes", "gzip_bytes", "latency_ms") if k in entry}}
    return out


def format_result(result: dict) -> str:
    lines = [f"{result['split']} split, {result['examples']} examples, model {result['model']}"]
    lines += [f"  {k}: {v:.4f}" for k, v in result["metrics"].items()]
    for name, e in result.get("deployment", {}).get("exports", {}).items():
        lines.append(f"  {name} ({e['runtime']}): accuracy {e['accuracy']:.4f}")
    if "report_text" in result:
        lines += ["", result["report_text"].rstrip()]
    lines.append(f"written to {result['folder']}")
    return "\n".join(lines)
