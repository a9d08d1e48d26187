"""Hyper-parameter sweeps on Optuna: the `sweep:` block, the study loop, and best.yaml."""
