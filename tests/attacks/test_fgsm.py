from __future__ import annotations

import torch
from torch.nn import functional as F

from digitguard.attacks.fgsm import FGSM


def hand_gradient(model, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∇ₓ CE for a linear model: Wᵀ (softmax(Wx + b) − onehot(y)), computed without autograd."""
    linear = model[1]
    with torch.no_grad():
        probabilities = F.softmax(images.flatten(1) @ linear.weight.T + linear.bias, dim=1)
        delta = probabilities - F.one_hot(labels, 10).float()
        return (delta @ linear.weight).view_as(images)


class TestFGSM:
    def test_steps_epsilon_along_the_sign_of_the_hand_computed_gradient(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        expected = (images + 0.1 * hand_gradient(tiny_model, images, labels).sign()).clamp(0, 1)
        assert torch.allclose(FGSM(tiny_model, 0.1)(images, labels), expected, atol=1e-7)

    def test_moves_every_unclipped_pixel_by_exactly_epsilon(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        adversarial = FGSM(tiny_model, 0.2)(images, labels)
        interior = (images > 0.2) & (images < 0.8)
        assert torch.allclose((adversarial - images).abs()[interior], torch.tensor(0.2), atol=1e-6)

    def test_stays_within_epsilon_and_the_pixel_range(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        adversarial = FGSM(tiny_model, 0.3)(images, labels)
        assert (adversarial - images).abs().max() <= 0.3 + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1

    def test_raises_the_loss(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        adversarial = FGSM(tiny_model, 0.05)(images, labels)
        with torch.no_grad():
            before = F.cross_entropy(tiny_model(images), labels, reduction="none")
            after = F.cross_entropy(tiny_model(adversarial), labels, reduction="none")
        assert (after > before).all()

    def test_each_image_is_attacked_independently_of_its_batch(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        attack = FGSM(tiny_model, 0.1)
        whole = attack(images, labels)
        one_by_one = torch.cat([attack(images[i : i + 1], labels[i : i + 1]) for i in range(len(images))])
        assert torch.equal(whole, one_by_one)

    def test_leaves_the_models_parameters_without_gradients(self, tiny_model, tiny_batch) -> None:
        FGSM(tiny_model, 0.1)(*tiny_batch)
        assert all(parameter.grad is None for parameter in tiny_model.parameters())
