"""TrialReporter: a Keras callback that reports each epoch's objective to the Optuna trial and stops pruned ones."""

from __future__ import annotations

import math

import keras


class TrialReporter(keras.callbacks.Callback):
    """Reports `metric` at every epoch end as the trial's intermediate value; when the pruner says so, stops
    training (the run still ends normally, with its files) and sets `stop_all` so that no later fold starts.
    Steps count epochs over every fit of the trial, so the folds of data.kfold continue one curve."""

    def __init__(self, trial, metric: str, prune: bool):
        super().__init__()
        self.trial, self.metric, self.prune = trial, metric, prune
        self.step = 0
        self.stop_all = False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.metric)
        if value is None:  # a test_<metric> objective has no epoch values
            return
        self.step += 1
        value = float(value)
        if math.isfinite(value):
            self.trial.report(value, self.step)
        if self.prune and self.trial.should_prune():
            self.stop_all = True
            self.model.stop_training = True
