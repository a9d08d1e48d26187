"""DataInfo: what the rest of the run needs to know about the data, without touching it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class DataInfo:
    input_shape: tuple
    input_dtype: str = "float32"
    task: str = "classification"  # classification | regression
    num_classes: int | None = None
    class_names: list | None = None
    cardinality: dict = field(default_factory=dict)  # examples per split
    value_range: tuple | None = None  # raw input range, for augmentations that clip to it
    skipped_corrupt: int = 0  # unreadable input files left out (data.skip_corrupt); lands in env.json

    def to_json(self) -> dict:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["value_range"] = list(self.value_range) if self.value_range else None
        return out
