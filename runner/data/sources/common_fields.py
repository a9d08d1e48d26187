"""Config fields every data source shares: splits, batching, caching and the preprocessing steps."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional, Union

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from runner.language.fields import PositiveInt, Strict, step_list
from runner.data.augment import AUGMENTATIONS, BATCH_AUGMENTATIONS
from runner.data.kfold import KFold, check_kfold
from runner.data.preprocess import PREPROCESS
from runner.data.splits import check_split
from runner.tasks import TASKS

Task = Literal[("auto", *TASKS.where(data_task=True))]


class Splits(Strict):
    """A `splits` map is the whole set: a split it leaves out does not exist (the defaults fill an absent map only)."""

    train: str = Field(description="the training split")
    validation: Optional[str] = Field(None, description="the validation split; left out or null: none")
    test: Optional[str] = Field(None, description="the test split; left out or null: none")


def default_splits(train: str, validation: str, test: str):
    """The splits of a spec without a `splits` map."""
    return Field(default_factory=lambda: Splits(train=train, validation=validation, test=test),
                 description="split strings (see the split grammar); a map names every split there is: "
                             f"one it leaves out does not exist; default {{train: {train!r}, "
                             f"validation: {validation!r}, test: {test!r}}}")


class DataCommon(Strict):
    POOL: ClassVar[bool] = False  # single-pool sources slice '[a%:b%]'; others name their splits

    task: Task = Field("auto", description="what the labels are: auto infers it from them (integer class ids: "
                                           "classification, floats: regression, masks the size of the image: "
                                           "segmentation); a task name forces it")
    splits: Splits = default_splits("[:80%]", "[80%:90%]", "[90%:]")
    shuffle_split: bool = Field(True, description="seeded stratified shuffle of a single pool before slicing")
    batch_size: PositiveInt = Field(128, description="GLOBAL batch size, split across replicas")
    shuffle_buffer: PositiveInt = Field(10000, description="shuffle buffer of the training split")
    cache: Union[bool, str] = Field(True, description="cache in memory (true), in a file (a path), or not")
    preprocess: step_list(PREPROCESS, "preprocessing step") = Field(
        default_factory=list, description=f"steps in the model: {', '.join(PREPROCESS.names())} (exported with it)")
    augment: step_list(AUGMENTATIONS, "augmentation") = Field(
        default_factory=list, description="per-example augmentations, training split only")
    batch_augment: step_list(BATCH_AUGMENTATIONS, "batch augmentation") = Field(
        default_factory=list, description="batch-level augmentations (mixup, cutmix), training split only")
    kfold: Optional[KFold] = Field(None, description="k-fold cross-validation on the train and validation splits: "
                                                     "{k: 5, stratified: true}; null trains one model")

    @field_validator("kfold")
    @classmethod
    def _kfold(cls, kfold):
        return check_kfold(kfold, cls.POOL)

    @field_validator("splits")
    @classmethod
    def _splits(cls, splits: Splits):
        for name in ("train", "validation", "test"):
            text = getattr(splits, name)
            if text is not None and (problem := check_split(text, cls.POOL)):
                raise PydanticCustomError("split", "{problem}; received {value!r}",
                                          {"problem": problem, "value": text, "subpath": name})
        return splits
