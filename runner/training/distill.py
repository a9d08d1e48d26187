"""The distill task (Hinton et al. 2015): a student learns from a teacher's softened logits plus the true labels."""

from __future__ import annotations

import functools

from pydantic import Field

from runner.language.fields import PositiveFloat, Strict, UnitFloat


class Distill(Strict):
    teacher: str = Field(description="the teacher: a run directory, a .keras file, or a spec (.yaml) trained first")
    temperature: PositiveFloat = Field(4.0, description="softens both softmaxes; the soft term is scaled by T^2")
    alpha: UnitFloat = Field(0.1, description="weight of the hard-label loss; the soft KL term gets 1 - alpha")


def make_distiller(cfg_distill: Distill, student, teacher_file: str, student_logits: bool):
    """The student wrapped with its frozen teacher; call inside strategy.scope()."""
    import keras

    from runner.kernel.errors import ConfigError

    if not student_logits:
        raise ConfigError("distill: the student must output logits; set model.output_activation: auto")
    teacher = keras.saving.load_model(teacher_file, compile=False)
    if teacher.output.shape[-1] != student.output.shape[-1]:
        raise ConfigError(f"distill.teacher: {teacher_file} has {teacher.output.shape[-1]} outputs but the "
                          f"student has {student.output.shape[-1]}; the teacher must be trained on the same classes")
    teacher.trainable = False
    return distiller_class()(student, teacher, cfg_distill.temperature, cfg_distill.alpha)


@functools.cache
def distiller_class():
    """The Keras class, made on first use: the config layer imports this module without TensorFlow."""
    import keras

    from runner.models import outputs_logits

    @keras.saving.register_keras_serializable(package="dlrun")
    class Distiller(keras.Model):
        """Runs the student; the loss adds the KL divergence to the teacher's softened predictions."""

        def __init__(self, student, teacher, temperature: float, alpha: float, **kwargs):
            # a functional model over the student's own graph: inputs, summaries and graphs work as for any model
            super().__init__(student.inputs, student.outputs, name=kwargs.get("name", "distiller"))
            self.student, self.teacher = student, teacher
            self.temperature, self.alpha = float(temperature), float(alpha)
            self.teacher_logits = outputs_logits(teacher)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            ops = keras.ops
            hard = super().compute_loss(x, y, y_pred, sample_weight, training)
            t = ops.cast(self.teacher(x, training=False), "float32")
            if not self.teacher_logits:  # a teacher ending in softmax: log-probabilities are logits
                t = ops.log(ops.clip(t, 1e-7, 1.0))
            s = ops.cast(y_pred, "float32") / self.temperature
            soft_t = ops.softmax(t / self.temperature)
            # KL(teacher || student) with the T^2 factor that keeps its gradients on the hard term's scale
            kl = ops.sum(soft_t * (ops.log(ops.clip(soft_t, 1e-7, 1.0)) - ops.log_softmax(s)), axis=-1)
            if sample_weight is not None:  # class weights weigh both terms, as Keras does for the hard one
                kl = kl * ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
            soft = ops.mean(kl) * self.temperature**2
            return self.alpha * hard + (1.0 - self.alpha) * soft

        def get_config(self):
            return {"name": self.name, "temperature": self.temperature, "alpha": self.alpha,
                    "student": keras.saving.serialize_keras_object(self.student),
                    "teacher": keras.saving.serialize_keras_object(self.teacher)}

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            for key in ("student", "teacher"):
                config[key] = keras.saving.deserialize_keras_object(config[key])
            return cls(**config)

    return Distiller


def student_of(model):
    """The run's saved model: the student of a Distiller, compiled with the optimizer it trained with."""
    student = model.student
    student.compile(optimizer=model.optimizer)
    return student
