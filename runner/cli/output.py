"""The one output channel for user messages: dlrun's own lines on stderr, results on stdout, tables."""

from __future__ import annotations

from runner.data.kfold import SPLITS
from runner.kernel.text import table


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
