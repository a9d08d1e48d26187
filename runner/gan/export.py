"""Exporting a GAN run's generator (model.keras: the averaged generator on the raw range), each file checked by
its runtime against Keras on fixed noise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from runner.artifacts.export_formats import CHECK_EXAMPLES, EXPORT_FORMATS, TOLERANCE, artifact_name, run_exported
from runner.kernel import run_dir as rd


def export_generator(model, source: Path, formats, out: Path, seed: int, num_classes: int | None) -> list[dict]:
    """Each format of the generator to `out`, checked on CHECK_EXAMPLES noise vectors (with the classes in turn,
    for a conditional generator); recorded in export.json."""
    from importlib import metadata

    from runner.gan.samples import generate, generator_inputs, grid_labels, noise

    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / rd.EXPORT_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    results = []
    z = noise(CHECK_EXAMPLES, int(model.inputs[0].shape[-1]), seed)
    labels = grid_labels(CHECK_EXAMPLES, 1, num_classes) if len(model.inputs) > 1 else None
    inputs = generator_inputs(z, labels)
    expected = generate(model, z, labels).astype("float64")
    for fmt in formats:
        path = out / artifact_name(fmt)
        entry = {"format": fmt, "quantize": None, "path": str(path)}
        try:
            EXPORT_FORMATS.get(fmt).builder(source, model, path, None, inputs)
            got = run_exported(fmt, path, inputs)
            diff = float(np.max(np.abs(got.astype("float64") - expected)))
            runtime = EXPORT_FORMATS.get(fmt).runtime
            entry.update(runtime=f"{runtime} {metadata.version(runtime)}", split="noise",
                         examples=len(z), max_abs_diff=diff, tolerance=TOLERANCE, ok=diff <= TOLERANCE)
        except Exception as e:  # noqa: BLE001 -- whatever the converter or runtime raises, the format cannot serve it
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            first = (str(e).strip().splitlines() or [""])[0][:300]
            entry.update(ok=False, error=f"--format {fmt}: export failed ({type(e).__name__}: {first}); no file kept")
        manifest[path.name] = {k: v for k, v in entry.items() if k != "path"}
        results.append(entry)
    rd.atomic_write(manifest_path, lambda f: json.dump(manifest, f, indent=2))
    return results
