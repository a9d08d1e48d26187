"""Config pipeline: YAML -> extends -> --set -> validate -> frozen Config."""

from __future__ import annotations

from runner.language.load import Loaded, load_spec
from runner.language.yaml12 import dump_yaml


def load_config(path, overrides=()):
    """(Config, Loaded) for a spec file and its `--set` overrides; raises ConfigError with every problem."""
    from runner.spec.trials import validate_with_sweep

    loaded = load_spec(path, overrides)
    return validate_with_sweep(loaded), loaded


def render(cfg) -> str:
    """The fully resolved spec as YAML: what `config.yaml` in a run directory holds."""
    return dump_yaml(cfg.model_dump(mode="json"))


__all__ = ["Loaded", "load_config", "load_spec", "render"]
