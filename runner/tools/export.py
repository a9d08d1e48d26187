"""`dlrun export`: a finished run's model in the asked formats, each checked by its runtime (export_formats)."""

from __future__ import annotations

from pathlib import Path

from runner.artifacts.export_formats import EXPORT_FORMATS, export_model, format_name
from runner.kernel import run_dir as rd
from runner.kernel.errors import ConfigError
from runner.tasks import task
from runner.tools.open_run import Run


def export_run(run: Run, formats, quantize: str | None = None, out=None, unsafe: bool = False) -> list[dict]:
    """Export the run's final model in each format to `out` (default RUN_DIR/export/), check each, and record
    the checks in export.json there."""
    from runner.data.build import build_data
    from runner.training.losses import label_mode

    formats = [format_name(f) for f in formats]  # the CLI offers only known names and aliases
    if quantize and any(quantize not in EXPORT_FORMATS.get(f).quantizes for f in formats):
        quantizing = EXPORT_FORMATS.where(quantizes=quantize)
        raise ConfigError(f"--quantize {quantize}: {quantize} quantization is for --format {' or '.join(quantizing)} "
                          f"only; received --format {', '.join(formats)}")
    cfg = run.cfg
    model = run.load_model("final", unsafe)
    out = Path(out) if out else run.path / rd.EXPORT
    if cfg.task == "gan":  # task gan: the generator, checked on noise
        from runner.gan.export import export_generator

        if quantize:
            raise ConfigError(f"--quantize {quantize}: a generator is exported in float only; leave --quantize out")
        return export_generator(model, run.model_file(), formats, out, cfg.seed, run.info.get("num_classes"))
    data = build_data(cfg.data, cfg.seed)
    mode = label_mode(cfg.train.loss, data.info.task, bool(cfg.data.batch_augment))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create this folder ({e.strerror})") from None
    return export_model(model, run.model_file(), data, formats, out, mode, cfg.data.batch_size,
                        task(data.info.task).export_check, quantize)


def raise_failures(results: list[dict]) -> None:
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise ConfigError(errors)
