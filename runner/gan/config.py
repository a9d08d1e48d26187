"""The YAML of `task: gan`: model.{generator, discriminator, latent_dim, conditional}, train.discriminator, gan:."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from runner.language.fields import PositiveFloat, PositiveInt, Strict, UnitFloat, tagged_union
from runner.models import ARCHS
from runner.training.optimizers import OPTIMIZERS
from runner.training.schedules import SCHEDULES

Network = tagged_union(ARCHS, "arch", "arch")
_Optimizer = tagged_union(OPTIMIZERS, "name", "optimizer", bare_name=True)
_Schedule = tagged_union(SCHEDULES, "schedule", "schedule", also={"type": "number", "exclusiveMinimum": 0})

# the discriminator's adversarial loss and the generator's, by name (Goodfellow 2014; Lim & Ye 2017;
# Gulrajani et al. 2017); runner/gan/model.py implements them
LOSSES = ("non_saturating", "hinge", "wgan_gp")


def _network_shorthand(value):
    """`generator: {layers: [...]}` needs no `arch: layers`."""
    if isinstance(value, dict) and "layers" in value and "arch" not in value:
        return {"arch": "layers", **value}
    return value


class GanModel(Strict):
    generator: Network = Field(description="latent vector -> image: an arch (mlp, ...) or a `layers:` list whose "
                                           "output has height*width*channels values per example")
    discriminator: Network = Field(description="image -> one score: an arch or a `layers:` list ending in one "
                                               "unit")
    latent_dim: PositiveInt = Field(32, description="size of the generator's normal noise vector")
    conditional: bool = Field(False, description="class-conditional: the generator gets the one-hot class beside "
                                                 "the noise, the discriminator gets it as extra image channels")

    @model_validator(mode="before")
    @classmethod
    def _layers_shorthand(cls, data):
        if isinstance(data, dict):
            data = {**data, **{k: _network_shorthand(data[k]) for k in ("generator", "discriminator") if k in data}}
        return data


class DiscriminatorTrain(Strict):
    optimizer: _Optimizer = Field(default_factory=lambda: {"name": "adam"},
                                  description="the discriminator's optimizer (without train.discriminator: "
                                              "train.optimizer)")
    lr: _Schedule = Field(default_factory=lambda: {"schedule": "constant", "base": 1e-3},
                          description="the discriminator's learning-rate schedule (without train.discriminator: "
                                      "train.lr)")
    steps: PositiveInt = Field(1, description="discriminator updates per batch (each with fresh noise)")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data):
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("optimizer"), str):
                data["optimizer"] = {"name": data["optimizer"]}
            if isinstance(data.get("lr"), (int, float)) and not isinstance(data.get("lr"), bool):
                data["lr"] = {"schedule": "constant", "base": data["lr"]}
        return data


class Fid(Strict):
    features: str = Field(description="the classifier whose penultimate layer is the feature space: a run "
                                      "directory, a .keras file, a .yaml spec (trained first, in its own run), "
                                      "or inception_v3 (Keras's ImageNet weights, from the Keras cache only)")
    samples: PositiveInt = Field(1000, description="generated images (and at most this many real training images)")


class GanOptions(Strict):
    loss: Literal[LOSSES] = Field("non_saturating", description="non_saturating | hinge | wgan_gp")
    gp_weight: PositiveFloat = Field(10.0, description="wgan_gp: weight of the gradient penalty")
    ema: UnitFloat = Field(0.999, description="momentum of the generator's weight average (0: no average); "
                                              "samples, FID and model.keras use the average")
    grid: PositiveInt = Field(8, description="the epoch sample grid is grid x grid images of fixed noise")
    fid: Optional[Fid] = Field(None, description="FID at the end (gan.fid) and of the untrained generator "
                                                 "(gan.fid_initial)")


def gan_checks(cfg):
    """(key path, rule) for the cross-field rules of `task: gan`, and for GAN keys without it."""
    is_gan_model = isinstance(cfg.model, GanModel)
    if cfg.task != "gan":
        if is_gan_model:
            yield ("model",), ("generator and discriminator are the model of `task: gan`; received task "
                               f"{cfg.task!r}; set task: gan, or give an arch")
        if cfg.gan is not None:
            yield ("gan",), f"applies to task: gan only; received task {cfg.task!r}"
        if cfg.train.discriminator is not None:
            yield ("train", "discriminator"), f"applies to task: gan only; received task {cfg.task!r}"
        return
    if not is_gan_model:
        yield ("model",), (f"task: gan needs model.generator and model.discriminator; received an arch "
                           f"({cfg.model.arch!r}); see docs/gan.md")
        return
    if cfg.train.loss.name != "auto":
        yield ("train", "loss"), (f"task: gan takes its loss from gan.loss ({', '.join(LOSSES)}); received "
                                  f"{cfg.train.loss.name!r}; remove train.loss")
    if cfg.train.metrics:
        yield ("train", "metrics"), ("task: gan logs d_loss and g_loss; its quality metric is gan.fid; received "
                                     f"{cfg.train.metrics}; remove train.metrics")
    if cfg.train.class_weight is not None:
        yield ("train", "class_weight"), "task: gan weighs no classes; remove train.class_weight"
    if cfg.distill is not None:
        yield ("distill",), "task: gan has no distillation; remove distill"
    if cfg.data.batch_augment:
        yield ("data", "batch_augment"), "mixup and cutmix mix labels; task: gan has none to mix"
    if cfg.data.kfold is not None:
        yield ("data", "kfold"), "k-fold cross-validation scores a predictor on held-out folds; remove it for task: gan"
    if cfg.data.preprocess:
        yield ("data", "preprocess"), ("task: gan maps the data's raw value range onto the generator's [-1, 1] "
                                       "itself; remove data.preprocess")
    for path, optimizer in ((("train", "optimizer"), cfg.train.optimizer),
                            (("train", "discriminator", "optimizer"), getattr(cfg.train.discriminator, "optimizer",
                                                                             None))):
        if optimizer is not None and optimizer.use_ema:
            yield (*path, "use_ema"), "task: gan averages the generator itself (gan.ema); remove use_ema"
    if cfg.data.source == "sklearn" and cfg.data.name != "digits":
        yield ("data", "name"), f"task: gan generates images; received the table {cfg.data.name!r}; use digits"
