"""`dlrun predict`: read image files, CSV rows, text lines or .npz arrays as the run's source yields them, and
report the top-k classes (or the regression value) that the run's model gives each; a segmentation run writes
a mask PNG per input (the records come from the run's task)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from runner.data.sources.csv_source import is_float
from runner.kernel.errors import ConfigError, DataError
from runner.artifacts.export_formats import as_model_input
from runner.tools.open_run import Run

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
KINDS = "image files (.png .jpg .jpeg .bmp .gif), a .csv table, a .txt file of text lines, or an .npz archive"


def _image(path: Path, shape: tuple, value_range, cfg_data):
    """An image file decoded as the image_folder source decodes it (tf.io.decode_image, tf.image.resize to the
    input's height and width with the spec's interpolation), its 0..255 pixels mapped onto the run's raw input
    range (digits' 0..16)."""
    import tensorflow as tf

    height, width, channels = shape
    if channels not in (1, 3, 4):
        raise DataError(f"{path}: the model takes images with {channels} channels; image files give 1, 3 or 4")
    try:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=channels, expand_animations=False)
    except tf.errors.InvalidArgumentError as e:
        raise DataError(f"{path}: not a readable image ({e.message})") from None
    x = tf.image.resize(image, (height, width), method=getattr(cfg_data, "interpolation", "bilinear")).numpy()
    if value_range is not None:
        low, high = value_range
        x = low + x * ((high - low) / 255.0)
    return x


def _csv_rows(path: Path, n_features: int, cfg_data):
    """Feature rows of a CSV, columns picked as the csv source picks them: a header row (recognised by a
    non-numeric cell) names them, `data.features` or every column but `data.label`; without a header the
    columns must be exactly the model's features, in order."""
    import numpy as np

    label, features = getattr(cfg_data, "label", None), getattr(cfg_data, "features", None)
    if getattr(cfg_data, "categorical", None):
        raise DataError(f"{path}: this run one-hot encodes the categorical columns {cfg_data.categorical} outside "
                        "the model, and its run directory does not record their categories; predict can read "
                        "numeric feature columns only")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f, delimiter=getattr(cfg_data, "delimiter", ",")) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    first_line, keep = 1, list(range(len(rows[0])))
    if not all(is_float(c) for c in rows[0]):
        header = [c.strip() for c in rows[0]]
        wanted = features if features is not None else [h for h in header if h != label]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r}; the run's features are {', '.join(wanted)}")
        keep = [header.index(c) for c in wanted]
        rows, first_line = rows[1:], 2
    if len(keep) != n_features:
        raise DataError(f"{path}: {len(keep)} feature columns but the model takes {n_features}"
                        + (f" (a header naming the label column {label!r} drops it)" if label else ""))
    values, names = [], []
    for line, row in enumerate(rows, start=first_line):
        try:
            values.append([float(row[i]) for i in keep])
        except (ValueError, IndexError):
            raise DataError(f"{path}:{line}: expected {n_features} numbers; received {row}") from None
        names.append(f"{path}:{line}")
    return names, np.asarray(values, dtype="float32").reshape(-1, len(keep))


def _npz(path: Path, key: str):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = archive.files
            if key not in keys and len(keys) != 1:
                raise DataError(f"{path}: no array named {key!r}; the file holds {sorted(keys)}")
            x = archive[key if key in keys else keys[0]]
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    return [f"{path}[{i}]" for i in range(len(x))], np.asarray(x)


def _text_lines(path: Path):
    """One example per non-blank line, named by its line number."""
    import numpy as np

    try:
        numbered = [(i, line) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                    if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable UTF-8 text file ({e})") from None
    return [f"{path}:{i}" for i, _ in numbered], np.asarray([line for _, line in numbered], dtype=object)


def read_inputs(paths, run: Run, model):
    """(names, x): one row per image file, CSV row, text line or array entry, in the order given."""
    import numpy as np

    shape = tuple(model.inputs[0].shape[1:])
    dtype = model.inputs[0].dtype
    names, batches = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            raise DataError(f"{path}: a folder; predict reads files, so pass the ones to predict, such as "
                            f"{path / '*.png'}")
        if not path.is_file():
            raise DataError(f"{path}: input file not found")
        suffix = path.suffix.lower()
        if suffix == ".txt" and dtype != "string":
            raise DataError(f"{path}: text lines are for models that take text; this model takes {dtype} "
                            f"inputs of shape {list(shape)}")
        if suffix in IMAGE_SUFFIXES:
            if len(shape) != 3:
                raise DataError(f"{path}: the model takes inputs of shape {list(shape)}, not images")
            found = [str(path)], _image(path, shape, run.info.get("value_range"), run.cfg.data)[None]
        elif suffix == ".csv":
            if len(shape) != 1:
                raise DataError(f"{path}: the model takes inputs of shape {list(shape)}, not table rows")
            found = _csv_rows(path, shape[0], run.cfg.data)
        elif suffix == ".npz":
            found = _npz(path, getattr(run.cfg.data, "x_key", "x"))
        elif suffix == ".txt":
            lines, x = _text_lines(path)
            found = lines, x.reshape((-1, *shape))  # one string per example, as a (1,)-shaped text input takes it
        else:
            raise ConfigError(f"{path}: unknown input kind {suffix or '(no suffix)'!r}; predict reads {KINDS}")
        if found[1].shape[1:] != shape:
            raise DataError(f"{path}: inputs of shape {list(found[1].shape[1:])}, but the model takes {list(shape)}")
        names += found[0]
        batches.append(found[1] if dtype == "string" else found[1].astype(dtype))
    if not names:
        raise DataError(f"no examples in {', '.join(map(str, paths))}")
    return names, np.concatenate(batches)


def predict_run(run: Run, paths, top_k: int = 3, unsafe: bool = False) -> list[dict]:
    """One record per input, as the run's task writes it: {"input", "top_k": [{"class", "index", "probability"},
    ...]} (classification), {"input", "value"} (regression) or {"input", "mask", "pixels"} (segmentation)."""
    from runner.kernel import run_dir as rd
    from runner.models import outputs_logits
    from runner.tasks import task

    model = run.load_model("final", unsafe)
    names, x = read_inputs(paths, run, model)
    outputs = model.predict(as_model_input(x), batch_size=run.cfg.data.batch_size, verbose=0).astype("float64")
    return task(run.info["task"]).predictions(names, outputs, outputs_logits(model), run.info.get("class_names"),
                                              top_k, run.path / rd.PREDICTIONS)


def _columns(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    if "mask" in records[0]:
        classes = list(records[0]["pixels"])
        return (["input", "mask", *classes],
                [[r["input"], r["mask"], *(f"{r['pixels'][c]:.4f}" for c in classes)] for r in records])
    if "value" in records[0]:
        return ["input", "value"], [[r["input"], json.dumps(r["value"])] for r in records]
    k = len(records[0]["top_k"])
    header = ["input"] + [f"{c}_{i}" for i in range(1, k + 1) for c in ("class", "probability")]
    rows = [[r["input"]] + [v for t in r["top_k"] for v in (t["class"], f"{t['probability']:.6f}")] for r in records]
    return header, rows


def format_records(records: list[dict], style: str = "table") -> str:
    if style == "json":
        return json.dumps(records, indent=2)
    header, rows = _columns(records)
    if style == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *rows])
        return buf.getvalue().rstrip("\n")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def sample_grid(run: Run, samples: int, label: int | None, out, unsafe: bool = False) -> Path:
    """task gan: a PNG grid of `samples` new images from the run's generator (all of class `label` if given);
    written to `out` (default RUN_DIR/samples-<n>.png). The noise is drawn from the run's seed."""
    import math

    from runner.gan.samples import generate, grid_labels, mosaic, noise, png
    from runner.kernel import run_dir as rd

    model = run.load_model("final", unsafe)
    conditional = len(model.inputs) > 1
    classes = run.info.get("num_classes")
    if label is not None and not conditional:
        raise ConfigError(f"--class {label}: this run's generator is unconditional (model.conditional: false); "
                          "leave --class out")
    if label is not None and not 0 <= label < classes:
        raise ConfigError(f"--class: must be a class index 0..{classes - 1}; received {label}")
    columns = math.ceil(math.sqrt(samples))
    z = noise(samples, int(model.inputs[0].shape[-1]), run.cfg.seed + 2)  # neither the grid's nor FID's draw
    labels = grid_labels(samples, columns, classes, label) if conditional else None
    value_range = run.info.get("value_range") or (0.0, 1.0)
    data = png(mosaic(generate(model, z, labels), value_range, columns))
    path = Path(out) if out else run.path / rd.GAN_GRID.format(n=samples)
    rd.atomic_write(path, lambda f: f.write(data), mode="wb")
    return path
