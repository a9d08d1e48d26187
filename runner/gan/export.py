"""Exporting a GAN run's generator (model.keras: the averaged generator on the raw range), each file checked by
its runtime against Keras on fixed noise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from runner.artifacts.export_formats import CHECK_EXAMPLES, EXPORT_FORMATS, TOLERANCE, artifact_name, run_exported
from runner.kernel import run_dir as rd


def export_generator(model, source: Path, formats, out: Path, seed: int) -> list[dict]:
    """Each format of the generator to `out`, checked on CHECK_EXAMPLES noise vectors; recorded in export.json."""
    from importlib import metadata

    from runner.gan.samples import noise

    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / rd.EXPORT_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    results = []
    conditional = len(model.inputs) > 1
    z = noise(CHECK_EXAMPLES, int(model.inputs[0].shape[-1]), seed)
    expected = np.asarray(model.predict(z, verbose=0)).astype("float64") if not conditional else None
    for fmt in formats:
        path = out / artifact_name(fmt)
        entry = {"format": fmt, "quantize": None, "path": str(path)}
        if conditional:  # the runtime checks feed one input tensor; a conditional generator takes two
            entry.update(ok=False, error=f"--format {fmt}: a conditional generator (noise and class inputs) is "
                                         "not exported yet; model.keras serves it (`dlrun predict RUN --class K`)")
            results.append(entry)
            continue
        try:
            EXPORT_FORMATS.get(fmt).builder(source, model, path, None, z)
            got = run_exported(fmt, path, z)
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
