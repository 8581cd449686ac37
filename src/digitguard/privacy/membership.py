"""Membership inference by loss threshold — an audit of how much a model reveals its training set.

Yeom et al., "Privacy Risk in Machine Learning", CSF 2018: a model's loss is lower on the samples
it was trained on. The attacker guesses "member" when a sample's loss is below a threshold;
sweeping the threshold gives a ROC curve over a balanced set of members (training digits the
model saw) and non-members (test digits it never saw). Reported, as Carlini et al. ("Membership
Inference Attacks From First Principles", S&P 2022) insist: the ROC AUC, the membership
advantage (max TPR − FPR) and — the number that matters — the true-positive rate at a 0.1%
false-positive rate. Pure functions over per-sample losses; no files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def per_sample_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> np.ndarray:
    """Cross-entropy of each image ``(n, 1, 28, 28)`` under ``model`` (no gradients).

    In float64: in float32 a confident answer's loss rounds to exactly 0, and thousands of members
    and non-members tied at 0 would hide the low-false-positive end of the ROC curve.
    """
    model.eval()
    with torch.inference_mode():
        losses = [
            F.cross_entropy(
                model(images[i : i + batch_size]).double(), labels[i : i + batch_size], reduction="none"
            )
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(losses).double().numpy()


@dataclass(frozen=True)
class MembershipAudit:
    members: int
    non_members: int
    auc: float
    membership_advantage: float  # max over thresholds of TPR − FPR
    tpr_at_0_1pct_fpr: float
    tpr_at_1pct_fpr: float
    roc: tuple[tuple[float, float], ...]  # (fpr, tpr), thinned for plotting

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "roc": [list(point) for point in self.roc]}


def roc_curve(member_scores: np.ndarray, non_member_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR of "member when score ≥ t" over every threshold t (higher score: more member-like)."""
    scores = np.concatenate([member_scores, non_member_scores])
    is_member = np.concatenate([np.ones(len(member_scores)), np.zeros(len(non_member_scores))])
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # last index of each tie group
    tpr = np.r_[0.0, np.cumsum(is_member)[distinct] / len(member_scores)]
    fpr = np.r_[0.0, np.cumsum(1 - is_member)[distinct] / len(non_member_scores)]
    return fpr, tpr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, limit: float) -> float:
    """The best TPR among thresholds whose FPR is at most ``limit``."""
    return float(tpr[fpr <= limit].max())


def audit(member_losses: np.ndarray, non_member_losses: np.ndarray) -> MembershipAudit:
    """The loss-threshold attack: a low loss is member-like."""
    return audit_scores(-member_losses, -non_member_losses)


def audit_scores(member_scores: np.ndarray, non_member_scores: np.ndarray) -> MembershipAudit:
    """Any attack's verdict on a balanced set: a higher score is more member-like."""
    if len(member_scores) == 0 or len(non_member_scores) == 0:
        raise ValueError("a membership audit needs members and non-members")
    fpr, tpr = roc_curve(member_scores, non_member_scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, 200).astype(int))
    return MembershipAudit(
        members=len(member_scores),
        non_members=len(non_member_scores),
        auc=float(np.trapezoid(tpr, fpr)),
        membership_advantage=float((tpr - fpr).max()),
        tpr_at_0_1pct_fpr=tpr_at_fpr(fpr, tpr, 0.001),
        tpr_at_1pct_fpr=tpr_at_fpr(fpr, tpr, 0.01),
        roc=tuple((float(fpr[i]), float(tpr[i])) for i in keep),
    )
