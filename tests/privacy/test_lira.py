"""LiRA: the shadow bookkeeping, the per-candidate likelihood ratio, and a memorising model caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from digitguard.privacy.lira import inclusion_matrix, lira_scores, run_lira
from digitguard.privacy.membership import audit_scores
from digitguard.training.config import TrainConfig
from digitguard.training.fit import fit
from tests.conftest import KeyPair
from tests.privacy.test_membership import one_thread  # noqa: F401  (fixture)
from tests.test_detector_cli import run


def test_every_candidate_is_in_for_exactly_half_of_the_shadows() -> None:
    inclusion = inclusion_matrix(8, 1000, torch.Generator().manual_seed(0))
    assert inclusion.shape == (8, 1000) and (inclusion.sum(0) == 4).all()
    assert 0.45 < inclusion[0].mean() < 0.55  # each shadow trains on about half the pool
    for bad in (2, 5):
        with pytest.raises(ValueError, match="even number of at least 4"):
            inclusion_matrix(bad, 10, torch.Generator())


def _synthetic(member_shift: float, difficulty_spread: float, n: int = 4000, shadows: int = 16):
    """φ = per-candidate difficulty + noise, + ``member_shift`` when the model trained on it."""
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, difficulty_spread, n)
    inclusion = inclusion_matrix(shadows, n, torch.Generator().manual_seed(1))
    shadow_phi = difficulty + rng.normal(0, 1, (shadows, n)) + member_shift * inclusion
    is_member = np.arange(n) < n // 2
    target_phi = difficulty + rng.normal(0, 1, n) + member_shift * is_member
    return target_phi, shadow_phi, inclusion, is_member


def test_no_membership_signal_gives_chance() -> None:
    target, shadows, inclusion, is_member = _synthetic(member_shift=0.0, difficulty_spread=3.0)
    scores = lira_scores(target, shadows, inclusion)
    for side in (scores.online, scores.offline):
        result = audit_scores(side[is_member], side[~is_member])
        assert abs(result.auc - 0.5) < 0.03 and result.tpr_at_0_1pct_fpr < 0.01


def test_per_candidate_calibration_finds_what_a_global_threshold_misses() -> None:
    # Easy and hard digits differ far more than members and non-members do: a threshold on the
    # target's confidence alone is near chance, the likelihood ratio is not.
    target, shadows, inclusion, is_member = _synthetic(member_shift=1.5, difficulty_spread=5.0)
    scores = lira_scores(target, shadows, inclusion)
    global_threshold = audit_scores(target[is_member], target[~is_member])
    online = audit_scores(scores.online[is_member], scores.online[~is_member])
    assert global_threshold.auc < 0.62 < 0.8 < online.auc
    assert online.tpr_at_1pct_fpr > 5 * global_threshold.tpr_at_1pct_fpr


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        lira_scores(np.zeros(3), np.zeros((4, 2)), np.ones((4, 2), dtype=bool))


TINY = TrainConfig(epochs=40, batch_size=32, augment=False, validation_size=0, learning_rate=2e-3)


def test_a_model_that_memorised_its_members_is_caught_and_one_that_never_saw_them_is_not(
    mnist_test_digits,
    one_thread,  # noqa: F811
) -> None:
    floats, labels = mnist_test_digits
    images = np.round(floats * 255).astype(np.uint8)
    pool_x = torch.from_numpy(images[:120].copy())
    pool_y = torch.from_numpy(labels[:120].astype(np.int64))
    is_member = np.arange(120) < 60
    empty_x, empty_y = pool_x[:0], pool_y[:0]

    def shadow(index: int, x: torch.Tensor, y: torch.Tensor):
        return fit(TrainConfig(**{**TINY.to_dict(), "seed": 10 + index}), x, y)

    memorised = fit(TINY, pool_x[:60], pool_y[:60])
    caught = run_lira(memorised, pool_x, pool_y, is_member, empty_x, empty_y, shadow, shadows=4, seed=0)
    assert caught.online.auc > 0.75  # measured 0.86 (loss threshold on the same model: 0.84)
    outsider = fit(
        TINY, torch.from_numpy(images[200:260].copy()), torch.from_numpy(labels[200:260].astype(np.int64))
    )
    clean = run_lira(outsider, pool_x, pool_y, is_member, empty_x, empty_y, shadow, shadows=4, seed=0)
    assert 0.3 < clean.online.auc < 0.7


def test_the_command_attacks_a_signed_model_with_shadows_of_its_recipe(
    small_model_dir: Path, trusted_key: KeyPair, mnist_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lira"
    args = ["--pool", "60", "--filler", "40", "--shadows", "4", "--shadow-epochs", "1"]
    args += ["--out", str(out), "--trust", str(trusted_key.trust_dir), "--data-dir", str(mnist_dir)]
    assert run("privacy", "lira", str(small_model_dir), *args) == 0
    document = json.loads((out / "lira-result.json").read_text())
    assert document["attack"] == "lira" and document["shadows"] == 4
    assert document["online"]["members"] == 30 and document["offline"]["non_members"] == 30
    assert document["shadow_recipe"]["epochs"] == 1
    assert (out / "lira-roc.png").read_bytes().startswith(b"\x89PNG")
    assert run("privacy", "lira", str(small_model_dir), "--shadows", "5", *args[6:]) == 2
