"""Non-digits ("junk") that people draw on a digit canvas — pure numpy and Pillow, no files written.

A gate model that can say "not a digit" needs examples of what people draw instead of a digit: a
tap, a tick, a scribble, a face, a word, two digits at once. Each *family* here draws one kind of
junk the way the browser canvas records it: a 280×280 grey canvas, white paper (255), dark ink, a
round pen from a thin 6 px pen to a 28 px marker, at a random size and place (people do not draw
in the centre). The serving path then makes the canvas an MNIST input with
:func:`digitguard.inference.preprocess.to_mnist`, which :func:`junk_inputs` calls as well.

Map of the module:

- :data:`FAMILIES`, the explicit registry: ``name -> Family``. A :class:`Family` is called as
  ``family(rng, digits_u8) -> canvas``; ``family.draw(rng, digits_u8)`` gives its marks (strokes,
  discs, glyphs, MNIST digits in canvas pixels) and :func:`paint` puts marks on a canvas of any
  side, so the same drawing can be rendered at 280 px or, faster, at 140 px.
- :data:`TRAINING_FAMILIES` and :data:`HELD_OUT_FAMILIES` split the registry. Held-out families are
  never trained on; they measure whether refusal generalises to shapes the gate has not seen. Each
  has a training relative but not a copy of it: ``letters-hand`` (hand-drawn skeletons; training
  sees the same letters only as fonts), ``face`` (a closed loop with marks inside), ``heart`` and
  ``star`` (closed outlines with a cusp or spikes, the nearest junk to a 0) and ``spiral`` (nested
  turns, the nearest junk to a 6 or 9).
- :func:`junk_canvases`, :func:`junk_inputs` and :func:`canvas_png` are what a trainer or an HTTP
  test calls.

What is *not* junk, because people honestly draw digits that way, is never drawn (err on
excluding: a junk look-alike of a digit teaches the gate to refuse real digits). Glyphs are listed
with the digit they pass for in :data:`EXCLUDED_GLYPHS`; shapes are kept away from look-alikes by
construction: no plain ring or oval (0), no slashed ring (a slashed zero, so there is no
circle-with-line family; ``crossed-out`` strikes a digit with a stroke running well past it), no
vertical bar (1): a dash keeps 45° and hatching 25° away from vertical, no arrow points up-right,
up or steeply up-left (a 7, or a 1 with a flag), no three-segment zigzag (Z, a 2), no filled blob
taller than 4:3 (a fat 1), no spiral of fewer than two turns (6, 9), no square or triangle outline
(0, 4).

Speed: :func:`junk_inputs` paints at :data:`FAST_SIDE` (140 px, pens halved), where ``to_mnist``
takes half the time; the 28×28 inputs match those of 280 px canvases to within a pixel's shift
(mean absolute difference about 0.01–0.03 after a 1 px blur; the test suite checks it).

Every random draw comes from the caller's generator, so a seed gives the same junk (on a machine
with the same fonts: ``letters-font`` uses Pillow's own font always and DejaVu when installed).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitguard.errors import NothingDrawnError
from digitguard.inference.preprocess import to_mnist

CANVAS = 280  # the browser canvas's side; every length below is in its pixels
FAST_SIDE = 140  # junk_inputs paints at half size: to_mnist takes half the time, the input looks the same
PAPER = 255
INK_LEVELS = (0, 48)  # canvas ink is black, or nearly
PEN = (6.0, 28.0)  # a thin pen … a thick marker
MARGIN = 3.0  # px kept free at the canvas edge
WOBBLE_STEP = 10.0  # px between the points of a wobbled stroke: smooth at 2.5 wobbles a stroke
DIGIT_INK = 51  # an MNIST pixel this bright counts as ink (to_mnist's threshold of 0.2)
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
DEFAULT_FONT = "pillow-default"

# Glyphs that honestly pass for a digit, with the digit. Letters *and* symbols, either case.
EXCLUDED_GLYPHS: dict[str, str] = {
    **dict.fromkeys("OoQDCcUu°ΘθΩ", "0 (a ring, an open ring)"),
    **dict.fromkeys("ØøΦФ∅", "0 (a slashed zero)"),
    **dict.fromkeys("lIi|!/\\()[]{}jJ'`T", "1 (a bar, with or without a flag, serif or dot)"),
    **dict.fromkeys("Zz", "2"),
    **dict.fromkeys("ЗЭ", "3"),
    **dict.fromkeys("AHYyЧΔ", "4 (closed or open top)"),
    **dict.fromkeys("Ss$§", "5"),
    **dict.fromkeys("bGб", "6"),
    **dict.fromkeys("dPp", "a mirrored 6 or 9"),
    **dict.fromkeys("ft", "7 or 1 with a crossbar"),
    **dict.fromkeys("B&ßg", "8"),
    **dict.fromkeys("qaд", "9 (or a 2 with a loop, for a)"),
    **dict.fromkeys("£λΣ¥", "2, 7, 3 or 4 written fast"),
}
LATIN_GLYPHS = "EFKLMNRVWX" + "ehkmnrvwx" + "?@#%*+=<>~^"  # every font has these, Pillow's own too
GLYPHS = LATIN_GLYPHS + "€×÷±≠∞πЖЯШжяшΨ√"  # a font draws those of these it has (see glyphs_for)

Point = tuple[float, float]


class JunkError(ValueError):
    """A junk request breaks a rule (unknown family, digits missing or malformed, bad count or side)."""


class Mark(Protocol):
    """One thing drawn on the canvas, in canvas pixels (280 a side)."""

    def bounds(self) -> np.ndarray:
        """``[x0, y0, x1, y1]`` of the ink."""
        ...

    def moved(self, offset: np.ndarray, factor: float) -> Mark:
        """The mark scaled by ``factor`` about the origin, then shifted by ``offset``."""
        ...

    def paint(self, sheet: _Sheet) -> None: ...


@dataclass(frozen=True)
class Family:
    """One kind of junk: ``family(rng, digits_u8)`` is a canvas (``side`` px, 280 unless told);
    ``draw`` gives its marks. ``needs_digits``: it draws MNIST digits, so ``digits_u8`` is required."""

    name: str
    draw: Callable[[np.random.Generator, np.ndarray | None], list[Mark]]
    needs_digits: bool = False

    def __call__(
        self, rng: np.random.Generator, digits_u8: np.ndarray | None = None, *, side: int = CANVAS
    ) -> np.ndarray:
        ink = int(rng.integers(*INK_LEVELS, endpoint=True))
        return paint(self.draw(rng, _checked_digits(self.name, digits_u8, self.needs_digits)), side, ink)


@dataclass(frozen=True)
class JunkSample:
    family: str
    canvas: np.ndarray  # (side, side) uint8, paper 255


@dataclass(frozen=True)
class JunkInputs:
    """Junk as the model sees it; canvases ``to_mnist`` refused are counted, not kept."""

    images: np.ndarray  # (m, 28, 28) float32 in [0, 1], ink bright
    families: tuple[str, ...]  # the family of each image
    nothing_drawn: int  # canvases to_mnist refused as nothing drawn (a tap with a thin pen...)


# --- the public entry points ------------------------------------------------------------------


def junk_canvases(
    n: int,
    seed: int,
    families: Sequence[str] | None = None,
    digits_u8: np.ndarray | None = None,
    *,
    side: int = CANVAS,
) -> list[JunkSample]:
    """``n`` junk canvases, the families taken in turn (evenly), all drawn from one generator seeded
    with ``seed`` (so the first ``k`` of ``n`` are the ``k`` a smaller call gives).

    ``families`` defaults to :data:`TRAINING_FAMILIES`. Without ``digits_u8`` (MNIST digits,
    ``(k, 28, 28)`` uint8) the families that need digits are skipped.
    """
    return list(_samples(n, seed, families, digits_u8, side))


def junk_inputs(
    n: int,
    seed: int,
    families: Sequence[str] | None = None,
    digits_u8: np.ndarray | None = None,
    *,
    side: int = FAST_SIDE,
) -> JunkInputs:
    """The canvases of :func:`junk_canvases` (the same seed draws the same junk, painted at ``side``)
    as MNIST inputs via ``to_mnist``; the canvases it refuses as nothing drawn are only counted."""
    images, kept, refused = [], [], 0
    for sample in _samples(n, seed, families, digits_u8, side):  # one canvas at a time: 30k would not fit
        try:
            images.append(to_mnist(sample.canvas))
        except NothingDrawnError:
            refused += 1
            continue
        kept.append(sample.family)
    stacked = np.stack(images) if images else np.zeros((0, 28, 28), dtype=np.float32)
    return JunkInputs(stacked.astype(np.float32, copy=False), tuple(kept), refused)


def canvas_png(canvas: np.ndarray, *, transparent: bool = False) -> bytes:
    """PNG bytes of a canvas: grey, or RGBA black ink on transparent paper as a browser sends it."""
    if canvas.ndim != 2 or canvas.dtype != np.uint8:
        raise JunkError(f"a canvas is a 2-D uint8 array, got {canvas.dtype} of shape {canvas.shape}")
    image = Image.fromarray(canvas)
    if transparent:
        image = Image.merge("RGBA", (*[Image.new("L", image.size, 0)] * 3, Image.fromarray(255 - canvas)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def paint(marks: Sequence[Mark], side: int = CANVAS, ink: int = 0) -> np.ndarray:
    """Marks (in canvas pixels) on white paper of ``side`` pixels, as a uint8 array."""
    if not 28 <= side <= 4 * CANVAS:
        raise JunkError(f"a canvas side must lie in [28, {4 * CANVAS}] px, got {side}")
    sheet = _Sheet(side, ink)
    for mark in marks:
        mark.paint(sheet)
    # np.asarray(image) encodes the pixels twice; tobytes once.
    return np.frombuffer(sheet.image.tobytes(), dtype=np.uint8).reshape(side, side)


def _samples(
    n: int, seed: int, families: Sequence[str] | None, digits_u8: np.ndarray | None, side: int
) -> Iterator[JunkSample]:
    names = _usable(families if families is not None else TRAINING_FAMILIES, digits_u8)
    if n < 0:
        raise JunkError(f"the number of junk canvases must not be negative, got {n}")
    # One generator for all: seeding one per sample costs as much as drawing a dot. The geometry is
    # drawn in canvas pixels whatever ``side`` is, so a seed draws the same junk at every side.
    rng = np.random.default_rng(seed)
    for i in range(n):
        name = names[i % len(names)]
        yield JunkSample(name, FAMILIES[name](rng, digits_u8, side=side))


def _usable(families: Sequence[str], digits_u8: np.ndarray | None) -> tuple[str, ...]:
    unknown = [name for name in families if name not in FAMILIES]
    if unknown or not families:
        raise JunkError(f"unknown junk families {unknown or '(none given)'}; known: {', '.join(FAMILIES)}")
    names = tuple(name for name in families if digits_u8 is not None or not FAMILIES[name].needs_digits)
    if not names:
        raise JunkError(f"every family asked for ({', '.join(families)}) needs digits_u8, which is None")
    return names


def _checked_digits(name: str, digits: np.ndarray | None, needed: bool) -> np.ndarray | None:
    if not needed:
        return digits
    if digits is None:
        raise JunkError(f"junk family {name!r} draws MNIST digits: digits_u8 must not be None")
    if digits.ndim != 3 or digits.shape[1:] != (28, 28) or digits.dtype != np.uint8 or len(digits) == 0:
        raise JunkError(f"digits_u8 must be (k>0, 28, 28) uint8, got {digits.dtype} {digits.shape}")
    return digits


# --- marks and the sheet they are painted on ---------------------------------------------------


class _Sheet:
    """Paper of ``side`` pixels; marks give canvas pixels, scaled here (pens included)."""

    def __init__(self, side: int, ink: int) -> None:
        self.scale = side / CANVAS
        self.image = Image.new("L", (side, side), PAPER)
        self.draw = ImageDraw.Draw(self.image)
        self.ink = ink

    def stroke(self, points: np.ndarray, width: float) -> None:
        xy = points * self.scale
        pen = max(1, round(width * self.scale))
        if len(xy) > 1:
            self.draw.line(xy.ravel().tolist(), fill=self.ink, width=pen)
        # A round pen at every vertex: round ends and joins, and no seams where Pillow's segments
        # meet (its joint="curve" does the same at five times the cost).
        radius = max(pen / 2, 0.5)
        for box in np.concatenate([xy - radius, xy + radius], 1).tolist():
            self.draw.ellipse(box, fill=self.ink)

    def disc(self, x: float, y: float, rx: float, ry: float) -> None:
        rx, ry = max(rx, 0.5), max(ry, 0.5)
        self.draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=self.ink)

    def paste(self, mask: Image.Image, left: float, top: float) -> None:
        self.image.paste(self.ink, (round(left), round(top)), mask)


@dataclass(frozen=True)
class _Stroke:
    points: np.ndarray  # (k, 2) x, y
    width: float

    def bounds(self) -> np.ndarray:
        half = self.width / 2
        return np.concatenate([self.points.min(0) - half, self.points.max(0) + half])

    def moved(self, offset: np.ndarray, factor: float) -> _Stroke:
        return _Stroke(self.points * factor + offset, self.width)

    def paint(self, sheet: _Sheet) -> None:
        sheet.stroke(self.points, self.width)


@dataclass(frozen=True)
class _Disc:
    centre: np.ndarray
    rx: float
    ry: float

    def bounds(self) -> np.ndarray:
        radius = np.array([self.rx, self.ry])
        return np.concatenate([self.centre - radius, self.centre + radius])

    def moved(self, offset: np.ndarray, factor: float) -> _Disc:
        return _Disc(self.centre * factor + offset, self.rx * factor, self.ry * factor)

    def paint(self, sheet: _Sheet) -> None:
        x, y = self.centre * sheet.scale
        sheet.disc(x, y, self.rx * sheet.scale, self.ry * sheet.scale)


@dataclass(frozen=True)
class _Filled:
    points: np.ndarray  # a closed outline, filled

    def bounds(self) -> np.ndarray:
        return np.concatenate([self.points.min(0), self.points.max(0)])

    def moved(self, offset: np.ndarray, factor: float) -> _Filled:
        return _Filled(self.points * factor + offset)

    def paint(self, sheet: _Sheet) -> None:
        sheet.draw.polygon((self.points * sheet.scale).ravel().tolist(), fill=sheet.ink)


@dataclass(frozen=True)
class _Glyph:
    """Text in a font; ``origin`` is the top-left of its tilted box, ``extent`` that box's size."""

    text: str
    font: str
    size: int  # em, canvas px
    thickening: int  # extra stroke width, canvas px
    angle: float  # degrees, anticlockwise
    origin: np.ndarray
    extent: np.ndarray

    def bounds(self) -> np.ndarray:
        return np.concatenate([self.origin, self.origin + self.extent])

    def moved(self, offset: np.ndarray, factor: float) -> _Glyph:
        # Glyphs are sized to fit the canvas, so factor is 1 in practice; a smaller one keeps the size.
        return replace(self, origin=self.origin * factor + offset)

    def paint(self, sheet: _Sheet) -> None:
        size, thickening = round(self.size * sheet.scale), round(self.thickening * sheet.scale)
        mask = _glyph_mask(self.text, self.font, size, thickening, self.angle)
        left, top = self.origin * sheet.scale
        sheet.paste(mask, left, top)


@dataclass(frozen=True)
class _Digit:
    """An MNIST digit (ink bright) whose 28×28 field spans ``side`` canvas px from ``origin``."""

    pixels: np.ndarray
    origin: np.ndarray
    side: float

    def bounds(self) -> np.ndarray:
        rows = np.flatnonzero((self.pixels >= DIGIT_INK).any(1))
        cols = np.flatnonzero((self.pixels >= DIGIT_INK).any(0))
        box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=float) * (self.side / 28)
        return box + np.tile(self.origin, 2)

    def moved(self, offset: np.ndarray, factor: float) -> _Digit:
        return _Digit(self.pixels, self.origin * factor + offset, self.side * factor)

    def paint(self, sheet: _Sheet) -> None:
        pixels = max(1, round(self.side * sheet.scale))
        mask = Image.fromarray(self.pixels).resize((pixels, pixels), Image.Resampling.BILINEAR)
        left, top = self.origin * sheet.scale
        sheet.paste(mask, left, top)


@functools.cache
def _font(source: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if source == DEFAULT_FONT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(source, size)


@functools.cache
def font_sources() -> tuple[str, ...]:
    """Pillow's own font, then every DejaVu face installed (none required)."""
    faces = sorted(DEJAVU_DIR.glob("DejaVu*.ttf")) if DEJAVU_DIR.is_dir() else []
    return (DEFAULT_FONT, *(str(path) for path in faces if "Math" not in path.name))


@functools.cache
def glyphs_for(source: str) -> str:
    """The glyphs of :data:`GLYPHS` that the font draws: some ink, and not its missing-glyph box."""
    font = _font(source, 48)
    missing = _pixels(font, "\ue000")  # a private-use code point: no font here has it
    return "".join(glyph for glyph in GLYPHS if _pixels(font, glyph) not in (missing, _pixels(font, " ")))


def _pixels(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> bytes:
    image = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(image).text((8, 8), text, fill=255, font=font)
    return image.tobytes()


def _glyph_mask(text: str, source: str, size: int, thickening: int, angle: float) -> Image.Image:
    """The glyph's ink as a mask (255 = ink) in its box, tilted ``angle``° anticlockwise."""
    font = _font(source, max(size, 4))
    left, top, right, bottom = (int(v) for v in font.getbbox(text, stroke_width=thickening))
    mask = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    draw = ImageDraw.Draw(mask)
    draw.text((1 - left, 1 - top), text, fill=255, font=font, stroke_width=thickening, stroke_fill=255)
    return mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)


def _glyph_extent(text: str, source: str, size: int, thickening: int, angle: float) -> np.ndarray:
    """The size of :func:`_glyph_mask`'s image, without drawing it."""
    left, top, right, bottom = _font(source, max(size, 4)).getbbox(text, stroke_width=thickening)
    width, height = right - left + 2, bottom - top + 2
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    return np.array([width * cos + height * sin, width * sin + height * cos])


# --- geometry: pure numpy, canvas pixels, y down -----------------------------------------------


def _rotation(degrees: float) -> np.ndarray:
    """Turns points clockwise on screen (y grows downwards) by ``degrees``."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s], [s, c]])


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 16) -> np.ndarray:
    """Points of an elliptic arc; angles in degrees, 0 = right, 90 = down (screen)."""
    theta = np.radians(np.linspace(start, end, n))
    return np.stack([cx + rx * np.cos(theta), cy + ry * np.sin(theta)], 1)


def _line(*points: Point) -> np.ndarray:
    return np.array(points, dtype=float)


def _densify(points: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """The polyline with its segments cut to at most ``step`` px (vertices kept), and the arc length
    at each point as a share of the whole."""
    segments = np.diff(points, axis=0)
    lengths = np.hypot(segments[:, 0], segments[:, 1])
    arc = np.concatenate([[0.0], np.cumsum(lengths)])
    if lengths.max(initial=0.0) <= step:  # already dense, as arcs are
        return points, arc / max(float(arc[-1]), 1e-9)
    counts = np.maximum(1, np.ceil(lengths / step).astype(int))
    owner = np.repeat(np.arange(len(segments)), counts)
    fraction = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) / counts[owner]
    dense = np.concatenate([points[owner] + segments[owner] * fraction[:, None], points[-1:]])
    arc = np.concatenate([[0.0], np.cumsum(lengths[owner] / counts[owner])])
    return dense, arc / max(float(arc[-1]), 1e-9)


def _wobble(rng: np.random.Generator, points: np.ndarray, amount: float) -> np.ndarray:
    """A hand's slow wobble of ``amount`` px; the ends stay put, so closed shapes still close."""
    frequency, phase = rng.uniform(0.5, 2.5, (1, 2)), rng.uniform(0.0, 2 * math.pi, (1, 2))
    dense, share = _densify(points, WOBBLE_STEP)
    t = share[:, None]
    return dense + amount * np.sin(math.pi * t) * np.sin(2 * math.pi * frequency * t + phase)


def _chaikin(points: np.ndarray, rounds: int) -> np.ndarray:
    """Corner cutting: a smooth curve that follows the control points."""
    for _ in range(rounds):
        near, far = 0.75 * points[:-1] + 0.25 * points[1:], 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.concatenate([points[:1], np.stack([near, far], 1).reshape(-1, 2), points[-1:]])
    return points


def _pen_width(rng: np.random.Generator) -> float:
    """Log-uniform between a thin pen and a thick marker."""
    return math.exp(rng.uniform(math.log(PEN[0]), math.log(PEN[1])))


def _pen(rng: np.random.Generator, size: float, cap: float) -> float:
    """A pen, at most ``cap`` × ``size`` wide (so holes and gaps of the shape survive), at least 3 px."""
    return min(_pen_width(rng), max(3.0, cap * size))


def _size(rng: np.random.Generator, low: float, high: float) -> float:
    return rng.uniform(low, high) * CANVAS


def _hand(
    rng: np.random.Generator,
    strokes: Sequence[np.ndarray],
    size: float,
    pen: float,
    *,
    tilt: float = 10.0,
    slant: float = 0.0,
    aspect: float = 1.0,
    wobble: float = 0.012,
) -> list[Mark]:
    """Unit strokes (about one unit across, centred on 0) drawn by hand at ``size`` px: stretched,
    slanted (a positive slant leans the top right), tilted by up to ``tilt``°, wobbled."""
    shape = np.array([[aspect, -slant], [0.0, 1.0]])
    matrix = size * _rotation(rng.uniform(-tilt, tilt)) @ shape
    return [_Stroke(_wobble(rng, stroke @ matrix.T, wobble * size), pen) for stroke in strokes]


def _scatter(rng: np.random.Generator, marks: list[Mark]) -> list[Mark]:
    """Put the drawing anywhere on the canvas where it fits, shrunk first if it does not."""
    boxes = np.array([mark.bounds() for mark in marks])
    low, high = boxes[:, :2].min(0), boxes[:, 2:].max(0)
    room = CANVAS - 2 * MARGIN
    factor = min(1.0, room / max(float((high - low).max()), 1e-6))
    first = MARGIN - low * factor
    last = np.maximum(first, CANVAS - MARGIN - high * factor)
    offset = rng.uniform(first, last)
    return [mark.moved(offset, factor) for mark in marks]


def _choose(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


# --- the families ------------------------------------------------------------------------------


def _dot(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A tap: one filled disc, as wide as the pen, or pressed wider."""
    diameter = _pen_width(rng) if rng.random() < 0.7 else rng.uniform(PEN[1], 64.0)
    stretch = rng.uniform(0.85, 1.15)
    return _scatter(rng, [_Disc(np.zeros(2), diameter / 2 * stretch, diameter / 2 / stretch)])


def _tick(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A check mark: a short stroke down to the vertex, a long one up to the right."""
    size = _size(rng, 0.15, 0.6)
    short, down = rng.uniform(0.25, 0.4), math.radians(rng.uniform(35, 55))
    long, up = rng.uniform(0.8, 1.0), math.radians(rng.uniform(45, 65))
    start = (-short * math.cos(down), -short * math.sin(down))
    tick = _line(start, (0.0, 0.0), (long * math.cos(up), -long * math.sin(up)))
    tick -= (tick.min(0) + tick.max(0)) / 2
    return _scatter(rng, _hand(rng, [tick], size, _pen(rng, size, 0.18), tilt=15))


def _dash(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A short straight stroke at least 45° from vertical (a near-vertical bar is a 1)."""
    pen = _pen_width(rng)
    length = max(rng.uniform(30.0, 170.0), 3 * pen)
    t = np.linspace(-0.5, 0.5, 9)
    bowed = np.stack([t, rng.uniform(-0.05, 0.05) * (1 - 4 * t**2)], 1) * length
    return _scatter(rng, [_Stroke(bowed @ _rotation(rng.uniform(-45, 45)).T, pen)])


def _scribble(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A smooth random curve with many turns that crosses itself."""
    size = _size(rng, 0.3, 0.9)
    controls = rng.uniform(-0.5, 0.5, (int(rng.integers(9, 17)), 2)) * [rng.uniform(0.7, 1.4), 1.0]
    return _scatter(rng, [_Stroke(_chaikin(controls, 3) * size, _pen(rng, size, 0.09))])


def _bar(rng: np.random.Generator, degrees: float) -> np.ndarray:
    """A unit-long straight stroke through the origin, crossing it 35–65 % along."""
    at = rng.uniform(0.35, 0.65)
    direction = np.array([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))])
    return np.array([[-at], [1.0 - at]]) * rng.uniform(0.8, 1.1) * direction


def _cross(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """An x or a +: two strokes crossing near their middles."""
    size = _size(rng, 0.2, 0.7)
    base = 45.0 if rng.random() < 0.5 else 0.0
    strokes = [_bar(rng, base + rng.uniform(-12, 12)), _bar(rng, base + 90 + rng.uniform(-12, 12))]
    return _scatter(rng, _hand(rng, strokes, size, _pen(rng, size, 0.15), tilt=0))


def _face(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A round face: the outline (closed, overlapping at the join), two eyes and a mouth."""
    size = _size(rng, 0.35, 0.9)
    start = rng.uniform(0, 360)
    head = _arc(0, 0, 0.5, 0.5 * rng.uniform(0.85, 1.15), start, start + rng.uniform(365, 390), 40)
    eye_x, eye_y = rng.uniform(0.14, 0.22), rng.uniform(-0.2, -0.1)
    eyes = [_line((x, eye_y), (x, eye_y + rng.uniform(0.0, 0.06))) for x in (-eye_x, eye_x)]
    mood = rng.random()
    if mood < 0.6:
        mouth = _arc(0, 0.02, rng.uniform(0.18, 0.26), rng.uniform(0.1, 0.2), 25, 155)  # smile
    elif mood < 0.8:
        mouth = _arc(0, 0.32, rng.uniform(0.15, 0.22), rng.uniform(0.06, 0.12), 205, 335)  # frown
    else:
        mouth = _line((-0.18, 0.2), (0.18, 0.2 + rng.uniform(-0.05, 0.05)))
    return _scatter(rng, _hand(rng, [head, *eyes, mouth], size, _pen(rng, size, 1 / 14), wobble=0.008))


def _letters_font(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A letter or symbol (never a digit look-alike) in a font, sometimes thickened like a marker."""
    source = _choose(rng, font_sources())
    text = _choose(rng, glyphs_for(source))
    size = int(8 * round(_size(rng, 0.3, 0.95) / 8))  # a few sizes, so fonts are loaded a few times
    thickening = int(rng.integers(0, max(1, size // 16), endpoint=True))
    angle = rng.uniform(-15, 15)
    extent = _glyph_extent(text, source, size, thickening, angle)
    if extent.max() > CANVAS - 2 * MARGIN:  # a wide glyph at the largest size: one size smaller
        size, thickening = size * 3 // 4, thickening * 3 // 4
        extent = _glyph_extent(text, source, size, thickening, angle)
    return _scatter(rng, [_Glyph(text, source, size, thickening, angle, -extent / 2, extent)])


@dataclass(frozen=True)
class Skeleton:
    """A glyph as pen strokes in a unit box (x right, y down, both 0–1), drawn ``aspect`` wide."""

    aspect: float
    strokes: tuple[np.ndarray, ...]


def _skeletons() -> dict[str, Skeleton]:
    lemniscate = np.linspace(0, 2 * math.pi, 40)
    infinity = np.stack([np.cos(lemniscate), np.sin(lemniscate) * np.cos(lemniscate)], 1)
    infinity = infinity / (1 + np.sin(lemniscate)[:, None] ** 2) * [0.5, 1.0] + 0.5
    wave = np.linspace(0, 1, 20)
    return {
        "E": Skeleton(0.65, (_line((1, 0), (0, 0), (0, 1), (1, 1)), _line((0, 0.5), (0.75, 0.5)))),
        "F": Skeleton(0.6, (_line((1, 0), (0, 0), (0, 1)), _line((0, 0.48), (0.75, 0.48)))),
        "K": Skeleton(0.7, (_line((0, 0), (0, 1)), _line((0.9, 0), (0, 0.6)), _line((0.3, 0.42), (1, 1)))),
        "L": Skeleton(0.6, (_line((0, 0), (0, 1), (0.85, 1)),)),
        "M": Skeleton(0.9, (_line((0, 1), (0.08, 0), (0.5, 0.7), (0.92, 0), (1, 1)),)),
        "N": Skeleton(0.75, (_line((0, 1), (0, 0), (1, 1), (1, 0)),)),
        "R": Skeleton(0.7, (_line((0, 1), (0, 0)), _bowl(), _line((0.35, 0.52), (1, 1)))),
        "V": Skeleton(0.8, (_line((0, 0), (0.5, 1), (1, 0)),)),
        "W": Skeleton(1.2, (_line((0, 0), (0.25, 1), (0.5, 0.3), (0.75, 1), (1, 0)),)),
        "e": Skeleton(0.9, (np.concatenate([_line((0.05, 0.5)), _arc(0.5, 0.5, 0.47, 0.5, 0, -305, 30)]),)),
        "h": Skeleton(0.6, (_line((0, 0), (0, 1)), _hump(0.0, 1.0, 0.55))),
        "k": Skeleton(
            0.6, (_line((0, 0), (0, 1)), _line((0.85, 0.35), (0, 0.75)), _line((0.35, 0.6), (0.9, 1)))
        ),
        "m": Skeleton(1.1, (_line((0, 0.05), (0, 1)), _hump(0.0, 0.5, 0.1), _hump(0.5, 1.0, 0.1))),
        "n": Skeleton(0.75, (_line((0, 0.05), (0, 1)), _hump(0.0, 1.0, 0.1))),
        "r": Skeleton(0.55, (_line((0, 0.05), (0, 1)), _arc(0.55, 0.45, 0.55, 0.35, 180, 290, 10))),
        "v": Skeleton(0.85, (_line((0, 0), (0.5, 1), (1, 0)),)),
        "w": Skeleton(1.3, (_line((0, 0), (0.22, 1), (0.5, 0.25), (0.78, 1), (1, 0)),)),
        "?": Skeleton(
            0.6,
            (
                np.concatenate([_arc(0.5, 0.27, 0.5, 0.27, 190, 420, 16), _line((0.5, 0.72))]),
                _line((0.5, 0.95), (0.5, 1)),
            ),
        ),
        "=": Skeleton(1.3, (_line((0, 0.3), (1, 0.3)), _line((0, 0.7), (1, 0.72)))),
        "<": Skeleton(0.7, (_line((1, 0), (0, 0.5), (1, 1)),)),
        ">": Skeleton(0.7, (_line((0, 0), (1, 0.5), (0, 1)),)),
        "~": Skeleton(2.0, (np.stack([wave, 0.5 - 0.4 * np.sin(2 * math.pi * wave)], 1),)),
        "^": Skeleton(1.2, (_line((0, 1), (0.5, 0), (1, 1)),)),
        "%": Skeleton(
            0.8,
            (
                _line((1, 0), (0, 1)),
                _arc(0.15, 0.15, 0.15, 0.15, 0, 370),
                _arc(0.85, 0.85, 0.15, 0.15, 0, 370),
            ),
        ),
        "∞": Skeleton(2.0, (infinity,)),
        "≠": Skeleton(
            1.2, (_line((0, 0.35), (1, 0.35)), _line((0, 0.65), (1, 0.65)), _line((0.75, 0), (0.25, 1)))
        ),
        "÷": Skeleton(
            1.1, (_line((0, 0.5), (1, 0.5)), _line((0.5, 0.05), (0.5, 0.08)), _line((0.5, 0.92), (0.5, 0.95)))
        ),
        "π": Skeleton(
            1.1,
            (
                _line((0, 0.08), (1, 0.02)),
                _line((0.3, 0.06), (0.26, 1)),
                _line((0.72, 0.04), (0.76, 0.95), (0.86, 1)),
            ),
        ),
        "€": Skeleton(
            0.9,
            (
                _arc(0.6, 0.5, 0.45, 0.5, -40, -320, 24),
                _line((0, 0.4), (0.7, 0.4)),
                _line((0, 0.6), (0.65, 0.6)),
            ),
        ),
        "Ж": Skeleton(
            1.1,
            (_line((0.5, 0), (0.5, 1)), _line((0, 0), (0.5, 0.5), (0, 1)), _line((1, 0), (0.5, 0.5), (1, 1))),
        ),
    }


def _bowl() -> np.ndarray:
    """R's bowl: from the top of the stem round to its middle."""
    return np.concatenate(
        [_line((0, 0), (0.55, 0)), _arc(0.55, 0.26, 0.4, 0.26, -90, 90, 12), _line((0, 0.52))]
    )


def _hump(left: float, right: float, top: float) -> np.ndarray:
    """The arch of n, m and h: up from the stem at ``left``, over, and down to the baseline."""
    middle, half = (left + right) / 2, (right - left) / 2
    return np.concatenate([_arc(middle, top + 0.25, half, 0.25, 180, 360, 12), _line((right, 1))])


HAND_GLYPHS: dict[str, Skeleton] = _skeletons()


def _letters_hand(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A letter or symbol drawn by hand: a skeleton, slanted, stretched and wobbled."""
    skeleton = HAND_GLYPHS[_choose(rng, tuple(HAND_GLYPHS))]
    centred = [(stroke - 0.5) * [skeleton.aspect, 1.0] for stroke in skeleton.strokes]
    size = _size(rng, 0.25, 0.75)
    marks = _hand(
        rng, centred, size, _pen(rng, size, 0.11), slant=rng.uniform(-0.3, 0.3), aspect=rng.uniform(0.8, 1.25)
    )
    return _scatter(rng, marks)


def _digit_at(pixels: np.ndarray, left: float, top: float, side: float) -> _Digit:
    """The digit placed so that its *ink* starts at (left, top)."""
    ink = _Digit(pixels, np.zeros(2), side).bounds()
    return _Digit(pixels, np.array([left, top]) - ink[:2], side)


def _two_digits(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """Two MNIST digits side by side (a gap between their ink) or overlapping by 20–60 %."""
    assert digits is not None  # Family checked it
    side = _size(rng, 0.3, 0.5)
    first, second = (digits[int(i)] for i in rng.integers(len(digits), size=2))
    left = _digit_at(first, 0.0, 0.0, side)
    width = left.bounds()[2]
    right_width = _digit_at(second, 0, 0, side).bounds()[2]
    if rng.random() < 0.3:
        start = width - rng.uniform(0.2, 0.6) * min(width, right_width)
    else:
        start = width + rng.uniform(0.05, 0.3) * side
    right = _digit_at(second, start, rng.uniform(-0.06, 0.06) * side, side)
    return _scatter(rng, [left, right])


def _crossed_out(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """An MNIST digit struck through by one stroke that runs well past its ink on both sides (just
    past would make a slashed 0 or a crossed 7)."""
    assert digits is not None  # Family checked it
    side = _size(rng, 0.35, 0.7)
    digit = _digit_at(digits[int(rng.integers(len(digits)))], 0.0, 0.0, side)
    box = digit.bounds()
    size = float((box[2:] - box[:2]).max())
    centre = box[:2] + (box[2:] - box[:2]) * rng.uniform(0.4, 0.6, 2)
    degrees = rng.uniform(-60, 60)
    direction = np.array([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))])
    ends = [
        centre + way * direction * (_exit(centre, way * direction, box) + rng.uniform(0.3, 0.6) * size)
        for way in (-1.0, 1.0)
    ]
    return _scatter(rng, [digit, _Stroke(np.array(ends), _pen(rng, side, 0.1))])


def _exit(start: np.ndarray, direction: np.ndarray, box: np.ndarray) -> float:
    """How far from ``start`` (inside ``box``) a ray along ``direction`` leaves the box."""
    limits = np.where(direction > 0, box[2:], box[:2]) - start
    return float(min(limit / d for limit, d in zip(limits, direction, strict=True) if abs(d) > 1e-9))


def _blob(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A filled irregular shape, never much taller than wide (a tall filled stroke is a fat 1)."""
    theta = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    harmonics = np.arange(2, 6)[:, None]
    amplitude, phase = rng.uniform(0, 0.22, (4, 1)) / harmonics * 2, rng.uniform(0, 2 * math.pi, (4, 1))
    radius = 1 + (amplitude * np.cos(harmonics * theta + phase)).sum(0)
    outline = np.stack([np.cos(theta) * rng.uniform(1.0, 1.6), np.sin(theta)], 1) * radius[:, None]
    outline = outline @ _rotation(rng.uniform(-30, 30)).T * (_size(rng, 0.1, 0.45) / 2)
    return _scatter(rng, [_Filled(outline)])


def _zigzag(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """Four to nine straight segments going mostly sideways (three would be a Z, a 2)."""
    size, segments = _size(rng, 0.3, 0.9), int(rng.integers(4, 10))
    x = np.linspace(-0.5, 0.5, segments + 1) + rng.uniform(-0.12, 0.12, segments + 1) / segments
    y = rng.uniform(0.12, 0.25) * (-1.0) ** np.arange(segments + 1) * rng.uniform(0.8, 1.1, segments + 1)
    pen = _pen(rng, size / segments, 0.4)
    return _scatter(rng, _hand(rng, [np.stack([x, y], 1)], size, pen, tilt=25, wobble=0.005))


def _spiral(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """Two to three and a half turns from near the centre out (fewer turns would be a 6 or 9)."""
    size, turns = _size(rng, 0.3, 0.85), rng.uniform(2.0, 3.5)
    inner = rng.uniform(0.0, 0.08)
    theta = np.linspace(0, turns * 2 * math.pi, int(turns * 36))
    radius = inner + (0.5 - inner) * theta / theta[-1]
    spiral = np.stack([np.cos(theta), np.sin(theta) * rng.choice([-1.0, 1.0])], 1) * radius[:, None]
    pen = _pen(rng, (0.5 - inner) / turns * size, 0.45)
    return _scatter(
        rng, _hand(rng, [spiral], size, pen, tilt=180, aspect=rng.uniform(0.8, 1.25), wobble=0.006)
    )


def _star(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A five-pointed star: a pentagram in one stroke, or the outline of one."""
    if rng.random() < 0.5:
        angles = np.radians(-90 + 144 * np.arange(6))
        star = np.stack([np.cos(angles), np.sin(angles)], 1) * 0.5
    else:
        angles = np.radians(-90 + 36 * np.arange(11))
        radius = np.where(np.arange(11) % 2 == 0, 0.5, rng.uniform(0.18, 0.26))
        star = np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None]
    size = _size(rng, 0.3, 0.85)
    return _scatter(rng, _hand(rng, [star], size, _pen(rng, size, 1 / 12), tilt=15))


def _hash(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """#: two leaning uprights crossed by two sideways strokes."""
    size = _size(rng, 0.25, 0.75)
    across, up, lean = rng.uniform(0.15, 0.3), rng.uniform(0.15, 0.3), rng.uniform(0.05, 0.35)
    uprights = [_line((x + 0.5 * lean, -0.5), (x - 0.5 * lean, 0.5)) for x in (-across, across)]
    sideways = [_line((-0.5, y), (0.5, y + rng.uniform(-0.08, 0.08))) for y in (-up, up)]
    return _scatter(rng, _hand(rng, [*uprights, *sideways], size, _pen(rng, size, 0.1)))


def _arrow(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A shaft and an open head, pointing anywhere but up (a 1 with a flag) or up-right (a 7)."""
    size = _size(rng, 0.3, 0.85)
    barb, spread = rng.uniform(0.18, 0.32), math.radians(rng.uniform(25, 45))
    back = (0.5 - barb * math.cos(spread), barb * math.sin(spread))
    head = _line((back[0], -back[1]), (0.5, 0.0), back)
    # Anticlockwise from pointing right, as on paper; 20°–135° (up-right, up, steeply up-left) is left out.
    turn = _rotation(-(rng.uniform(135, 380) % 360)).T
    strokes = [_line((-0.5, 0.0), (0.5, 0.0)) @ turn, head @ turn]
    return _scatter(rng, _hand(rng, strokes, size, _pen(rng, size, 0.1), tilt=0))


def _heart(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """A heart outline, from the cusp at the top round to it again."""
    t = np.linspace(0, 2 * math.pi, 60)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    heart = np.stack([x, y - 2.5], 1) / 32
    size = _size(rng, 0.25, 0.85)
    return _scatter(
        rng, _hand(rng, [heart], size, _pen(rng, size, 0.1), tilt=15, aspect=rng.uniform(0.85, 1.2))
    )


def _hatching(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """Three to seven parallel strokes at least 25° from vertical; sometimes crossed by a second set."""
    size, count = _size(rng, 0.3, 0.85), int(rng.integers(3, 8))
    pen = _pen(rng, size / count, 0.4)
    angle = rng.uniform(-65, 65)
    strokes = _parallel(rng, count, angle)
    if rng.random() < 0.35:
        strokes += _parallel(rng, int(rng.integers(3, 6)), angle + 90 + rng.uniform(-15, 15))
    return _scatter(rng, _hand(rng, strokes, size, pen, tilt=0, wobble=0.006))


def _parallel(rng: np.random.Generator, count: int, degrees: float) -> list[np.ndarray]:
    offsets = np.linspace(-0.5, 0.5, count + 2)[1:-1]
    ends = rng.uniform(-0.08, 0.08, (count, 2)) + np.array([-0.5, 0.5])
    turn = _rotation(degrees).T
    return [np.array([[ends[i, 0], y], [ends[i, 1], y]]) @ turn for i, y in enumerate(offsets)]


def _noise(rng: np.random.Generator, digits: np.ndarray | None) -> list[Mark]:
    """Many short marks and dots scattered over a patch of the canvas."""
    region, count = _size(rng, 0.4, 1.0), int(rng.integers(8, 21))
    pen = rng.uniform(PEN[0], 14.0)
    starts = rng.uniform(0, region, (count, 2))
    angles = rng.uniform(0, 2 * math.pi, count)
    steps = rng.uniform(0, 30, (count, 1)) * np.stack([np.cos(angles), np.sin(angles)], 1)
    return _scatter(rng, [_Stroke(np.stack([a, a + b]), pen) for a, b in zip(starts, steps, strict=True)])


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("dot", _dot),
        Family("tick", _tick),
        Family("dash", _dash),
        Family("scribble", _scribble),
        Family("cross", _cross),
        Family("face", _face),
        Family("letters-font", _letters_font),
        Family("letters-hand", _letters_hand),
        Family("two-digits", _two_digits, needs_digits=True),
        Family("crossed-out", _crossed_out, needs_digits=True),
        Family("blob", _blob),
        Family("zigzag", _zigzag),
        Family("spiral", _spiral),
        Family("star", _star),
        Family("hash", _hash),
        Family("arrow", _arrow),
        Family("heart", _heart),
        Family("hatching", _hatching),
        Family("noise", _noise),
    )
}
HELD_OUT_FAMILIES: tuple[str, ...] = ("face", "letters-hand", "heart", "spiral", "star")
TRAINING_FAMILIES: tuple[str, ...] = tuple(name for name in FAMILIES if name not in HELD_OUT_FAMILIES)
