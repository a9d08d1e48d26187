"""The adversarial Keras model: generator and discriminator networks, their train_step, and the generator's EMA."""

from __future__ import annotations

import functools
import math

from runner.kernel.errors import ConfigError
from runner.models import ARCHS


def _elements(tensor) -> int:
    return math.prod(int(d) for d in tensor.shape[1:])


def build_generator(cfg_model, image_shape: tuple, num_classes: int | None):
    """noise [+ class] -> the arch -> tanh image in [-1, 1]."""
    import keras

    L = keras.layers
    noise = keras.Input((cfg_model.latent_dim,), name="noise")
    inputs, x = [noise], noise
    if cfg_model.conditional:
        label = keras.Input((1,), dtype="int32", name="label")
        inputs.append(label)
        x = L.Concatenate()([noise, L.CategoryEncoding(num_classes, output_mode="one_hot")(label)])
    size = math.prod(image_shape)
    x = ARCHS.get(cfg_model.generator.arch).builder(cfg_model.generator, x, size)
    if _elements(x) != size:
        raise ConfigError(f"model.generator: must give height*width*channels = {size} values per example (the "
                          f"image shape {list(image_shape)}); received output shape {list(x.shape[1:])}; end the "
                          f"layers with Dense: {{units: {size}}} or a convolution to {image_shape[-1]} channels")
    image = L.Activation("tanh", dtype="float32")(L.Reshape(image_shape)(x))
    # one input is the tensor itself, not a list of one: a call with the bare noise matches the structure
    return keras.Model(inputs if len(inputs) > 1 else noise, image, name="generator")


def build_discriminator(cfg_model, image_shape: tuple, num_classes: int | None):
    """image [+ class as constant channels] -> the arch -> one real/fake score (a logit)."""
    import keras

    L = keras.layers
    image = keras.Input(image_shape, name="image")
    inputs, x = [image], image
    if cfg_model.conditional:
        label = keras.Input((1,), dtype="int32", name="label")
        inputs.append(label)
        planes = L.Reshape((1, 1, num_classes))(L.CategoryEncoding(num_classes, output_mode="one_hot")(label))
        x = L.Concatenate()([image, L.UpSampling2D(size=image_shape[:2])(planes)])
    x = ARCHS.get(cfg_model.discriminator.arch).builder(cfg_model.discriminator, x, 1)
    if _elements(x) != 1:
        raise ConfigError(f"model.discriminator: must give one score per example; received output shape "
                          f"{list(x.shape[1:])}; end the layers with Dense: {{units: 1}}")
    score = L.Reshape((1,), dtype="float32")(x)
    return keras.Model(inputs if len(inputs) > 1 else image, score, name="discriminator")


def d_loss_fn(name: str, real, fake):
    """The discriminator's loss on real and fake scores (logits)."""
    import tensorflow as tf

    if name == "non_saturating":
        return tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))
    if name == "hinge":
        return tf.reduce_mean(tf.nn.relu(1.0 - real)) + tf.reduce_mean(tf.nn.relu(1.0 + fake))
    return tf.reduce_mean(fake) - tf.reduce_mean(real)  # wgan_gp, plus the penalty


def g_loss_fn(name: str, fake):
    import tensorflow as tf

    if name == "non_saturating":
        return tf.reduce_mean(tf.nn.softplus(-fake))
    return -tf.reduce_mean(fake)  # hinge and wgan_gp


@functools.cache
def gan_class():
    """The keras.Model subclass, defined once TensorFlow is imported."""
    import keras
    import tensorflow as tf

    class GAN(keras.Model):
        """train_step: `d_steps` discriminator updates, one generator update, then the EMA; all noise is
        stateless, drawn from (seed, generator step, replica, draw), so the RNG state is the optimizer's step."""

        def __init__(self, generator, discriminator, *, loss: str, gp_weight: float, ema: float, d_steps: int,
                     seed: int, value_range: tuple, num_classes: int | None, conditional: bool):
            super().__init__(name="gan")
            self.generator, self.discriminator = generator, discriminator
            self.loss_name, self.gp_weight, self.ema, self.d_steps = loss, gp_weight, ema, d_steps
            self.seed, self.value_range = seed, tuple(value_range)
            self.num_classes, self.conditional = num_classes, conditional
            self.latent_dim = int(generator.inputs[0].shape[-1])
            # only_first_replica: every replica computes the same average, the update is a plain assign
            self.ema_weights = [self.add_weight(shape=v.shape, dtype=v.dtype, trainable=False, name=f"ema_{i}",
                                                initializer="zeros", aggregation="only_first_replica")
                                for i, v in enumerate(generator.weights)]
            for e, v in zip(self.ema_weights, generator.weights):
                e.assign(v)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
            self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
            self.d_optimizer = None
            self.built = True

        @property
        def metrics(self):
            return [self.loss_tracker, self.d_loss_tracker, self.g_loss_tracker]

        @property
        def extra_optimizers(self):
            """Optimizers beside `optimizer` whose variables a backup saves and restores (callbacks/backup.py)."""
            return (self.d_optimizer,)

        def compile(self, g_optimizer, d_optimizer, **kwargs):
            super().compile(optimizer=g_optimizer, **kwargs)
            self.d_optimizer = d_optimizer
            # built now, on each network's own variables: fit would build `optimizer` on all of them
            g_optimizer.build(self.generator.trainable_variables)
            d_optimizer.build(self.discriminator.trainable_variables)

        def call(self, inputs, training=False):
            return self.discriminator(inputs, training=training)

        # ---- the step ----
        def _seed(self, *parts):
            seed = tf.constant([self.seed, 0], tf.int64)
            for part in parts:
                seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(part, tf.int64))
            return seed

        def _real(self, x):
            low, high = self.value_range
            return (tf.cast(x, "float32") - low) * (2.0 / (high - low)) - 1.0

        def _with_label(self, x, y):
            return [x, tf.reshape(tf.cast(y, "int32"), (-1, 1))] if self.conditional else x

        def _d_step(self, real, y, step, replica, draw, scale):
            batch = tf.shape(real)[0]
            noise = tf.random.stateless_normal((batch, self.latent_dim), self._seed(step, replica, draw))
            with tf.GradientTape() as tape:
                fake = self.generator(self._with_label(noise, y), training=True)
                real_score = self.discriminator(self._with_label(real, y), training=True)
                fake_score = self.discriminator(self._with_label(fake, y), training=True)
                loss = d_loss_fn(self.loss_name, real_score, fake_score)
                if self.loss_name == "wgan_gp":
                    loss += self.gp_weight * self._penalty(real, fake, y, self._seed(step, replica, draw, 1))
                scaled = loss * scale
            variables = self.discriminator.trainable_variables
            self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
            return loss

        def _penalty(self, real, fake, y, seed):
            """Gulrajani et al. 2017: (|grad D(x)| - 1)^2 at random points between real and fake images."""
            alpha = tf.random.stateless_uniform((tf.shape(real)[0], 1, 1, 1), seed)
            between = real + alpha * (fake - real)
            with tf.GradientTape() as tape:
                tape.watch(between)
                score = self.discriminator(self._with_label(between, y), training=True)
            grad = tape.gradient(score, between)
            norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
            return tf.reduce_mean(tf.square(norm - 1.0))

        def train_step(self, data):
            x, y = data[0], data[1]
            real = self._real(x)
            context = tf.distribute.get_replica_context()
            replica = context.replica_id_in_sync_group
            # gradients are summed over replicas (the optimizer's all-reduce): each contributes its mean / N
            scale = 1.0 / context.num_replicas_in_sync
            step = self.optimizer.iterations
            d_loss = tf.constant(0.0)
            for draw in range(self.d_steps):
                d_loss = self._d_step(real, y, step, replica, draw, scale)
            noise = tf.random.stateless_normal((tf.shape(real)[0], self.latent_dim),
                                               self._seed(step, replica, self.d_steps))
            with tf.GradientTape() as tape:
                fake = self.generator(self._with_label(noise, y), training=True)
                g_loss = g_loss_fn(self.loss_name, self.discriminator(self._with_label(fake, y), training=True))
                scaled = g_loss * scale
            variables = self.generator.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
            if self.ema:
                for e, v in zip(self.ema_weights, self.generator.weights):
                    e.assign(self.ema * e + (1.0 - self.ema) * tf.cast(v, e.dtype))
            else:
                for e, v in zip(self.ema_weights, self.generator.weights):
                    e.assign(v)
            return self._log(d_loss, g_loss)

        def test_step(self, data):
            """The same losses on held-out real images and fixed noise, without updates."""
            x, y = data[0], data[1]
            real = self._real(x)
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            noise = tf.random.stateless_normal((tf.shape(real)[0], self.latent_dim), self._seed(-1, replica))
            fake = self.generator(self._with_label(noise, y), training=False)
            fake_score = self.discriminator(self._with_label(fake, y), training=False)
            real_score = self.discriminator(self._with_label(real, y), training=False)
            return self._log(d_loss_fn(self.loss_name, real_score, fake_score), g_loss_fn(self.loss_name, fake_score))

        def _log(self, d_loss, g_loss):
            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            self.loss_tracker.update_state(d_loss + g_loss)
            return {m.name: m.result() for m in self.metrics}

        # ---- the deliverable ----
        def averaged_generator(self):
            """The generator with the EMA weights, its tanh output mapped back onto the data's raw range."""
            sampler = self.__dict__.get("_sampler")
            if sampler is None:
                low, high = self.value_range
                clone = keras.models.clone_model(self.generator)
                image = keras.layers.Rescaling((high - low) / 2.0, offset=(high + low) / 2.0, name="to_raw_range",
                                               dtype="float32")(clone.outputs[0])
                sampler = keras.Model(clone.input, image, name="generator")
                object.__setattr__(self, "_sampler", sampler)  # not tracked: no variables of the GAN's own
            for target, e in zip(sampler.weights, self.ema_weights):
                target.assign(keras.ops.convert_to_numpy(e))
            return sampler

        def save(self, filepath, *args, **kwargs):
            """model.keras and checkpoints hold the averaged generator: what predict and export serve."""
            self.averaged_generator().save(filepath, *args, **kwargs)

    return GAN


def build_gan(cfg, info):
    """The GAN model of `cfg` for data `info`; call inside strategy.scope()."""
    import numpy as np

    shape = tuple(info.input_shape)
    if len(shape) != 3:
        raise ConfigError(f"task: gan generates images (height, width, channels); this data's examples have "
                          f"shape {list(shape)}")
    if cfg.model.conditional and not info.num_classes:
        raise ConfigError("model.conditional: true needs class labels; this data has none (a regression target)")
    value_range = info.value_range or ((0.0, 255.0) if np.dtype(info.input_dtype) == np.uint8 else (0.0, 1.0))
    options = cfg.gan or _default_options()
    return gan_class()(build_generator(cfg.model, shape, info.num_classes),
                       build_discriminator(cfg.model, shape, info.num_classes),
                       loss=options.loss, gp_weight=options.gp_weight, ema=options.ema,
                       d_steps=cfg.train.discriminator.steps if cfg.train.discriminator else 1, seed=cfg.seed,
                       value_range=value_range, num_classes=info.num_classes, conditional=cfg.model.conditional)


def _default_options():
    from runner.gan.config import GanOptions

    return GanOptions()
