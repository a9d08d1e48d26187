"""TASKS: one entry per task; a task owns its label encoding, the losses and metrics it accepts, its artifacts
and what eval, predict and export do. Each task module registers itself here with its facts."""

from __future__ import annotations

from runner.kernel.registry import Registry

TASKS = Registry("task")
