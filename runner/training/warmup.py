"""Linear warm-up in front of a constant or any Keras schedule (Keras builds it into CosineDecay only)."""

import keras


@keras.saving.register_keras_serializable(package="dlrun")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> the schedule's first value over `warmup_steps`, then the schedule shifted by them.

    The ramp is CosineDecay's own warm-up line (0 at step 0, the full rate at step `warmup_steps`), so every
    schedule warms up the same way, as docs/config.md says.
    """

    def __init__(self, schedule, warmup_steps: int):
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)

    def _after(self, step):
        if callable(self.schedule):
            return self.schedule(step)
        return keras.ops.convert_to_tensor(float(self.schedule))

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        ramp = step / float(self.warmup_steps) * self._after(0.0)
        return keras.ops.where(step < self.warmup_steps, ramp, self._after(keras.ops.maximum(step - self.warmup_steps, 0.0)))

    def get_config(self):
        schedule = self.schedule
        if callable(schedule):
            schedule = keras.optimizers.schedules.serialize(schedule)
        return {"schedule": schedule, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["schedule"], dict):
            config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)
