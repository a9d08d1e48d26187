"""Callbacks: registered by their key under `callbacks:`; unlisted ones keep their defaults, null disables."""

from runner.callbacks.registry import CALLBACKS, CallbackContext, monitor_mode
from runner.callbacks import checkpoint, early_stopping, tensorboard  # noqa: F401  (register)
from runner.callbacks import backup  # noqa: F401  (register)
from runner.callbacks import reduce_on_plateau  # noqa: F401  (register)
from runner.callbacks import custom  # noqa: F401  (register; last: the user's callbacks see the others' logs)


def build_callbacks(cfg_callbacks, ctx: CallbackContext) -> list:
    out = []
    for entry in CALLBACKS.entries():
        block = getattr(cfg_callbacks, entry.name)
        if block is not None:
            out += entry.builder(block, ctx)
    return out


__all__ = ["CALLBACKS", "CallbackContext", "build_callbacks", "monitor_mode"]
