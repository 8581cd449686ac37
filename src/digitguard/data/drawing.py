"""How people draw a digit, rendered from MNIST digits — pure torch, batched, no files.

A browser canvas is not a scanner. People draw with a thin pen or a thick marker, slant and
rotate their digits, make them narrow or wide, smear them, and the capture may be coarse. This
module turns MNIST digits into such drawings so that a model can be trained on them (``render``
with :data:`TRAINING_RANGES`) and checked on them (the named :data:`STYLES`, applied to *test*
digits only).

Every drawing is made in a 56×56 work space (twice MNIST's resolution, so that strokes can be
thickened by half a pixel), then put back the way the serving path does it
(:func:`digitguard.inference.preprocess.to_mnist`): the ink's bounding box scaled so its longer
side is 20 px of a 28×28 field, its centre of mass at the centre. A model therefore sees a
rendered digit exactly as it would see it after a canvas upload.

All draws come from the caller's generator, so a seeded rendering is reproducible. Images are
``(b, 1, 28, 28)`` floats in [0, 1], ink bright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

WORK = 56  # the work space's side: 2 × MNIST
FIELD = 28
BOX = 20  # the longer side of the ink's bounding box after normalisation, as MNIST and to_mnist
INK_THRESHOLD = 0.2  # the serving path's ink threshold (inference.preprocess.INK_THRESHOLD)


class DrawingStyleError(ValueError):
    """A style range breaks a rule (low above high, a negative blur, an unknown style name)."""


@dataclass(frozen=True)
class StyleRanges:
    """Uniform ranges every rendering parameter is drawn from; ``(0, 0)`` switches one off.

    Units: degrees for rotation, shear as tan(slant angle), pixels of the 28×28 field for the
    elastic amplitude and stroke change (a stroke change of +1.5 thickens every stroke by 1.5 px
    on each side; negative values thin it), pixels of the 56×56 work space for the blur σ.
    """

    rotation_deg: tuple[float, float] = (0.0, 0.0)
    shear: tuple[float, float] = (0.0, 0.0)
    aspect: tuple[float, float] = (1.0, 1.0)  # width ÷ height scale factor
    elastic_px: tuple[float, float] = (0.0, 0.0)
    stroke_px: tuple[float, float] = (0.0, 0.0)
    ink_gain: tuple[float, float] = (1.0, 1.0)  # > 1 saturates the ink, as a marker does
    blur_sigma: tuple[float, float] = (0.0, 0.0)
    coarse_side: tuple[int, int] = (0, 0)  # captured at this many pixels a side, then upscaled (0: off)

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "shear", "aspect", "elastic_px", "stroke_px", "ink_gain", "blur_sigma"):
            low, high = getattr(self, name)
            if low > high:
                raise DrawingStyleError(f"{name}: low {low} is above high {high}")
        if self.aspect[0] <= 0 or self.ink_gain[0] <= 0:
            raise DrawingStyleError("aspect and ink_gain must be positive")
        if self.blur_sigma[0] < 0 or self.elastic_px[0] < 0:
            raise DrawingStyleError("blur_sigma and elastic_px must not be negative")
        if self.stroke_px[0] < -1.0 or self.stroke_px[1] > 3.0:
            raise DrawingStyleError("stroke_px must lie in [-1, 3] px")
        low, high = self.coarse_side
        if low > high or (low != 0 and not 8 <= low <= 28) or (high != 0 and not 8 <= high <= 28):
            raise DrawingStyleError("coarse_side must be (0, 0) or lie in [8, 28] with low <= high")


# What training draws from: every style at once, each at most as strong as the named styles below.
TRAINING_RANGES = StyleRanges(
    rotation_deg=(-18.0, 18.0),
    shear=(-0.4, 0.4),
    aspect=(0.7, 1.3),
    elastic_px=(0.0, 1.5),
    stroke_px=(-0.5, 2.0),
    ink_gain=(1.0, 3.0),
    blur_sigma=(0.0, 1.6),
    coarse_side=(0, 0),
)

# The named styles of the drawing-style test set: one way of drawing each, strong enough to see.
STYLES: dict[str, StyleRanges] = {
    "thin-pen": StyleRanges(stroke_px=(-0.5, -0.5)),
    "thick-marker": StyleRanges(stroke_px=(1.5, 2.0), ink_gain=(2.5, 3.0)),
    "blurred": StyleRanges(blur_sigma=(1.4, 1.6)),
    "slanted": StyleRanges(shear=(0.3, 0.4)),
    "back-slanted": StyleRanges(shear=(-0.4, -0.3)),
    "rotated": StyleRanges(rotation_deg=(12.0, 16.0)),
    "narrow": StyleRanges(aspect=(0.7, 0.75)),
    "wide": StyleRanges(aspect=(1.25, 1.3)),
    "elastic": StyleRanges(elastic_px=(1.2, 1.5)),
    "coarse-capture": StyleRanges(coarse_side=(12, 14)),
    "marker-slanted-elastic": StyleRanges(
        stroke_px=(1.0, 1.5), ink_gain=(2.0, 3.0), shear=(-0.3, 0.3), elastic_px=(0.8, 1.2)
    ),
}


def style(name: str) -> StyleRanges:
    try:
        return STYLES[name]
    except KeyError:
        raise DrawingStyleError(f"unknown drawing style {name!r}; known: {', '.join(STYLES)}") from None


def render(
    images: torch.Tensor, generator: torch.Generator, ranges: StyleRanges = TRAINING_RANGES
) -> torch.Tensor:
    """Draw each of ``images`` (b, 1, 28, 28) once, with parameters drawn from ``ranges``."""
    if images.ndim != 4 or images.shape[1:] != (1, FIELD, FIELD):
        raise DrawingStyleError(f"expected images of shape (b, 1, 28, 28), got {tuple(images.shape)}")
    b = images.shape[0]
    if b == 0:
        return images.clone()
    draw = _Draws(b, generator)
    work = F.interpolate(images.float(), size=(WORK, WORK), mode="bilinear", align_corners=False)
    work = warp(work, _affine(draw, ranges), draw.elastic_field(ranges.elastic_px))
    work = change_stroke(work, draw.uniform(*ranges.stroke_px) * (WORK / FIELD))
    work = (work * draw.uniform(*ranges.ink_gain).view(b, 1, 1, 1)).clamp_(0.0, 1.0)
    work = gaussian_blur(work, draw.uniform(*ranges.blur_sigma))
    if ranges.coarse_side != (0, 0):
        work = coarse_capture(work, draw.integers(*ranges.coarse_side))
    drawn = normalise_like_serving(work)
    # A drawing whose ink vanished (a thin stroke thinned away) keeps the original digit.
    lost = drawn.flatten(1).amax(1) <= INK_THRESHOLD
    return torch.where(lost.view(b, 1, 1, 1), images.float(), drawn)


class _Draws:
    def __init__(self, b: int, generator: torch.Generator) -> None:
        self.b, self.generator = b, generator

    def uniform(self, low: float, high: float) -> torch.Tensor:
        return torch.rand(self.b, generator=self.generator) * (high - low) + low

    def integers(self, low: int, high: int) -> torch.Tensor:
        return torch.randint(low, high + 1, (self.b,), generator=self.generator)

    def elastic_field(self, amplitude_px: tuple[float, float]) -> torch.Tensor | None:
        """A smooth random displacement (b, WORK, WORK, 2) in grid units, or None when off."""
        if amplitude_px == (0.0, 0.0):
            return None
        coarse = torch.rand(self.b, 2, 4, 4, generator=self.generator).mul_(2).sub_(1)
        smooth = F.interpolate(coarse, size=(WORK, WORK), mode="bicubic", align_corners=True)
        scale = self.uniform(*amplitude_px) * (2.0 / FIELD)  # 28-px units → grid units [-1, 1]
        return (smooth * scale.view(-1, 1, 1, 1)).permute(0, 2, 3, 1)


def _affine(draw: _Draws, ranges: StyleRanges) -> torch.Tensor:
    """Output → input maps (b, 2, 3) of rotation, slant and width change about the centre."""
    angle = draw.uniform(*ranges.rotation_deg) * (math.pi / 180)
    shear = draw.uniform(*ranges.shear)
    aspect = draw.uniform(*ranges.aspect)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward: x' = aspect·(x + shear·(−y)) rotated; a positive shear leans the top to the right
    # (grid y grows downwards). The grid needs the inverse of that forward map.
    forward = torch.stack(
        [
            torch.stack([aspect * cos, -aspect * shear * cos - sin], 1),
            torch.stack([aspect * sin, -aspect * shear * sin + cos], 1),
        ],
        1,
    )  # (b, 2, 2)
    inverse = torch.linalg.inv(forward)
    return torch.cat([inverse, torch.zeros(draw.b, 2, 1)], 2)


def warp(work: torch.Tensor, theta: torch.Tensor, displacement: torch.Tensor | None) -> torch.Tensor:
    grid = F.affine_grid(theta, list(work.shape), align_corners=False)
    if displacement is not None:
        grid = grid + displacement
    return F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def change_stroke(work: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Thicken (radius > 0) or thin (radius < 0) every stroke by ``radius`` work-space pixels.

    Grey-level dilation/erosion with a near-disc element (3×3 squares alternating with crosses),
    one pixel at a time; a fractional radius blends the two nearest whole ones.
    """
    steps = math.ceil(float(radius.abs().max())) if len(radius) else 0
    if steps == 0:
        return work
    thick, thin = [work], [work]
    for step in range(steps):
        thick.append(_grow(thick[-1], square=step % 2 == 0))
        thin.append(-_grow(-thin[-1], square=step % 2 == 0))
    levels = torch.stack([*reversed(thin[1:]), *thick], 0)  # radius −steps … +steps
    position = (radius.clamp(-steps, steps) + steps).view(1, -1, 1, 1, 1)
    low = position.floor().long().clamp(max=2 * steps)
    high = (low + 1).clamp(max=2 * steps)
    weight = position - low
    pick = lambda index: levels.gather(0, index.expand(1, *work.shape))[0]  # noqa: E731
    return pick(low) * (1 - weight[0]) + pick(high) * weight[0]


def _grow(work: torch.Tensor, square: bool) -> torch.Tensor:
    if square:
        return F.max_pool2d(work, 3, stride=1, padding=1)
    padded = F.pad(work, (1, 1, 1, 1))
    shifts = [padded[..., 1:-1, 1:-1], padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]]
    shifts += [padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]]
    return torch.stack(shifts, 0).amax(0)


def gaussian_blur(work: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own σ (work-space pixels; 0 leaves it unchanged)."""
    if float(sigma.max()) <= 0:
        return work
    radius = math.ceil(3 * float(sigma.max()))
    offsets = torch.arange(-radius, radius + 1, dtype=work.dtype)
    safe = sigma.clamp(min=1e-3).view(-1, 1)
    kernel = torch.exp(-0.5 * (offsets / safe) ** 2)
    kernel = torch.where(sigma.view(-1, 1) > 0, kernel, (offsets == 0).to(work.dtype))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (b, k)
    b = work.shape[0]
    rows = F.conv2d(work.view(1, b, WORK, WORK), kernel.view(b, 1, 1, -1), padding=(0, radius), groups=b)
    both = F.conv2d(rows, kernel.view(b, 1, -1, 1), padding=(radius, 0), groups=b)
    return both.view_as(work)


def coarse_capture(work: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """Capture each image at ``side`` pixels a side (area average), then upscale it back."""
    out = work.clone()
    for value in side.unique().tolist():
        chosen = side == value
        small = F.interpolate(work[chosen], size=(value, value), mode="area")
        out[chosen] = F.interpolate(small, size=(WORK, WORK), mode="bilinear", align_corners=False)
    return out


def normalise_like_serving(work: torch.Tensor) -> torch.Tensor:
    """Work-space drawings → 28×28 digits as ``to_mnist`` makes them: the ink's bounding box
    scaled to a 20-px longer side, the centre of mass at the field's centre, kept inside it."""
    b, _, height, width = work.shape
    mask = work[:, 0] > INK_THRESHOLD
    empty = ~mask.flatten(1).any(1)
    mask = mask | empty.view(b, 1, 1)  # an empty image keeps the whole field as its box
    top, bottom = _extent(mask.any(2))  # rows holding ink
    left, right = _extent(mask.any(1))  # columns holding ink
    side = torch.maximum(bottom - top, right - left).float()
    scale = (BOX * WORK / FIELD) / side  # work → work-space field of side WORK
    mass = work[:, 0].clamp(min=0).sum((1, 2)).clamp(min=1e-6)
    centres = torch.arange(height, dtype=work.dtype) + 0.5
    com_y = (work[:, 0].sum(2) * centres).sum(1) / mass
    com_x = (work[:, 0].sum(1) * centres[:width]).sum(1) / mass
    offset_y = _keep_inside(WORK / 2 - com_y * scale, top, bottom, scale)
    offset_x = _keep_inside(WORK / 2 - com_x * scale, left, right, scale)
    # Output pixel centre Y ↔ input y = (Y − offset) / scale, in grid units (align_corners=False).
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale
    theta[:, 0, 2] = (WORK - 2 * offset_x) / (WORK * scale) - 1
    theta[:, 1, 2] = (WORK - 2 * offset_y) / (WORK * scale) - 1
    grid = F.affine_grid(theta, [b, 1, WORK, WORK], align_corners=False)
    placed = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(placed, 2).clamp_(0.0, 1.0)


def _extent(any_ink: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First row with ink and one past the last, per image, as floats (pixel edges)."""
    n = any_ink.shape[1]
    first = any_ink.float().argmax(1)
    last = n - 1 - any_ink.flip(1).float().argmax(1)
    return first.float(), (last + 1).float()


def _keep_inside(
    offset: torch.Tensor, low: torch.Tensor, high: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    lowest, highest = -low * scale, WORK - high * scale
    return torch.minimum(torch.maximum(offset, lowest), highest)


def styled(images: torch.Tensor, name: str, seed: int) -> torch.Tensor:
    """``images`` drawn in the named style, reproducibly for ``seed``."""
    return render(images, torch.Generator().manual_seed(seed), style(name))
