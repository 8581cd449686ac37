from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from digitguard.models.architectures import build_model
from digitguard.models.signing import generate_keypair

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(
    os.environ.get("DIGITGUARD_TEST_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "mnist")
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests decide their trust and data explicitly; the developer's environment must not leak in.
    for name in ("DIGITGUARD_TRUST_DIRS", "DIGITGUARD_SIGNING_KEY", "DIGITGUARD_MNIST_MIRRORS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _record_source_hashes(record_testsuite_property) -> None:
    """The JUnit report names the code it ran on, so `digitguard threats` can tell stale results."""
    from digitguard.threatmodel.junit import SOURCES_PROPERTY, fingerprint_tree

    record_testsuite_property(SOURCES_PROPERTY, json.dumps(fingerprint_tree(REPO_ROOT), sort_keys=True))


@pytest.fixture
def mnist_dir() -> Path:
    if not (SHARED_MNIST / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST} (set DIGITGUARD_TEST_DATA_DIR)")
    return SHARED_MNIST


class KeyPair:
    def __init__(self, directory: Path, name: str) -> None:
        self.private = directory / f"{name}.pem"
        self.trust_dir = directory / f"{name}-trust"
        self.public = self.trust_dir / f"{name}.pub"
        self.key_id = generate_keypair(self.private, self.public)


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, KeyPair]:
    """A trusted key pair and a second, untrusted one."""
    directory = tmp_path_factory.mktemp("keys")
    return KeyPair(directory, "trusted"), KeyPair(directory, "other")


@pytest.fixture(scope="session")
def trusted_key(signing_keys: tuple[KeyPair, KeyPair]) -> KeyPair:
    return signing_keys[0]


@pytest.fixture(scope="session")
def untrusted_key(signing_keys: tuple[KeyPair, KeyPair]) -> KeyPair:
    return signing_keys[1]


@pytest.fixture
def seed_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("seed-cnn")


@pytest.fixture
def small_model_dir(tmp_path: Path, trusted_key: KeyPair) -> Path:
    """An untrained seed CNN, signed, whose manifest says it held out 200 validation digits (seed 3)."""
    from digitguard.models.artifact import write_signed_artifact
    from tests.models.test_artifact import manifest_for

    torch.manual_seed(0)
    model = build_model("seed-cnn")
    training = {"seed": 3, "validation_size": 200}
    return write_signed_artifact(
        tmp_path / "model", model, manifest_for(model, training=training), trusted_key.private
    )


@pytest.fixture(scope="session")
def mnist_test_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test digits as float32 in [0, 1] ``(n, 28, 28)``, and their labels."""
    from digitguard.data import mnist

    if not (Path(SHARED_MNIST) / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    test = mnist.load(SHARED_MNIST).test
    return test.images.astype(np.float32) / 255.0, test.labels.astype(int)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``digitguard ARGS`` in process, as the console script runs it: (exit status, stdout, stderr)."""
    from digitguard.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
