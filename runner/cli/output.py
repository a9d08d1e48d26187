"""The one output channel for user messages: dlrun's own lines on stderr, results on stdout, tables."""

from __future__ import annotations

import logging
import sys

from runner.kernel.text import table


class _Stderr(logging.StreamHandler):
    """A handler on whatever sys.stderr is when a message comes (pytest's capture swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def configure_messages() -> None:
    """Library code logs to the `runner` loggers; their messages are dlrun's own lines on stderr."""
    handler = _Stderr()
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
    from runner.data.kfold import SPLITS

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
        if "pixel_agreement" in r:
            line += f", same class as Keras on {r['pixel_agreement']:.4%} of pixels"
        if "full_integer_accuracy" in r:  # LiteRT's fallback; onnx int8 is dynamic-range by design
            line += (f"; dynamic-range INT8, since full-integer INT8 lost more than one point "
                     f"(accuracy {r['full_integer_accuracy']:.4f})")
        lines.append(line + ("" if r["ok"] else "  WARNING: outside the expected tolerance"))
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def epoch_line(p) -> str:
    """`epoch 3/30  loss 0.4123  accuracy 0.8812  val_loss 0.3012  0.38s  ETA 10s` for an EpochProgress."""
    width = len(str(p.epochs))
    head = f"epoch {p.epoch:>{width}}/{p.epochs}"
    if not p.done:
        return f"{head}  step {p.step}/{p.steps}  ETA {_duration(p.eta_s) if p.eta_s is not None else '-'}"
    figures = "  ".join(f"{k} {v:.4f}" for k, v in p.logs.items())
    eta = f"  ETA {_duration(p.eta_s)}" if p.epoch < p.epochs else ""
    return f"{head}  {figures}  {p.seconds:.2f}s{eta}"


class EpochLines:
    """The training progress on `stream`: a line per epoch; on a terminal, also the step, redrawn in place."""

    def __init__(self, stream):
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, p) -> None:
        if not p.done and not self.live:
            return
        # \r and clear-to-end redraw the live line; a pipe gets finished lines only
        prefix = "\r\x1b[K" if self.live else ""
        self.stream.write(prefix + epoch_line(p) + ("\n" if p.done else ""))
        self.stream.flush()
