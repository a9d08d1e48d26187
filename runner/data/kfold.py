"""data.kfold: k-fold cross-validation; the folds of the training pool, one run per fold, mean and std per metric."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from runner.language.fields import NonNegInt, Strict

SPLITS = ("train", "validation", "test")


class KFold(Strict):
    k: int = Field(5, ge=2, le=100, description="folds: k models, each validated on one fold and trained on the rest")
    stratified: bool = Field(True, description="keep the class proportions in every fold (classification)")
    fold: Optional[NonNegInt] = Field(
        None, description="set by dlrun in each fold's own run: the held-out fold (0-based); null trains all k")

    @model_validator(mode="after")
    def _fold_in_range(self):
        if self.fold is not None and self.fold >= self.k:
            raise PydanticCustomError("kfold", "must be < k ({k}); received {fold}",
                                      {"k": self.k, "fold": self.fold, "subpath": "fold"})
        return self


def check_kfold(kfold: KFold | None, pool: bool) -> KFold | None:
    """Folds are slices of one pool of examples: sources that name their splits (tfds) have none."""
    if kfold is not None and not pool:
        raise PydanticCustomError("kfold", "needs a source with a single pool of examples (sklearn, numpy, csv, "
                                           "image_folder); remove data.kfold for this source")
    return kfold


def fold_indices(y, kfold: KFold, seed: int, task: str) -> list:
    """[(train indices, held-out indices)] of the pool labelled `y`, seeded; stratified for classification."""
    import numpy as np
    from sklearn.model_selection import KFold as Splitter, StratifiedKFold

    from runner.kernel.errors import DataError

    stratify = kfold.stratified and task == "classification"
    splitter = (StratifiedKFold if stratify else Splitter)(n_splits=kfold.k, shuffle=True, random_state=seed)
    try:
        return list(splitter.split(np.zeros((len(y), 1)), y))
    except ValueError as e:
        raise DataError(f"data.kfold: cannot make {kfold.k} folds of the {len(y)} training examples: {e}") from None


def hold_out(arrays: dict, kfold: KFold, task: str, seed: int) -> dict:
    """The splits of fold `kfold.fold`: the training pool (train plus validation split) minus the fold, and the
    fold as validation; the test split is untouched."""
    import numpy as np

    parts = [arrays[name] for name in ("train", "validation") if name in arrays]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    train, held = fold_indices(y, kfold, seed, task)[kfold.fold]
    return {**arrays, "train": (x[train], y[train]), "validation": (x[held], y[held])}
