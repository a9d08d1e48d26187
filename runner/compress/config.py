"""The `compress:` block: prune (magnitude pruning on a polynomial schedule) and quantize (Keras int8)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from runner.language.fields import NonNegInt, PositiveFloat, PositiveInt, Strict


class LayerPrune(Strict):
    sparsity: Optional[float] = Field(None, ge=0, lt=1, description="this layer's target; 0 leaves it dense")
    structured: Optional[Literal["2:4"]] = Field(
        None, description="2:4: keep the 2 largest of every 4 consecutive input weights (50% sparsity)")


class Prune(Strict):
    sparsity: float = Field(0.5, ge=0, lt=1, description="fraction of each pruned kernel set to zero at the end")
    start_epoch: float = Field(0.2, ge=0, description="where the ramp starts: a fraction of training if below 1, "
                                                      "else a whole epoch")
    end_epoch: float = Field(0.8, gt=0, description="where the target is reached: a fraction of training if "
                                                    "below 1, else a whole epoch")
    frequency: PositiveInt = Field(50, description="steps between mask updates during the ramp (taken at the "
                                                   "first steps_per_execution boundary at or after each)")
    structured: Optional[Literal["2:4"]] = Field(
        None, description="2:4: keep the 2 largest of every 4 consecutive input weights (50% sparsity, from "
                          "start_epoch on)")
    scope: Literal["global", "layer"] = Field(
        "global", description="global: one magnitude threshold across the pruned kernels, so `sparsity` is reached "
                              "overall and small sensitive layers keep more; layer: `sparsity` in every kernel")
    layers: dict[str, LayerPrune] = Field(
        default_factory=dict, description="per-layer overrides by name pattern (fnmatch, first match wins), "
                                          "e.g. {'dense_1': {sparsity: 0}}; by default every Conv/Dense kernel "
                                          "is pruned to `sparsity`")


class Quantize(Strict):
    mode: Literal["int8"] = Field("int8", description="Keras's model.quantize mode (Dense/EinsumDense kernels)")
    finetune_epochs: NonNegInt = Field(
        0, description="epochs of quantization-aware fine-tuning of the quantized model (the int8 kernels stay "
                       "frozen; the float layers learn around their rounding)")
    finetune_lr: PositiveFloat = Field(1e-4, description="Adam learning rate of the fine-tuning")


class Compress(Strict):
    prune: Optional[Prune] = Field(None, description="magnitude pruning during training; folded into the weights "
                                                     "at the end")
    quantize: Optional[Quantize] = Field(None, description="post-training quantization of the final model, "
                                                           "checked on the test split (model_int8.keras)")
