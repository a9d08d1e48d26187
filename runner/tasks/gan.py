"""The `gan` task: a generator and a discriminator trained adversarially (runner/gan/); set by `task: gan`."""

from __future__ import annotations

from runner.gan import hooks
from runner.gan.config import DiscriminatorTrain, GanModel, GanOptions, gan_checks
from runner.tasks.registry import TASKS

TASKS.register(
    "gan", config=GanOptions,
    top_level=True,  # chosen by the spec's top-level `task:`, not inferred from the labels
    data_task=False, per_pixel=False, class_weights=False, default_metrics=(),
    model=GanModel,  # the `model:` block of this task
    train_block=DiscriminatorTrain,  # train.discriminator
    logs=("loss", "d_loss", "g_loss"),  # what fit logs (val_ too, with a validation split): callbacks may monitor
    checks=gan_checks,  # (key path, rule) cross-field rules, run by dlrun validate
    callbacks_config=hooks.callbacks_config,  # the spec's callbacks as this task runs them
    callbacks=hooks.callbacks,  # extra Keras callbacks (the epoch sample grid)
    finish=hooks.finish,  # model.keras, metrics.json and the task's artifacts after fit
)(hooks.build)
