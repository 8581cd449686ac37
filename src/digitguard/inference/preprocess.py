"""Make a drawing look like an MNIST digit — the one function every input path uses.

MNIST's own recipe (LeCun et al.): the digit's bounding box is scaled so its
longer side is 20 px, keeping the aspect ratio, with anti-aliasing; the result
is placed in a 28×28 field so that its centre of mass is at the centre. Ink is
bright (1.0) on a dark (0.0) background, values in [0, 1].

``decode_png`` turns untrusted PNG bytes into a grey-level array, refusing
anything but a bounded PNG before the pixels are decoded; ``to_mnist`` is
pure: an array in, an array out.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from digitguard.errors import ImageDecodeError, NothingDrawnError

FIELD = 28
DIGIT_BOX = 20
INK_THRESHOLD = 0.2  # a pixel this bright (after polarity normalisation) is ink
# "Nothing drawn": less ink than this share of the image, or a mark shorter than this share of its side.
MIN_INK_FRACTION = 0.0005
MIN_INK_PIXELS = 4
MIN_EXTENT_FRACTION = 0.03
MAX_SIDE = 4096
MAX_PIXELS = 4_000_000  # far below Pillow's 89 M default: bombs are refused before decoding


def decode_png(data: bytes, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> np.ndarray:
    """Decode PNG bytes to a uint8 grey-level array (transparent pixels become white paper)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG"])
            width, height = image.size
            if width > max_side or height > max_side or width * height > max_pixels:
                raise ImageDecodeError(
                    f"image is {width}x{height}; at most {max_side} px a side and {max_pixels} pixels"
                )
            image.load()
    except ImageDecodeError:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageDecodeError(f"not a decodable PNG image: {exc}") from exc
    return _grey(image)


def _grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # A canvas is transparent where nothing was drawn: composite onto white paper. Blending
        # the grey levels by alpha equals converting an RGBA composite to grey (within one level
        # of rounding) at a quarter of the cost on a 280×280 canvas.
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        paper = Image.new("L", rgba.size, 255)
        return np.asarray(Image.composite(rgba.convert("L"), paper, rgba.getchannel("A")))
    return np.asarray(image.convert("L"))


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """Any-size grey image, either polarity → (28, 28) float32 MNIST digit in [0, 1].

    ``grey`` is uint8 (0–255) or float in [0, 1]; uint8 stays uint8 until the crop, which
    keeps a large canvas cheap.
    """
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ValueError(f"expected a 2-D grey-level image, got shape {grey.shape}")
    full = 255.0 if grey.dtype == np.uint8 else 1.0
    if full == 1.0:
        grey = np.clip(grey.astype(np.float32), 0.0, 1.0)
    ink = _ink_high(grey, full)
    mask = ink > INK_THRESHOLD * full
    if mask.sum() < max(MIN_INK_PIXELS, MIN_INK_FRACTION * mask.size):
        raise NothingDrawnError("nothing drawn: the image holds too little ink to be a digit")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if extent < max(2, MIN_EXTENT_FRACTION * max(grey.shape)):
        raise NothingDrawnError("nothing drawn: the only mark is a speck too small to be a digit")
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / full
    return _centre_by_mass(_scale_longer_side(crop, DIGIT_BOX))


def _ink_high(grey: np.ndarray, full: float) -> np.ndarray:
    # The background is what the border mostly is; MNIST wants it dark.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    # "More than half the border is bright": the median test without sorting.
    if 2 * np.count_nonzero(border > full / 2) > border.size:
        return (255 - grey) if grey.dtype == np.uint8 else 1.0 - grey
    return grey


def _scale_longer_side(crop: np.ndarray, side: int) -> np.ndarray:
    height, width = crop.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(crop, mode="F").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    height, width = digit.shape
    total = float(digit.sum())
    ys, xs = np.indices(digit.shape)
    com_y, com_x = float((ys * digit).sum()) / total, float((xs * digit).sum()) / total
    top = round(FIELD / 2 - 0.5 - com_y)
    left = round(FIELD / 2 - 0.5 - com_x)
    # Keep the whole box inside the field even if the mass is far off-centre.
    top, left = min(max(top, 0), FIELD - height), min(max(left, 0), FIELD - width)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field
