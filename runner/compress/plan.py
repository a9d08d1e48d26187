"""What pruning does to each Conv/Dense kernel, decided from the spec and the kernel shapes alone (no TensorFlow):
shared by the run (prune.py) and by the checks of `dlrun validate --deep` (checks.py)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

GROUP, KEEP = 4, 2  # "2:4": keep 2 of every 4 consecutive input weights


@dataclass
class LayerPlan:
    """What happens to one Conv/Dense kernel: its name, shape, final sparsity, whether 2:4 structured, and whether
    it shares the global threshold (then `sparsity` is reached across all such kernels together)."""

    name: str
    shape: tuple
    sparsity: float
    structured: bool
    pooled: bool = False

    def final_sparsity(self) -> float:
        return KEEP / GROUP if self.structured else self.sparsity


def input_axis(shape) -> int:
    """The axis of a kernel that runs over input channels: 0 for Dense (in, out), -2 for Conv (..., in, out)."""
    return 0 if len(shape) == 2 else len(shape) - 2


def structured_fits(shape) -> bool:
    return shape[input_axis(shape)] % GROUP == 0


def plan(prune, layers: list[tuple[str, tuple]]) -> list[LayerPlan]:
    """Each (name, kernel shape) with its settings: the first matching `layers` pattern overrides the defaults."""
    plans = []
    for name, shape in layers:
        override = next((o for pattern, o in prune.layers.items() if fnmatch.fnmatchcase(name, pattern)), None)
        sparsity, structured, own = prune.sparsity, prune.structured, False
        if override is not None:
            own = override.sparsity is not None
            sparsity = override.sparsity if override.sparsity is not None else sparsity
            structured = override.structured if "structured" in override.model_fields_set else structured
            if override.sparsity == 0 and "structured" not in override.model_fields_set:
                structured = None  # sparsity 0 leaves the layer dense
        structured = structured == "2:4"
        pooled = prune.scope == "global" and not structured and not own and sparsity > 0
        plans.append(LayerPlan(name, tuple(shape), float(sparsity), structured, pooled))
    return plans
