from __future__ import annotations

import pytest
import torch

from digitguard.attacks.fgsm import FGSM
from digitguard.attacks.pgd import PGD
from digitguard.errors import AttackError


def accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).double().mean())


class TestPGDBudget:
    def test_stays_within_epsilon_and_the_pixel_range(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        adversarial = PGD(tiny_model, 0.1, steps=7, restarts=2)(images, labels)
        assert (adversarial - images).abs().max() <= 0.1 + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1

    def test_default_step_size_is_two_and_a_half_epsilon_over_steps(self, tiny_model) -> None:
        assert PGD(tiny_model, 0.3, steps=40).step_size == pytest.approx(2.5 * 0.3 / 40)

    def test_one_step_from_the_image_with_step_epsilon_is_fgsm(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        pgd = PGD(tiny_model, 0.1, steps=1, step_size=0.1, random_start=False)
        assert torch.equal(pgd(images, labels), FGSM(tiny_model, 0.1)(images, labels))


class TestPGDDeterminism:
    def test_same_seed_gives_the_same_images(self, tiny_model, tiny_batch) -> None:
        first = PGD(tiny_model, 0.1, steps=3, seed=4)(*tiny_batch)
        second = PGD(tiny_model, 0.1, steps=3, seed=4)(*tiny_batch)
        assert torch.equal(first, second)

    def test_another_seed_gives_another_random_start(self, tiny_model, tiny_batch) -> None:
        first = PGD(tiny_model, 0.1, steps=1, step_size=0.01, seed=4)(*tiny_batch)
        second = PGD(tiny_model, 0.1, steps=1, step_size=0.01, seed=5)(*tiny_batch)
        assert not torch.equal(first, second)

    def test_results_do_not_depend_on_batch_size_or_position(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        attack = PGD(tiny_model, 0.1, steps=3, restarts=2, seed=9)
        whole = attack(images, labels)
        in_fives = torch.cat([attack(images[i : i + 5], labels[i : i + 5]) for i in range(0, len(images), 5)])
        reversed_order = attack(images.flip(0), labels.flip(0)).flip(0)
        assert torch.allclose(whole, in_fives, atol=1e-6)
        assert torch.allclose(whole, reversed_order, atol=1e-6)

    def test_on_the_real_model_batch_size_changes_no_prediction(self, basic, mnist_test) -> None:
        images, labels = mnist_test[0][:21], mnist_test[1][:21]
        attack = PGD(basic.model, 0.1, steps=3, seed=3)
        whole = attack(images, labels)
        in_sevens = torch.cat([attack(images[i : i + 7], labels[i : i + 7]) for i in range(0, 21, 7)])
        with torch.no_grad():
            assert torch.equal(basic.model(whole).argmax(1), basic.model(in_sevens).argmax(1))
        assert (whole - in_sevens).abs().max() < 1e-4


class TestPGDStrength:
    def test_more_restarts_never_break_fewer_images(self, tiny_model, tiny_batch) -> None:
        images, labels = tiny_batch
        with torch.no_grad():
            one = tiny_model(PGD(tiny_model, 0.02, steps=2, restarts=1)(images, labels)).argmax(1) != labels
            three = tiny_model(PGD(tiny_model, 0.02, steps=2, restarts=3)(images, labels)).argmax(1) != labels
        assert (three | ~one).all()  # every image broken with one restart stays broken with three

    def test_is_at_least_as_strong_as_fgsm_on_the_release_model(self, basic, mnist_test) -> None:
        images, labels = mnist_test[0][:60], mnist_test[1][:60]
        fgsm = accuracy(basic.model, FGSM(basic.model, 0.1)(images, labels), labels)
        pgd = accuracy(basic.model, PGD(basic.model, 0.1, steps=10)(images, labels), labels)
        assert pgd <= fgsm
        assert pgd < accuracy(basic.model, images, labels) - 0.3  # and it is a real attack


class TestPGDSettings:
    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"steps": 0}, "at least one step"),
            ({"restarts": 0}, "at least one restart"),
            ({"restarts": 2, "random_start": False}, "identical"),
            ({"step_size": 0.0}, "step size"),
        ],
    )
    def test_meaningless_settings_are_refused(self, tiny_model, settings, message: str) -> None:
        with pytest.raises(AttackError, match=message):
            PGD(tiny_model, 0.1, **settings)

    def test_reports_its_settings(self, tiny_model) -> None:
        assert PGD(tiny_model, 0.2, steps=10, restarts=2, seed=7).settings() == {
            "steps": 10,
            "step_size": pytest.approx(0.05),
            "restarts": 2,
            "random_start": True,
            "seed": 7,
        }
