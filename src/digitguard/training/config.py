"""The training configuration: everything that decides the weights, in one frozen value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from digitguard.models.architectures import DEFAULT_ARCHITECTURE, NOT_A_DIGIT_ARCHITECTURES

if TYPE_CHECKING:
    from digitguard.training.adversarial import AdversarialSettings
    from digitguard.training.private import PrivacyBudget


ADVERSARIAL_FIELDS = frozenset(
    {
        "adversarial",
        "eps",
        "adversarial_steps",
        "trades_beta",
        "eps_ramp_epochs",
        "robust_eval_size",
        "robust_eval_steps",
        "early_stop_patience",
        "collapse_drop",
    }
)
AUGMENT_STYLES = ("affine", "drawing")
PRECISIONS = ("fp32", "bf16")
# Settings added later, left out of the record at their default so earlier runs' records still match.
LATER_DEFAULTS = {"augment_style": "affine", "precision": "fp32", "junk_fraction": 0.0}
PRIVACY_FIELDS = frozenset({"dp", "target_epsilon", "target_delta", "max_grad_norm"})


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
    # "affine" (small random affine moves) or "drawing" (half of every batch re-drawn the way people
    # draw: digitguard.data.drawing; the other half affine).
    augment_style: str = "affine"
    # "bf16" trains under CPU autocast with bfloat16 and channels_last (about 2× faster here);
    # the weights stay float32 and the model is served and attacked in float32.
    precision: str = "fp32"
    # Synthetic non-digits (digitguard.data.junk, training families only) added to the training set
    # as class 10, this many per training digit: the served decision's gate model.
    junk_fraction: float = 0.0
    train_limit: int | None = None  # use only the first N training images (quick runs, tests)
    # Adversarial training (digitguard.training.adversarial); None trains on clean images only.
    adversarial: str | None = None  # "fgsm-rs", "pgd" or "trades"
    eps: float = 0.3
    adversarial_steps: int = 10
    trades_beta: float = 6.0
    eps_ramp_epochs: int = 0
    # Early stopping on held-out PGD accuracy (adversarial runs only).
    robust_eval_size: int = 1000
    robust_eval_steps: int = 20
    early_stop_patience: int = 3
    collapse_drop: float = 0.2  # stop at once when PGD accuracy falls this far below its best
    # Differentially private training (digitguard.training.private): DP-SGD, SGD with momentum at a
    # constant learning_rate, no augmentation, no adversarial objective.
    dp: bool = False
    target_epsilon: float = 3.0
    target_delta: float = 1e-5
    max_grad_norm: float = 0.1
    # Fine-tuning: start from the weights of a verified model with this weights SHA-256 (None: from scratch).
    init_from_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.augment_style not in AUGMENT_STYLES:
            raise ValueError(f"augment_style must be one of {AUGMENT_STYLES}, not {self.augment_style!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if not 0 <= self.junk_fraction <= 1:
            raise ValueError("junk_fraction must be in [0, 1]")
        if self.junk_fraction > 0 and self.architecture not in NOT_A_DIGIT_ARCHITECTURES:
            raise ValueError(
                f"junk_fraction needs an architecture with a not-a-digit class "
                f"({', '.join(sorted(NOT_A_DIGIT_ARCHITECTURES))}), not {self.architecture!r}"
            )
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
        if self.adversarial is not None:
            self.adversarial_settings()  # raises AdversarialConfigError (a ValueError) naming the rule
            if self.robust_eval_size < 1 or self.robust_eval_steps < 1 or self.early_stop_patience < 1:
                raise ValueError("robust_eval_size, robust_eval_steps and early_stop_patience must be >= 1")
            if not 0 < self.collapse_drop <= 1:
                raise ValueError("collapse_drop must be in (0, 1]")
        if self.dp:
            self.privacy_budget()  # raises PrivacyConfigError (a ValueError) naming the rule
            if self.adversarial is not None:
                raise ValueError("--dp and --adversarial cannot be combined")
            if self.augment:
                raise ValueError("DP training does not augment: pass --no-augment")

    def adversarial_settings(self) -> AdversarialSettings | None:
        if self.adversarial is None:
            return None
        from digitguard.training.adversarial import AdversarialSettings

        return AdversarialSettings(
            self.adversarial, self.eps, self.adversarial_steps, self.trades_beta, self.eps_ramp_epochs
        )

    def privacy_budget(self) -> PrivacyBudget | None:
        if not self.dp:
            return None
        from digitguard.training.private import PrivacyBudget

        return PrivacyBudget(self.target_epsilon, self.target_delta, self.max_grad_norm)

    def to_dict(self) -> dict[str, Any]:
        """Every setting; a run leaves out the adversarial and DP ones it does not use (they decide
        nothing there), so manifests and checkpoints of earlier runs stay comparable."""
        values = dataclasses.asdict(self)
        if self.adversarial is None:
            values = {k: v for k, v in values.items() if k not in ADVERSARIAL_FIELDS}
        if not self.dp:
            values = {k: v for k, v in values.items() if k not in PRIVACY_FIELDS}
        if self.init_from_sha256 is None:
            del values["init_from_sha256"]
        for name, default in LATER_DEFAULTS.items():
            if values[name] == default:
                del values[name]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        return cls(**values)
