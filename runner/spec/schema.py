"""The typed spec: pydantic models mirroring the YAML's top-level keys, unions built from the registries."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, Field, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from runner.artifacts.export_formats import EXPORT_FORMATS, format_choices, format_name
from runner.callbacks.registry import CALLBACKS
from runner.language.fields import NonNegInt, PositiveFloat, PositiveInt, Strict, tagged_union
from runner.data.augment import AUGMENTATIONS, BATCH_AUGMENTATIONS
from runner.data.preprocess import PREPROCESS
from runner.data.sources import SOURCES
from runner.models import ARCHS
from runner.kernel.registry import unknown_name_message
from runner.training.losses import LOSSES
from runner.tasks.registry import default_metrics
from runner.training.metrics import METRICS
from runner.training.optimizers import OPTIMIZERS
from runner.training.schedules import SCHEDULES
from runner.training.distill import Distill
from runner.compress import Compress
from runner.spec.sweep import Sweep
from runner.tasks.registry import TASKS

Data = tagged_union(SOURCES, "source", "data source")
Optimizer = tagged_union(OPTIMIZERS, "name", "optimizer", bare_name=True)
Schedule = tagged_union(SCHEDULES, "schedule", "schedule", also={"type": "number", "exclusiveMinimum": 0})
Loss = tagged_union(LOSSES, "name", "loss", bare_name=True)
# a format's aliases are accepted and stand for its name (`tflite` is `litert`)
ExportFormat = Annotated[Literal[tuple(format_choices())], AfterValidator(format_name)]  # noqa: UP007
# a task chosen by the top-level `task:` may bring its own model block (gan: two networks), picked by its keys,
# since a field cannot see its sibling `task:` (checks.py pairs them)
TOP_TASKS = TASKS.where(top_level=True)
GanTrain, GanOptions = TASKS.get("gan").train_block, TASKS.get("gan").config
Model = tagged_union(ARCHS, "arch", "arch", more=tuple(
    (name, TASKS.get(name).model, lambda v, keys=tuple(TASKS.get(name).model.model_fields):
        isinstance(v, dict) and "arch" not in v and any(k in v for k in keys)) for name in TOP_TASKS))


class Train(Strict):
    epochs: PositiveInt = Field(10, description="training epochs")
    optimizer: Optimizer = Field(default_factory=lambda: {"name": "adam"},
                                 description=f"{{name: {'|'.join(OPTIMIZERS.names())}, Keras arguments}}")
    lr: Schedule = Field(default_factory=lambda: {"schedule": "constant", "base": 1e-3},
                         description=f"{{schedule: {'|'.join(SCHEDULES.names())}, base: ..., warmup_epochs: ...}}, "
                                     "or a number (constant)")
    loss: Loss = Field(default_factory=lambda: {"name": "auto"},
                       description=f"{{name: {'|'.join(LOSSES.names())}, label_smoothing: ...}}; auto: "
                                   "sparse_categorical_crossentropy (classification) or mse (regression)")
    metrics: Optional[list[str]] = Field(
        None, description=f"{', '.join(METRICS.names())}; default " + ", ".join(
            f"{' and '.join(default_metrics(t))} ({t})" for t in TASKS.where(data_task=True)))
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "auto", description="auto: mixed precision on GPUs that gain from it, float32 on CPU")
    jit_compile: Union[Literal["auto"], bool] = Field(
        "auto",
        description="XLA; auto: on for GPU, off on CPU and with deterministic: true (Keras then compiles without it)")
    steps_per_execution: Union[Literal["auto"], PositiveInt] = Field(
        "auto", description="steps per tf.function call; auto amortizes per-step overhead")
    class_weight: Union[Literal["balanced"], dict[str, PositiveFloat], None] = Field(
        None, description="balanced: n / (classes * count), or {class name or index: weight}; unlisted get 1")
    nan_policy: Literal["fail", "rollback"] = Field(
        "fail", description="on a non-finite loss: fail (exit 4), or rollback to the last backup with a lower "
                            "learning rate")
    nan_retries: PositiveInt = Field(3, description="rollback: how many times to retry before failing")
    nan_lr_factor: float = Field(0.5, gt=0, lt=1, description="rollback: learning-rate multiplier per retry")
    discriminator: Optional[GanTrain] = Field(
        None, description="task gan: the discriminator's {optimizer, lr, steps}; without it the discriminator "
                          "trains with train.optimizer and train.lr")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data):
        """`optimizer: adam`, `loss: mse` and `lr: 0.01` are short for the one-key blocks."""
        if isinstance(data, dict):
            data = dict(data)
            for key, field in (("optimizer", "name"), ("loss", "name")):
                if isinstance(data.get(key), str):
                    data[key] = {field: data[key]}
            if isinstance(data.get("lr"), (int, float)) and not isinstance(data.get("lr"), bool):
                data["lr"] = {"schedule": "constant", "base": data["lr"]}
        return data

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, names):
        for i, name in enumerate(names or []):
            if name not in METRICS:
                raise PydanticCustomError("unknown_metric", "{message}",
                                          {"message": unknown_name_message("metric", name, METRICS.names()),
                                           "subpath": i})
        if names is not None and len(set(names)) != len(names):
            raise PydanticCustomError("duplicate", "metrics are listed twice: {value}", {"value": names})
        return names


def _callbacks_model():
    fields = {}
    for entry in CALLBACKS.entries():
        default = (lambda c=entry.config: c()) if entry.config.ENABLED else (lambda: None)
        configures = getattr(entry.config, "CONFIGURES", "a map configures")
        fields[entry.name] = (Optional[entry.config], Field(default_factory=default, description=(
            f"{'on' if entry.config.ENABLED else 'off'} by default; null disables, {configures}")))
    return create_model("Callbacks", __base__=Strict, **fields)


Callbacks = _callbacks_model()


class Distribute(Strict):
    strategy: Literal["auto", "default", "one_device", "mirrored", "multi_worker", "tpu"] = Field(
        "auto", description="auto: mirrored over all GPUs when more than one, else default")
    devices: Optional[list[str]] = Field(None, description="devices for mirrored/one_device, e.g. ['/gpu:0']")
    cpu_replicas: Optional[PositiveInt] = Field(
        None, description="split the CPU into N logical devices (mirrored on CPU hosts and in tests)")
    workers: Optional[list[str]] = Field(
        None, min_length=1, description="multi_worker: every worker's host:port, the chief first "
                                        "(default: the cluster in the TF_CONFIG environment variable)")
    task_index: Optional[NonNegInt] = Field(None, description="multi_worker with `workers`: this worker's index")
    connect_timeout: PositiveFloat = Field(
        120.0, description="multi_worker: seconds to wait for every worker to be reachable (then exit 5)")
    tpu: Optional[str] = Field(None, description="tpu: the TPU name or grpc:// address (default: this TPU VM)")

    @field_validator("workers")
    @classmethod
    def _host_port(cls, workers):
        for i, address in enumerate(workers or []):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise PydanticCustomError("host_port", "must be host:port, like 10.0.0.2:12345; received {value}",
                                          {"value": repr(address), "subpath": i})
            if address in workers[:i]:
                # two workers on one address would reach themselves and wait for the other for ever
                raise PydanticCustomError("host_port", "worker {first} has this address already; every worker "
                                          "needs its own host:port; received {value}",
                                          {"value": repr(address), "first": workers.index(address), "subpath": i})
        return workers

    @model_validator(mode="after")
    def _cluster(self):
        if self.workers is not None and self.task_index is None:
            raise PydanticCustomError("cluster", "distribute.workers needs this worker's index in the list "
                                      "(0 for the chief); received none", {"subpath": "task_index"})
        if self.workers is not None and self.task_index >= len(self.workers):
            raise PydanticCustomError("cluster", "must index one of the {n} workers listed (0..{last}); received "
                                      "{value}", {"value": self.task_index, "n": len(self.workers),
                                                  "last": len(self.workers) - 1, "subpath": "task_index"})
        return self


class Output(Strict):
    dir: str = Field("runs", description="root of run directories: <dir>/<name>/<timestamp>-<hex>/")


class Config(Strict):
    name: str = Field(pattern=r"^[a-z0-9._-]+$", max_length=100,
                      description="experiment name: lower-case letters, digits, '.', '_' and '-'")
    seed: int = Field(42, ge=0, lt=2**31, description="seeds data order, initialization and augmentation")
    deterministic: bool = Field(False, description="true: seeded everything plus TF op determinism")
    task: Literal[("supervised", *TOP_TASKS)] = Field(
        "supervised", description="supervised (classification/regression, from the labels) or gan (see docs/gan.md)")
    data: Data = Field(description="where examples come from and how they are fed")
    model: Model = Field(description="an arch by name, or a plain `layers:` list; task gan: "
                                     "{generator, discriminator, latent_dim, conditional}")
    train: Train = Field(default_factory=Train, description="optimization")
    callbacks: Callbacks = Field(default_factory=Callbacks, description="callbacks by name")
    distribute: Distribute = Field(default_factory=Distribute, description="tf.distribute strategy")
    output: Output = Field(default_factory=Output, description="where run directories go")
    distill: Optional[Distill] = Field(None, description="knowledge distillation from a teacher (Hinton et al.)")
    compress: Optional[Compress] = Field(None, description="pruning and quantization (see docs/compression.md)")
    gan: Optional[GanOptions] = Field(
        None, description="task gan: loss, EMA, sample grid and FID (see docs/gan.md)")
    export: list[ExportFormat] = Field(
        default_factory=list, description="formats exported to RUN_DIR/export/ after training, each checked by the "
                                          "runtime that reads it (see `dlrun export`): " + "; ".join(
                                              f"{e.name}: {e.description}" for e in EXPORT_FORMATS.entries()))
    sweep: Optional[Sweep] = Field(None, description="hyper-parameter search for `dlrun sweep` (see docs/sweeps.md)")

    @model_validator(mode="before")
    @classmethod
    def _layers_shorthand(cls, data):
        """`model: {layers: [...]}` needs no `arch: layers`."""
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            model = data["model"]
            if "layers" in model and "arch" not in model:
                data = {**data, "model": {"arch": "layers", **model}}
        return data


def json_schema() -> dict:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dlrun experiment spec"
    # an editor sees one file before `extends` merges its parents: required keys may come from a parent
    schema["properties"]["extends"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "parent spec(s), relative to this file; deep-merged first, this file wins"}
    schema.pop("required", None)
    return schema


REGISTRIES = {r.kind: r for r in (SOURCES, ARCHS, OPTIMIZERS, SCHEDULES, LOSSES, METRICS, CALLBACKS,
                                  AUGMENTATIONS, BATCH_AUGMENTATIONS, PREPROCESS)}
