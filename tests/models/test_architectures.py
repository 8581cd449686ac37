from __future__ import annotations

import pytest
import torch

from digitguard.errors import UnknownArchitectureError
from digitguard.models.architectures import ARCHITECTURES, build_model, parameter_count


class TestSeedCnn:
    def test_has_the_parameter_count_of_the_seed_threat_model(self) -> None:
        assert parameter_count(build_model("seed-cnn")) == 1_199_882

    def test_maps_a_batch_of_digits_to_ten_logits(self, seed_cnn: torch.nn.Module) -> None:
        assert seed_cnn(torch.rand(5, 1, 28, 28)).shape == (5, 10)

    def test_layers_match_the_seed_description(self, seed_cnn: torch.nn.Module) -> None:
        shapes = {name: tuple(p.shape) for name, p in seed_cnn.named_parameters()}
        assert shapes["conv1.weight"] == (32, 1, 3, 3)
        assert shapes["conv2.weight"] == (64, 32, 3, 3)
        assert shapes["fc1.weight"] == (128, 9216)
        assert shapes["fc2.weight"] == (10, 128)


class TestRegistry:
    def test_unknown_names_are_refused_listing_the_known_ones(self) -> None:
        with pytest.raises(UnknownArchitectureError, match="seed-cnn"):
            build_model("resnet-9000")

    @pytest.mark.parametrize("name", sorted(ARCHITECTURES))
    def test_every_registered_architecture_builds_and_classifies_mnist(self, name: str) -> None:
        from digitguard.models.architectures import NOT_A_DIGIT_ARCHITECTURES

        classes = 11 if name in NOT_A_DIGIT_ARCHITECTURES else 10  # a gate's 11th class: not a digit
        assert build_model(name)(torch.zeros(2, 1, 28, 28)).shape == (2, classes)
