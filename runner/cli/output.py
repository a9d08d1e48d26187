"""The one output channel for user messages: dlrun's own lines on stderr, results on stdout, tables."""

from __future__ import annotations

import logging
import sys

from runner.data.kfold import SPLITS
from runner.kernel.text import table


def configure_messages() -> None:
    """Library code logs to the `runner` loggers; their messages are dlrun's own lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("runner")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run_summary(metrics: dict) -> str:
    splits = [s for s in ("train", "validation", "test") if s in metrics]
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    rows = [["split", *names]] + [[s, *(f"{metrics[s][n]:.4f}" if n in metrics[s] else "-" for n in names)]
                                  for s in splits]
    return table(rows)


def kfold_summary(metrics: dict) -> str:
    """Like run_summary, each cell 'mean ± std' over the folds."""
    splits = [s for s in SPLITS if s in metrics]
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    std = metrics.get("std", {})
    rows = [["split", *names]]
    for s in splits:
        rows.append([s, *(f"{metrics[s][n]:.4f} ± {std.get(s, {}).get(n, 0.0):.4f}" if n in metrics[s] else "-"
                          for n in names)])
    k = metrics.get("kfold", {})
    return f"{k.get('folds_run')}-fold cross-validation (mean ± std over folds)\n{table(rows)}"


def export_lines(results: list[dict]) -> str:
    lines = []
    for r in (r for r in results if "error" not in r):
        line = (f"{r['path']}: {r['runtime']} vs Keras on {r['examples']} {r['split']} examples: "
                f"max |diff| {r['max_abs_diff']:.2e}")
        if "accuracy" in r:
            line += f", accuracy {r['accuracy']:.4f} (Keras {r['keras_accuracy']:.4f})"
        if r.get("scheme") == "dynamic_range":
            line += (f"; dynamic-range INT8, since full-integer INT8 lost more than one point "
                     f"(accuracy {r['full_integer_accuracy']:.4f})")
        lines.append(line + ("" if r["ok"] else "  WARNING: outside the expected tolerance"))
    return "\n".join(lines)
