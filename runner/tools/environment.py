"""`dlrun env`: what a spec with the default `distribute:` block would get on this machine."""

from __future__ import annotations

from pathlib import Path

from runner.distribute.environment import environment


def current_machine() -> dict:
    """`dlrun env`: the environment a spec with the default `distribute:` block would get here."""
    from runner.spec.schema import Distribute
    from runner.distribute.strategy import get_strategy

    return environment(Path.cwd(), get_strategy(Distribute()))
