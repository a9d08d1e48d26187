"""`dlrun export`: a finished run's model in the asked formats, each checked by its runtime (export_formats)."""

from __future__ import annotations

from pathlib import Path

from runner.artifacts.export_formats import export_model
from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError
from runner.tools.open_run import Run


def export_run(run: Run, formats, quantize: str | None = None, out=None, unsafe: bool = False) -> list[dict]:
    """Export the run's final model in each format to `out` (default RUN_DIR/export/), check each, and record
    the checks in export.json there."""
    from runner.data.build import build_data
    from runner.training.losses import label_mode

    if quantize and set(formats) != {"tflite"}:
        raise ConfigError(f"--quantize {quantize}: quantization is for --format tflite only; "
                          f"received --format {', '.join(formats)}")
    cfg = run.cfg
    model = run.load_model("final", unsafe)
    data = build_data(cfg.data, cfg.seed)
    mode = label_mode(cfg.train.loss, data.info.task, bool(cfg.data.batch_augment))
    out = Path(out) if out else run.path / rd.EXPORT
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create this folder ({e.strerror})") from None
    return export_model(model, run.model_file(), data, formats, out, mode, cfg.data.batch_size, quantize)


def raise_failures(results: list[dict]) -> None:
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise ConfigError(errors)


def format_results(results: list[dict]) -> str:
    lines = []
    for r in (r for r in results if "error" not in r):
        line = (f"{r['path']}: {r['runtime']} vs Keras on {r['examples']} {r['split']} examples: "
                f"max |diff| {r['max_abs_diff']:.2e}")
        if "accuracy" in r:
            line += f", accuracy {r['accuracy']:.4f} (Keras {r['keras_accuracy']:.4f})"
        if "pixel_agreement" in r:
            line += f", same class as Keras on {r['pixel_agreement']:.4%} of pixels"
        if r.get("scheme") == "dynamic_range" and "full_integer_accuracy" in r:
            line += (f"; dynamic-range INT8, since full-integer INT8 lost more than one point "
                     f"(accuracy {r['full_integer_accuracy']:.4f})")
        lines.append(line + ("" if r["ok"] else "  WARNING: outside the expected tolerance"))
    return "\n".join(lines)
