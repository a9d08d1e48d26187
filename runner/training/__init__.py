"""Optimizers, LR schedules, losses and metrics, each a registry keyed by its YAML name."""
