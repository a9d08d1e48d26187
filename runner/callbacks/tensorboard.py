"""tensorboard: Keras's TensorBoard in RUN_DIR/tensorboard/ with steps that continue across resumes, plus the
learning rate, epoch time, examples/s, augmented samples, the confusion matrix, the op graph, the config as
text, an optional profile, and the HParams session written at the end of a run (write_hparams)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar, Literal, Optional, Union

import yaml
from pydantic import Field, field_validator

from runner.callbacks.registry import CALLBACKS
from runner.language.fields import NonNegInt, PositiveInt, Strict



class TensorBoard(Strict):
    ENABLED: ClassVar[bool] = True
    histogram_freq: NonNegInt = Field(0, description="weight histograms every N epochs (0: never)")
    update_freq: Union[Literal["epoch"], PositiveInt] = Field(
        "epoch", description="'epoch', or also log train scalars every N steps")
    write_graph: bool = Field(True, description="the model graph")
    images: NonNegInt = Field(16, description="augmented training samples of the first epoch, as one grid "
                                              "(0: none)")
    confusion_matrix: Optional[Literal["epoch", "end"]] = Field(
        "end", description="confusion matrix on validation (classification): every epoch, at the end, or null")
    profile_steps: Optional[list[PositiveInt]] = Field(
        None, description="[first, last] training steps (1-based) to profile, e.g. [10, 15]; null: never")

    @field_validator("profile_steps")
    @classmethod
    def _step_range(cls, steps):
        if steps is not None and (len(steps) != 2 or steps[0] > steps[1]):
            raise ValueError(f"must be [first, last] with first <= last, e.g. [10, 15]; received {steps}")
        return steps


@CALLBACKS.register("tensorboard", config=TensorBoard)
def build(cfg: TensorBoard, ctx):
    if not ctx.is_chief:
        return []
    from runner.callbacks.tensorboard_keras import RunTensorBoard

    return [RunTensorBoard(cfg, ctx)]


def scalar_hparams(config: dict, prefix: str = "") -> dict:
    """Every scalar leaf of the resolved config as {dotted.key: value}; lists and nulls are not hparams."""
    out = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalar_hparams(value, f"{path}."))
        elif isinstance(value, (bool, int, float, str)) and not (isinstance(value, float) and math.isnan(value)):
            out[path] = value
    return out


def write_hparams(run_dir) -> dict:
    """HParams session of a finished run: the config's scalars as hparams, the best monitored value and the
    test metrics as scalars `best/<monitor>` and `test/<metric>`, read from config.yaml and metrics.json.
    Every run under one TensorBoard logdir then shows up as one row of the HParams table."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    from runner.kernel import run_dir as rd

    path = Path(getattr(run_dir, "path", run_dir))
    config = yaml.safe_load((path / rd.CONFIG).read_text())
    metrics = json.loads((path / rd.METRICS).read_text())
    hparams = scalar_hparams(config)
    values = {}
    best = metrics.get("best")
    if best and best.get("value") is not None:
        values[f"best/{best['monitor']}"] = best["value"]
    values.update({f"test/{k}": v for k, v in (metrics.get("test") or {}).items()})
    step = int(metrics.get("epochs_run") or 0)
    writer = tf.summary.create_file_writer(str(path / rd.TENSORBOARD))
    with writer.as_default(step=step):
        hp.hparams(hparams, trial_id=f"{config.get('name')}/{path.name}")
        for tag, value in values.items():
            tf.summary.scalar(tag, value)
    writer.close()
    return {"hparams": hparams, "metrics": values}
