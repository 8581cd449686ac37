"""Every error digitguard raises on purpose.

Each class carries the process exit status the CLI uses for it, so the one
``except DigitguardError`` at the edge can turn any refusal into a clear
message and a documented exit code.
"""

from __future__ import annotations


class DigitguardError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class DataError(DigitguardError):
    """A data file broke a rule (format, hash, consistency). Exit status 2."""

    exit_code = 2

    def __init__(self, path: object, rule: str) -> None:
        self.path = str(path)
        self.rule = rule
        super().__init__(f"{self.path}: {rule}")


class IdxFormatError(DataError):
    """The file is not a well-formed IDX file of the expected kind."""


class HashMismatchError(DataError):
    """The file's SHA-256 differs from the pinned value."""


class DataConsistencyError(DataError):
    """Two files that belong together disagree (e.g. image and label counts)."""


class DownloadError(DataError):
    """No mirror delivered a file with the pinned hash."""


class ModelError(DigitguardError):
    """A model artifact was refused. Exit status 3."""

    exit_code = 3


class SignatureError(ModelError):
    """The signature is missing, invalid, or does not cover the files as they are."""


class UntrustedKeyError(SignatureError):
    """The signature was made by a key that is not in the trust store."""


class ArtifactLayoutError(ModelError):
    """The model directory holds missing, extra or unexpected files."""


class ManifestError(ModelError):
    """The manifest is malformed or disagrees with the weights or architecture."""


class WeightsError(ModelError):
    """The weights are not safetensors, or have wrong names, shapes or non-finite values."""


class UnknownArchitectureError(ModelError):
    """The architecture name is not in the registry."""


class SigningKeyError(DigitguardError):
    """A signing key could not be created or read. Exit status 2."""

    exit_code = 2


class TrainingError(DigitguardError):
    """Training could not start or resume (bad checkpoint, existing output...)."""

    exit_code = 2


class InputError(DigitguardError):
    """An input to the model was refused. ``code`` is the stable API error code."""

    exit_code = 2
    code = "invalid_input"


class ImageDecodeError(InputError):
    """Bytes that are not a bounded, decodable PNG."""

    code = "invalid_png"


class NothingDrawnError(InputError):
    """An empty or near-empty drawing: there is no digit to recognise."""

    code = "nothing_drawn"


class InvalidPixelsError(InputError):
    """A pixel array of the wrong shape, type or range."""

    code = "invalid_pixels"


class AttackError(DigitguardError):
    """An attack was asked for with an unknown name or invalid settings. Exit status 2."""

    exit_code = 2


class UnknownAttackError(AttackError):
    """The attack name is not in the registry."""


class InvalidEpsilonError(AttackError):
    """A perturbation budget that is unparsable or outside (0, 1]."""


class AttackCheckError(DigitguardError):
    """A robustness measurement failed one of its own checks. Exit status 1."""

    exit_code = 1


class PerturbationBudgetError(AttackCheckError):
    """An attack returned images outside its ε-ball or outside [0, 1]: its numbers would be meaningless."""


class RefereeDisagreementError(AttackCheckError):
    """A native attack and ART's implementation of it disagree by more than the allowed margin."""


class TLSConfigError(DigitguardError):
    """The TLS certificate or key cannot be used (unreadable, or not a matching pair). Exit status 2."""

    exit_code = 2


class SupplyChainError(DigitguardError):
    """The supply-chain audit cannot read what it audits against. Exit status 2."""

    exit_code = 2


class LockFileError(SupplyChainError):
    """The lock file is not an exact, hash-pinned requirements file."""


class AdvisoryDataError(SupplyChainError):
    """The vulnerability database is missing, malformed or not OSV."""
