"""The likelihood-ratio membership attack with shadow models (LiRA) — pure functions and torch.

Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022). The attacker
trains shadow models with the target's recipe, each on a random half of a *pool* of candidate
digits (plus filler digits common to all), so every candidate is IN for half of the shadows and
OUT for the other half. For a candidate ``x`` with label ``y`` it compares the target's
logit-scaled confidence ``φ = log p_y − log(1 − p_y)`` with the Gaussians the shadows give when
``x`` was IN and when it was OUT:

- *online*: ``log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²)``;
- *offline*: ``(φ − μ_out) / σ_out`` (OUT shadows only; how surprisingly confident the target is).

With a handful of shadows the per-candidate variances are unreliable, so — as the paper
recommends for few shadows — one variance per side is pooled over all candidates. Per-candidate
means are what make the attack strong: a digit that every model finds easy no longer looks like
a member just because its loss is low.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from digitguard.privacy.membership import MembershipAudit, audit_scores
from digitguard.training.loop import to_model_input

MIN_SHADOWS = 4


def logit_confidence(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """φ = log p_y − log(1 − p_y) for each uint8 image, in float64 (stable for confident models)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(labels), 1000):
            logits = model(to_model_input(images_u8[start : start + 1000])).double()
            y = labels[start : start + 1000]
            own = logits.gather(1, y[:, None]).squeeze(1)
            others = logits.scatter(1, y[:, None], float("-inf")).logsumexp(1)
            out.append(own - others)
    return torch.cat(out).numpy() if out else np.empty(0)


def inclusion_matrix(shadows: int, pool_size: int, generator: torch.Generator) -> np.ndarray:
    """``(shadows, pool_size)`` booleans: every candidate IN for exactly half of the shadows."""
    if shadows < MIN_SHADOWS or shadows % 2:
        raise ValueError(f"LiRA needs an even number of at least {MIN_SHADOWS} shadow models, got {shadows}")
    ranks = torch.rand(shadows, pool_size, generator=generator).argsort(0).argsort(0)
    return (ranks < shadows // 2).numpy()


@dataclass(frozen=True)
class LiraScores:
    online: np.ndarray
    offline: np.ndarray


def lira_scores(target: np.ndarray, shadows: np.ndarray, inclusion: np.ndarray) -> LiraScores:
    """Scores (higher: more member-like) for ``target`` φ ``(n,)`` given shadow φ ``(k, n)``."""
    if shadows.shape != inclusion.shape or shadows.shape[1] != target.shape[0]:
        raise ValueError("shadow confidences, inclusion matrix and target confidences disagree in shape")
    mu_in, sigma_in = _side(shadows, inclusion)
    mu_out, sigma_out = _side(shadows, ~inclusion)
    online = _log_normal(target, mu_in, sigma_in) - _log_normal(target, mu_out, sigma_out)
    return LiraScores(online=online, offline=(target - mu_out) / sigma_out)


def _side(shadows: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    counts = mask.sum(0)
    means = np.where(mask, shadows, 0.0).sum(0) / counts
    residuals = np.where(mask, shadows - means, 0.0)
    pooled = float(np.sqrt((residuals**2).sum() / max(1, mask.sum() - mask.shape[1])))
    return means, max(pooled, 1e-6)


def _log_normal(x: np.ndarray, mean: np.ndarray, sigma: float) -> np.ndarray:
    return -0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma)


@dataclass(frozen=True)
class LiraAudit:
    online: MembershipAudit
    offline: MembershipAudit
    shadows: int


Trainer = Callable[[int, torch.Tensor, torch.Tensor], nn.Module]  # (shadow index, images, labels) → model


def run_lira(
    target: nn.Module,
    pool_images: torch.Tensor,
    pool_labels: torch.Tensor,
    is_member: np.ndarray,
    filler_images: torch.Tensor,
    filler_labels: torch.Tensor,
    train_shadow: Trainer,
    shadows: int,
    seed: int,
    on_shadow: Callable[[int], None] = lambda index: None,
) -> LiraAudit:
    """Train ``shadows`` shadow models on pool halves + filler and attack ``target`` on the pool."""
    inclusion = inclusion_matrix(shadows, len(pool_labels), torch.Generator().manual_seed(seed))
    confidences = []
    for index in range(shadows):
        chosen = torch.from_numpy(np.flatnonzero(inclusion[index]))
        model = train_shadow(
            index,
            torch.cat([pool_images[chosen], filler_images]),
            torch.cat([pool_labels[chosen], filler_labels]),
        )
        confidences.append(logit_confidence(model, pool_images, pool_labels))
        on_shadow(index)
    scores = lira_scores(logit_confidence(target, pool_images, pool_labels), np.stack(confidences), inclusion)
    return LiraAudit(
        online=audit_scores(scores.online[is_member], scores.online[~is_member]),
        offline=audit_scores(scores.offline[is_member], scores.offline[~is_member]),
        shadows=shadows,
    )
