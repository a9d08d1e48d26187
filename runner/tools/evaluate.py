"""`dlrun eval`: a run's model on one of its splits: metrics, per-class report and confusion matrix in RUN_DIR/eval/."""

from __future__ import annotations

import json

from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError
from runner.artifacts.export_formats import as_model_input
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
    from runner.training.losses import LOSSES, label_mode
    from runner.tasks import task
    from runner.training.metrics import METRICS, default_metrics

    cfg = run.cfg
    model = run.load_model(checkpoint, unsafe)
    data = rebuild_data(run, split)
    info = data.info
    mode = label_mode(cfg.train.loss, info.task, bool(cfg.data.batch_augment))
    from_logits = outputs_logits(model)
    names = cfg.train.metrics or default_metrics(info.task)
    # the spec's own loss and metrics, as training compiled them, so the numbers match metrics.json
    model.compile(loss=LOSSES.get(cfg.train.loss.name).builder(cfg.train.loss, mode, from_logits),
                  metrics=[METRICS.get(n).builder(n, mode, from_logits, info.num_classes) for n in names])
    ds = eval_dataset(data.splits[split], cfg.data, label_fn(mode, info.num_classes))
    metrics = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
    result = {"split": split, "checkpoint": checkpoint, "model": str(run.model_file(checkpoint).relative_to(run.path)),
              "examples": info.cardinality[split], "metrics": metrics}

    folder = run.path / rd.EVAL / f"{split}-{checkpoint}"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = split_arrays(data, split, cfg.data.batch_size)
    result.update(task(info.task).eval_report(model, x, y, mode, from_logits, info, folder,
                                              f"{split} split, {result['model']}"))
    saved = {k: v for k, v in result.items() if k != "report_text"}  # report.txt holds the text
    rd.atomic_write(folder / rd.METRICS, lambda f: json.dump(saved, f, indent=2))
    return {**result, "folder": str(folder)}


def format_result(result: dict) -> str:
    lines = [f"{result['split']} split, {result['examples']} examples, model {result['model']}"]
    lines += [f"  {k}: {v:.4f}" for k, v in result["metrics"].items()]
    if "report_text" in result:
        lines += ["", result["report_text"].rstrip()]
    lines.append(f"written to {result['folder']}")
    return "\n".join(lines)
