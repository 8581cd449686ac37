"""The training configuration: everything that decides the weights, in one frozen value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from digitguard.models.architectures import DEFAULT_ARCHITECTURE


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = DEFAULT_ARCHITECTURE
    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    warmup_fraction: float = 0.05
    seed: int = 0
    validation_size: int = 5000
    augment: bool = True
    train_limit: int | None = None  # use only the first N training images (quick runs, tests)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be positive")
        if self.validation_size < 0:
            raise ValueError("validation_size must not be negative")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError("warmup_fraction must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        return cls(**values)
