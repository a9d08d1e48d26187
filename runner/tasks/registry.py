"""TASKS: one entry per task; a task owns its label encoding, the losses and metrics it accepts, its artifacts
and what eval, predict and export do. Each task module registers a `Task` instance here with its facts.

Facts every entry carries:
- `data_task`: a value of the spec's `data.task` (supervised tasks); False for tasks set elsewhere (gan)
- `per_pixel`: labels are masks, one class per pixel (augmentations move them with the image)
- `default_metrics`: the metrics compiled when `train.metrics` is not set; the first is the default monitor
- `class_weights`: whether `train.class_weight` applies
Losses and metrics say which tasks they serve with their own `tasks` fact (see `accepts`)."""

from __future__ import annotations

from runner.kernel.registry import Registry

TASKS = Registry("task")


class Task:
    """What a run does that depends on what it learns; the base is a supervised task with one label per example."""

    name = "task"

    def check_labels(self, x_shape: tuple, y_shape: tuple, where: str) -> None:
        """Raise DataError (exit 3) when labels of `y_shape` (N first) do not fit this task."""

    def spec_problems(self, cfg):
        """(key path, rule) for each part of the spec this task refuses; `dlrun validate` locates them."""
        from runner.models import ARCHS

        yield from self.train_problems(cfg.train)
        arch = getattr(cfg.model, "arch", None)
        # an arch's `outputs` fact: "pixel" (per-pixel logits), "any" (a layers: list), else one per example
        outputs = ARCHS.get(arch).facts.get("outputs", "example") if arch in ARCHS else "any"
        per_pixel = TASKS.get(self.name).per_pixel
        if outputs != "any" and (outputs == "pixel") != per_pixel:
            takers = ARCHS.where(outputs="pixel") if per_pixel else [
                a for a in ARCHS.names() if ARCHS.get(a).facts.get("outputs", "example") == "example"]
            gives = "per-pixel logits" if outputs == "pixel" else "one output per example"
            needs = "per-pixel outputs" if per_pixel else "one output per example"
            yield ("model", "arch"), (f"{arch!r} gives {gives}; a {self.name} task needs {needs}: use "
                                      f"{', '.join(takers)} or a layers: list")

    def check_model(self, model, info) -> None:
        """Raise ConfigError when the built model's outputs cannot carry this task's labels (a layers: list)."""
        from runner.kernel.errors import ConfigError

        shape = _output_shape(model)
        if shape is None:
            return
        per_pixel = TASKS.get(self.name).per_pixel
        wanted = (*info.input_shape[:2], None) if per_pixel else (None,)
        if len(shape) != len(wanted) or any(w is not None and w != s for w, s in zip(wanted, shape)):
            what = (f"per-pixel class logits of the input's {info.input_shape[0]}x{info.input_shape[1]} "
                    "(height x width x classes)" if per_pixel else "one output vector per example")
            raise ConfigError(f"model: the model's outputs have shape {list(shape)} per example; a {self.name} task "
                              f"needs {what}")

    def train_problems(self, train):
        """The loss and metrics against this task, from their entries' `tasks` facts."""
        from runner.training.losses import LOSSES
        from runner.training.metrics import METRICS

        loss = train.loss.name
        if accepts(LOSSES, loss, self.name) is False:
            yield ("train", "loss", "name"), (f"{loss!r} is a {' or '.join(LOSSES.get(loss).tasks)} loss; this "
                                              f"data is a {self.name} task")
        for i, name in enumerate(train.metrics or []):
            if accepts(METRICS, name, self.name) is False:
                yield ("train", "metrics", i), (f"{name!r} is a {' or '.join(METRICS.get(name).tasks)} metric; "
                                                f"this data is a {self.name} task")

    def fit_problems(self, train, info) -> list[str]:
        """What the loaded data shows the spec to get wrong (the task was inferred), as `key: rule` lines."""
        return [f"{dotted(path)}: {rule}" for path, rule in self.train_problems(train)]

    def write_artifacts(self, run_dir, model, info, from_logits: bool, split: str, dataset) -> list[str]:
        """Task figures in the run directory from a batched held-out dataset; returns the file names written."""
        return []

    def tensorboard_samples(self, model, x, y, info, title: str = "training batch") -> bytes | None:
        """A PNG of samples (x, y) with the model's outputs for TensorBoard, or None to keep the generic
        class-labelled grid."""
        return None

    def eval_report(self, model, x, y, mode: str, from_logits: bool, info, folder, title: str) -> dict:
        """Extra results of `dlrun eval` beyond the compiled metrics (files go into `folder`)."""
        return {}

    def predictions(self, names, outputs, from_logits: bool, class_names, top_k: int, folder) -> list[dict]:
        """`dlrun predict`'s record per input from the model's outputs; files (masks) go into `folder`."""
        raise NotImplementedError

    def export_check(self, expected, got, y, mode: str, from_logits: bool) -> dict:
        """Task figures comparing an exported file's outputs with Keras's (besides max |diff|)."""
        return {}


def _output_shape(model) -> tuple | None:
    """The model's output shape without the batch axis; None for subclassed wrappers (a distiller)."""
    outputs = getattr(model, "outputs", None)
    return tuple(outputs[0].shape[1:]) if outputs else None


def dotted(path) -> str:
    """('train', 'metrics', 1) -> 'train.metrics[1]'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def task(name: str) -> Task:
    """The Task object of a registered task name."""
    return TASKS.get(name).builder


def accepts(registry, name: str, task_name: str) -> bool | None:
    """Whether the loss or metric `name` serves `task_name`; None when the entry names no tasks."""
    tasks = registry.get(name).facts.get("tasks")
    return None if tasks is None else task_name in tasks


def default_metrics(task: str | None) -> list[str]:
    """The metrics a task compiles when `train.metrics` is unset; with the task unknown (inferred from the data
    later), every task's defaults."""
    if task is None:
        return list(dict.fromkeys(m for e in TASKS.entries() for m in e.facts.get("default_metrics", ())))
    return list(TASKS.get(task).default_metrics)


def check_fit(model, cfg_train, info) -> None:
    """The loss, metrics and class weights against the task the data turned out to be (`dlrun validate` checks
    what the spec alone tells; with `data.task: auto` only the loaded labels do), and the model's outputs."""
    from runner.kernel.errors import ConfigError

    problems = task(info.task).fit_problems(cfg_train, info)
    if cfg_train.class_weight is not None and not TASKS.get(info.task).class_weights:
        takers = " and ".join(TASKS.where(class_weights=True))
        problems.append(f"train.class_weight: only {takers} take class weights; this data is a {info.task} task. "
                        "Remove train.class_weight")
    if problems:
        raise ConfigError(problems)
    task(info.task).check_model(model, info)
