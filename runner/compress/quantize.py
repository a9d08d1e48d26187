"""Post-training quantization through Keras's own model.quantize, checked on the test split, with optional
quantization-aware fine-tuning of the quantized model."""

from __future__ import annotations

import warnings


def quantize_saved(quantize, model_file, out_file, test_ds, train_ds, steps_per_epoch: int) -> dict:
    """Quantize the model saved at `model_file` into `out_file`; the float and quantized test metrics."""
    import keras

    from runner.kernel import run_dir as rd
    from runner.training.compile_options import carry_optimizer_state

    model = keras.saving.load_model(model_file)
    float_optimizer = model.optimizer
    before = _evaluate(model, test_ds)
    with warnings.catch_warnings():  # one warning per layer Keras does not quantize (Conv2D, Flatten, ...)
        warnings.filterwarnings("ignore", message="Layer .* does not have a `quantize` method")
        model.quantize(quantize.mode)
    quantized = [layer.name for layer in model._flatten_layers(include_self=False)
                 if getattr(layer, "quantization_mode", None) == quantize.mode]
    record = {"mode": quantize.mode, "layers": quantized, "float_test": before, "test": _evaluate(model, test_ds)}
    if quantize.finetune_epochs:
        # Keras trains a quantized model with its int8 kernels frozen (their gradient passes straight through
        # to the inputs): the float layers and biases learn to make up for the rounding
        optimizer = keras.optimizers.serialize(keras.optimizers.Adam(quantize.finetune_lr))
        model.compile_from_config({**model.get_compile_config(), "optimizer": optimizer})  # same loss, metrics
        # shuffle=False: the training stream is shuffled by the pipeline (Keras's default only warns on a Dataset)
        model.fit(train_ds, epochs=quantize.finetune_epochs, steps_per_epoch=steps_per_epoch, verbose=0,
                  shuffle=False)
        record.update(finetune_epochs=quantize.finetune_epochs, post_training_test=record["test"],
                      test=_evaluate(model, test_ds))
    else:  # int8 kernels are no longer trainable: an optimizer for the variables that still are
        model.compile_from_config(model.get_compile_config())
        carry_optimizer_state(float_optimizer, model)
    rd.atomic_save(out_file, model.save)
    return record


def _evaluate(model, ds) -> dict | None:
    if ds is None:
        return None
    return {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
