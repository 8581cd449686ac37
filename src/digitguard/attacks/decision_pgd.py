"""A targeted attack on the whole served decision, built for its rule.

The served decision (:class:`~digitguard.inference.decision.ServedDecision`) answers digit ``t``
only when the primary model's top class is ``t`` with probability at least τ *and* the gate
model's top class is also ``t`` (not another digit, not "not a digit"). An attack on the primary
model alone (AutoAttack, PGD) may find a wrong class the gate does not share, or one below τ —
both are abstentions, not wrong answers. This attack aims at what a real attacker needs: the
decision answering a wrong digit. For each target ``t`` among the ``targets`` most likely wrong
classes it descends the joint margin loss

    Σ_models max(0, max_{j≠t} z_j(x) − z_t(x) + κ)

(Carlini & Wagner's margin, ICLR/S&P 2017, on both networks at once; the gate's ``j`` includes its
"not a digit" class) with signed-gradient steps whose size decays on a cosine from ε/4 to ε/100
over ``steps`` (the step-size schedule APGD adapts automatically; Croce & Hein, ICML 2020),
from a random start per restart, projecting onto the ε-ball ∩ [0, 1]. κ is at least the logit
margin that puts the primary's probability of ``t`` above τ against any single rival. The first
iterate at which the decision answers ``t`` is kept; an image with no success keeps the iterate
with the lowest loss.

Arguments (defaults): ``decision`` (a ServedDecision), ``eps``; ``steps=100``; ``restarts=1``;
``targets=3`` (the wrong classes with the highest summed clean logits; 9 tries every one);
``kappa=None`` (log(9·τ/(1−τ)) + 1, at least 2); ``seed=0``. Inputs ``(b, 1, 28, 28)`` in [0, 1].
Random starts are seeded per image, so results do not depend on batching.

Example::

    adversarial = DecisionTargetedPGD(ServedDecision(robust, gate, 0.7), eps=0.3, targets=9)(x, y)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from digitguard.attacks.base import Attack, Setting, project, seeded_uniform
from digitguard.errors import AttackError
from digitguard.inference.decision import ServedDecision


class DecisionTargetedPGD(Attack):
    name = "decision-targeted-pgd"

    def __init__(
        self,
        decision: nn.Module,
        eps: float,
        *,
        steps: int = 100,
        restarts: int = 1,
        targets: int = 3,
        kappa: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(decision, eps)
        if not isinstance(decision, ServedDecision):
            raise AttackError("decision-targeted-pgd attacks a ServedDecision (primary, gate, threshold)")
        if steps < 1 or restarts < 1:
            raise AttackError(f"decision-targeted-pgd needs steps and restarts >= 1, got {steps}, {restarts}")
        if not 1 <= targets <= 9:
            raise AttackError(f"targets must be between 1 and 9 wrong classes, got {targets}")
        self.decision = decision
        self.steps, self.restarts, self.targets, self.seed = steps, restarts, targets, seed
        tau = min(max(decision.abstain_below, 1e-3), 1 - 1e-3)
        self.kappa = kappa if kappa is not None else max(2.0, math.log(9 * tau / (1 - tau)) + 1.0)

    def settings(self) -> dict[str, Setting]:
        return {
            "steps": self.steps,
            "restarts": self.restarts,
            "targets": self.targets,
            "kappa": self.kappa,
            "seed": self.seed,
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        best = images.clone()
        done = torch.zeros(len(images), dtype=torch.bool)
        best_loss = torch.full((len(images),), math.inf)
        for rank, target in enumerate(self._target_order(images, labels)):
            for restart in range(self.restarts):
                todo = ~done
                if not bool(todo.any()):
                    return best
                found, loss, success = self._run(images[todo], target[todo], f"{rank}:{restart}")
                index = todo.nonzero().squeeze(1)
                better = success | (loss < best_loss[index])
                best[index[better]] = found[better]
                best_loss[index[better]] = loss[better]
                done[index[success]] = True
        return best

    def _target_order(self, images: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            scores = self.decision(images).float().clone()
            gate = self.decision.gate_logits(images)
            if gate is not None:
                scores += gate[:, :10].float()
        scores[torch.arange(len(labels)), labels] = -math.inf
        order = scores.argsort(1, descending=True)[:, : self.targets]
        return list(order.T)

    def _run(
        self, images: torch.Tensor, target: torch.Tensor, label: str
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        start = seeded_uniform(images, self.eps, f"digitguard-decision-pgd:{self.seed}:{label}:")
        adversarial = (images + start).clamp(0.0, 1.0)
        kept = adversarial.clone()
        kept_loss = torch.full((len(images),), math.inf)
        success = torch.zeros(len(images), dtype=torch.bool)
        for step in range(self.steps):
            loss, gradient = self._loss_and_gradient(adversarial, target)
            answered = self.decision.decide(adversarial).answers == target
            newly = answered & ~success
            improved = ~success & (loss < kept_loss)
            keep = newly | improved
            kept[keep] = adversarial[keep]
            kept_loss[keep] = loss[keep]
            success |= answered
            if bool(success.all()):
                break
            size = self._step_size(step)
            adversarial = project(adversarial - size * gradient.sign(), images, self.eps).detach()
        return kept, kept_loss, success

    def _loss_and_gradient(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = _margin(self.decision(inputs).float(), target, self.kappa)
            gate = self.decision.gate_logits(inputs)
            if gate is not None:
                loss = loss + _margin(gate.float(), target, self.kappa)
            (gradient,) = torch.autograd.grad(loss.sum(), inputs)
        return loss.detach(), gradient

    def _step_size(self, step: int) -> float:
        high, low = self.eps / 4, self.eps / 100
        return low + 0.5 * (high - low) * (1 + math.cos(math.pi * step / max(1, self.steps - 1)))


def _margin(logits: torch.Tensor, target: torch.Tensor, kappa: float) -> torch.Tensor:
    """Per image: max(0, best rival logit − target logit + κ)."""
    rows = torch.arange(len(target))
    own = logits[rows, target]
    rivals = logits.clone()
    rivals[rows, target] = -math.inf
    return (rivals.amax(1) - own + kappa).clamp(min=0.0)
