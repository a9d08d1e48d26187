"""The split grammar (`train`, `train[:90%]`, `[80%:90%]`) and seeded stratified slicing of a single pool."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy stays out of `dlrun validate`, which imports this module for the split grammar
    import numpy as np

SPLIT_RE = re.compile(r"^(?P<base>[A-Za-z_][A-Za-z0-9_]*)?(?:\[(?P<start>-?\d+%?)?:(?P<end>-?\d+%?)?\])?$")


def check_split(text: str, pool: bool) -> str | None:
    """None if `text` is a valid split string, else what is wrong with it."""
    m = SPLIT_RE.match(text)
    if not m or text == "":
        return "not a split; write e.g. 'train', 'train[:90%]' or '[80%:90%]'"
    if pool and (m["base"] or "[" not in text):
        return "this source has a single pool of examples; slice it like '[:80%]', '[80%:90%]' or '[90%:]'"
    if not pool and not m["base"]:
        return "name the split to slice, such as 'train[:90%]'"
    for bound in (m["start"], m["end"]):
        if bound and bound.endswith("%") and not 0 <= int(bound[:-1]) <= 100:
            return "percentages must lie in 0..100"
    return None


def _bound(text: str | None, n: int, default: int) -> int:
    if text is None:
        return default
    if text.endswith("%"):
        return int(round(n * int(text[:-1]) / 100))
    value = int(text)
    return value + n if value < 0 else min(value, n)


def slice_bounds(text: str, n: int) -> tuple[int, int]:
    m = SPLIT_RE.match(text)
    return _bound(m["start"], n, 0), _bound(m["end"], n, n)


def pool_order(y: np.ndarray, seed: int, stratified: bool) -> np.ndarray:
    """A seeded order of the pool in which every contiguous percent slice keeps the class proportions."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(y)
    if not stratified:
        return rng.permutation(n)
    rank = np.empty(n)
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        # spread each class evenly over [0, 1): member k of n_c sits at (k + u) / n_c
        rank[idx] = (np.arange(len(idx)) + rng.uniform()) / len(idx)
    return np.lexsort((rng.permutation(n), rank))
