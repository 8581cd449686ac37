"""Each drawing style draws what its name says, measured against a plain re-normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitguard.data import drawing, mnist
from digitguard.data.drawing import STYLES, DrawingStyleError, StyleRanges, render, styled
from digitguard.training.loop import to_model_input
from tests.conftest import SHARED_MNIST


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    if not (SHARED_MNIST / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    return to_model_input(torch.from_numpy(mnist.load(SHARED_MNIST).test.images[:200].copy()))


@pytest.fixture(scope="module")
def plain(digits: torch.Tensor) -> torch.Tensor:
    return render(digits, torch.Generator().manual_seed(0), StyleRanges())


def ink_area(images: torch.Tensor) -> float:
    return float((images > 0.5).float().sum((1, 2, 3)).mean())


def grey_share(images: torch.Tensor) -> float:
    ink = images > 0.1
    return float(((images > 0.1) & (images < 0.9)).sum() / ink.sum())


def slant(images: torch.Tensor) -> float:
    """Mean covariance of column with row over the ink (negative: the top leans right)."""
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    w = images[:, 0]
    mass = w.sum((1, 2))
    my, mx = (w * ys).sum((1, 2)) / mass, (w * xs).sum((1, 2)) / mass
    return float(((w * (ys - my[:, None, None]) * (xs - mx[:, None, None])).sum((1, 2)) / mass).mean())


def aspect(images: torch.Tensor) -> float:
    ratios = []
    for image in images[:, 0] > 0.2:
        rows, cols = np.flatnonzero(image.any(1).numpy()), np.flatnonzero(image.any(0).numpy())
        ratios.append((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1))
    return float(np.mean(ratios))


def roughness(images: torch.Tensor) -> float:
    return float((images[..., 1:, :] - images[..., :-1, :]).abs().sum() / images.sum())


class TestEveryStyle:
    @pytest.mark.parametrize("name", list(STYLES))
    def test_a_drawing_is_a_normalised_mnist_input(self, digits: torch.Tensor, name: str) -> None:
        drawn = styled(digits, name, seed=1)
        assert drawn.shape == digits.shape and drawn.min() >= 0 and drawn.max() <= 1
        ys = torch.arange(28.0) + 0.5
        mass = drawn[:, 0].sum((1, 2))
        com_y = (drawn[:, 0].sum(2) * ys).sum(1) / mass
        com_x = (drawn[:, 0].sum(1) * ys).sum(1) / mass
        assert float((com_y - 14).abs().median()) < 1.0 and float((com_x - 14).abs().median()) < 1.0
        boxes = [(image > 0.2).nonzero() for image in drawn[:, 0]]
        longer = [int(max(b[:, 0].max() - b[:, 0].min(), b[:, 1].max() - b[:, 1].min())) + 1 for b in boxes]
        assert 18 <= float(np.median(longer)) <= 22

    @pytest.mark.parametrize("name", list(STYLES))
    def test_the_same_seed_draws_the_same_and_another_seed_does_not(
        self, digits: torch.Tensor, name: str
    ) -> None:
        assert torch.equal(styled(digits[:20], name, 3), styled(digits[:20], name, 3))
        if name not in ("thin-pen",):  # a fixed-parameter style draws identically for any seed
            assert not torch.equal(styled(digits[:20], name, 3), styled(digits[:20], name, 4))


class TestEachStyleDrawsWhatItsNameSays:
    def test_a_plain_rendering_barely_changes_an_mnist_digit(self, digits, plain) -> None:
        assert float((plain - digits).abs().mean()) < 0.08

    def test_a_thin_pen_draws_less_ink_and_a_thick_marker_much_more(self, digits, plain) -> None:
        assert ink_area(styled(digits, "thin-pen", 0)) < 0.8 * ink_area(plain)
        assert ink_area(styled(digits, "thick-marker", 0)) > 1.5 * ink_area(plain)

    def test_blurred_drawings_have_more_grey_and_coarse_captures_are_smoother(self, digits, plain) -> None:
        assert grey_share(styled(digits, "blurred", 0)) > grey_share(plain) + 0.1
        assert roughness(styled(digits, "coarse-capture", 0)) < roughness(plain)

    def test_slanted_drawings_lean_right_and_back_slanted_ones_left(self, digits, plain) -> None:
        assert slant(styled(digits, "slanted", 0)) < slant(plain) - 1.0
        assert slant(styled(digits, "back-slanted", 0)) > slant(plain) + 1.0

    def test_narrow_and_wide_change_the_proportions(self, digits, plain) -> None:
        assert aspect(styled(digits, "narrow", 0)) < 0.85 * aspect(plain)
        assert aspect(styled(digits, "wide", 0)) > 1.15 * aspect(plain)

    def test_rotated_drawings_turn_elongated_digits_by_the_style_s_angle(self, digits, plain) -> None:
        before, elongation = orientation(plain)
        after, _ = orientation(styled(digits, "rotated", 0))
        turned = (after - before)[elongation > 3]
        assert len(turned) >= 20
        assert 10.0 <= float(turned.median()) <= 17.0  # the style rotates by 12–16°

    def test_elastic_drawings_move_ink_and_a_zero_amplitude_does_not(self, digits, plain) -> None:
        assert float((styled(digits, "elastic", 0) - plain).abs().mean()) > 0.02
        still = render(digits, torch.Generator().manual_seed(0), StyleRanges(elastic_px=(0.0, 0.0)))
        assert torch.equal(still, plain)


def orientation(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the angle of the ink's principal axis (degrees) and how elongated the ink is."""
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    w = images[:, 0]
    mass = w.sum((1, 2))
    dy = ys - ((w * ys).sum((1, 2)) / mass)[:, None, None]
    dx = xs - ((w * xs).sum((1, 2)) / mass)[:, None, None]
    cyy, cxx, cxy = ((w * d).sum((1, 2)) / mass for d in (dy * dy, dx * dx, dy * dx))
    return torch.rad2deg(0.5 * torch.atan2(2 * cxy, cxx - cyy)), cyy / cxx


class TestRanges:
    def test_a_low_bound_above_the_high_bound_is_refused(self) -> None:
        with pytest.raises(DrawingStyleError, match="blur_sigma"):
            StyleRanges(blur_sigma=(2.0, 1.0))

    def test_an_unknown_style_is_refused_with_the_known_ones(self) -> None:
        with pytest.raises(DrawingStyleError, match="thick-marker"):
            drawing.style("crayon")

    def test_images_of_the_wrong_shape_are_refused(self) -> None:
        with pytest.raises(DrawingStyleError, match=r"\(b, 1, 28, 28\)"):
            render(torch.zeros(2, 28, 28), torch.Generator())

    def test_an_empty_image_comes_back_unchanged(self) -> None:
        blank = torch.zeros(3, 1, 28, 28)
        assert torch.equal(render(blank, torch.Generator().manual_seed(0)), blank)
