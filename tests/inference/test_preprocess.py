"""The MNIST recipe on synthetic strokes: whatever the drawing, the model gets an MNIST-like digit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from digitguard.errors import ImageDecodeError, NothingDrawnError
from digitguard.inference.preprocess import decode_png, to_mnist


def canvas(
    size: tuple[int, int] = (280, 280), width: int = 20, box=(100, 60, 180, 220), ink_black=True
) -> np.ndarray:
    """A '1'-like vertical stroke plus a short cap, as a grey image in [0, 1]."""
    background, ink = (255, 0) if ink_black else (0, 255)
    image = Image.new("L", size, background)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    middle = (left + right) // 2
    draw.line([(middle, top), (middle, bottom)], fill=ink, width=width)
    draw.line([(left, top + (bottom - top) // 5), (middle, top)], fill=ink, width=width)
    return np.asarray(image, dtype=np.float32) / 255.0


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bounding_box(digit: np.ndarray, threshold: float = 0.05) -> tuple[int, int]:
    rows, cols = np.flatnonzero((digit > threshold).any(1)), np.flatnonzero((digit > threshold).any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(digit.shape)
    return float((ys * digit).sum() / digit.sum()), float((xs * digit).sum() / digit.sum())


def assert_mnist_like(digit: np.ndarray) -> None:
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.min() >= 0.0 and digit.max() <= 1.0
    assert max(bounding_box(digit)) in (20, 21, 22)  # 20 px plus anti-aliasing fringe
    com_y, com_x = centre_of_mass(digit)
    assert abs(com_y - 13.5) <= 1.0 and abs(com_x - 13.5) <= 1.0
    assert digit[0].max() < 0.05 and digit[:, 0].max() < 0.05  # background stays dark at the border


class TestStrokes:
    def test_centred_stroke(self) -> None:
        assert_mnist_like(to_mnist(canvas()))

    def test_off_centre_stroke_is_moved_to_the_centre_of_mass(self) -> None:
        assert_mnist_like(to_mnist(canvas(box=(5, 5, 60, 120))))

    def test_tiny_stroke_is_scaled_up(self) -> None:
        assert_mnist_like(to_mnist(canvas(width=3, box=(130, 130, 142, 160))))

    def test_huge_stroke_filling_the_canvas_is_scaled_down(self) -> None:
        assert_mnist_like(to_mnist(canvas(size=(1200, 1200), width=90, box=(100, 20, 1100, 1180))))

    def test_thick_stroke(self) -> None:
        thick = to_mnist(canvas(width=60))
        assert_mnist_like(thick)
        assert thick.mean() > to_mnist(canvas(width=20)).mean()

    def test_thin_stroke_keeps_visible_ink(self) -> None:
        thin = to_mnist(canvas(width=2))
        assert_mnist_like(thin)
        assert thin.max() > 0.3

    def test_wrong_polarity_gives_the_same_digit(self) -> None:
        black_on_white = to_mnist(canvas(ink_black=True))
        white_on_black = to_mnist(canvas(ink_black=False))
        np.testing.assert_allclose(black_on_white, white_on_black, atol=1e-5)

    def test_aspect_ratio_is_kept(self) -> None:
        height, width = bounding_box(to_mnist(canvas(width=10, box=(100, 20, 180, 260))))
        assert height > 1.8 * width

    def test_an_mnist_digit_survives_upscaling_and_padding(self) -> None:
        digit = np.zeros((28, 28), np.float32)
        digit[4:24, 12:16] = 1.0  # a 20 px bar, already centred
        big = np.asarray(Image.fromarray(digit, mode="F").resize((280, 280), Image.Resampling.BILINEAR))
        padded = np.zeros((400, 400), np.float32)
        padded[10:290, 100:380] = big
        restored = to_mnist(padded)
        assert np.abs(restored - digit).mean() < 0.05
        assert np.corrcoef(restored.ravel(), digit.ravel())[0, 1] > 0.9


class TestNothingDrawn:
    def test_blank_canvas(self) -> None:
        with pytest.raises(NothingDrawnError, match="nothing drawn"):
            to_mnist(np.ones((280, 280), np.float32))

    def test_a_single_speck(self) -> None:
        image = np.ones((280, 280), np.float32)
        image[100:103, 100:103] = 0.0
        with pytest.raises(NothingDrawnError):
            to_mnist(image)

    def test_faint_noise_below_the_ink_threshold(self) -> None:
        noise = np.random.default_rng(0).uniform(0.85, 1.0, (280, 280)).astype(np.float32)
        with pytest.raises(NothingDrawnError):
            to_mnist(noise)


class TestDecodePng:
    def test_rgba_canvas_with_transparent_background(self) -> None:
        image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
        ImageDraw.Draw(image).line([(140, 40), (140, 240)], fill=(0, 0, 0, 255), width=20)
        assert_mnist_like(to_mnist(decode_png(png_bytes(image))))

    def test_jpeg_is_refused(self) -> None:
        buffer = io.BytesIO()
        Image.new("L", (28, 28)).save(buffer, format="JPEG")
        with pytest.raises(ImageDecodeError, match="not a decodable PNG"):
            decode_png(buffer.getvalue())

    def test_truncated_png_is_refused(self) -> None:
        data = png_bytes(Image.fromarray((canvas() * 255).astype(np.uint8)))
        with pytest.raises(ImageDecodeError):
            decode_png(data[: len(data) // 2])

    def test_too_many_pixels_are_refused_before_decoding(self) -> None:
        data = png_bytes(Image.new("1", (5000, 5000)))  # a tiny file that would decode to 25 M pixels
        assert len(data) < 10_000
        with pytest.raises(ImageDecodeError, match="at most"):
            decode_png(data)

    @settings(max_examples=200, deadline=None)
    @given(data=st.binary(max_size=3000))
    def test_arbitrary_bytes_decode_or_raise_image_decode_error(self, data: bytes) -> None:
        try:
            grey = decode_png(b"\x89PNG\r\n\x1a\n" + data)
        except ImageDecodeError:
            return
        assert grey.ndim == 2

    @settings(max_examples=100, deadline=None)
    @given(
        width=st.integers(1, 64),
        height=st.integers(1, 64),
        seed=st.integers(0, 2**16),
        mode=st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16"]),
    )
    def test_any_small_png_gives_a_digit_or_nothing_drawn(self, width, height, seed, mode) -> None:
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
        image = Image.fromarray(pixels).convert(mode)
        try:
            digit = to_mnist(decode_png(png_bytes(image)))
        except NothingDrawnError:
            return
        assert digit.shape == (28, 28) and np.isfinite(digit).all()


def _composite_reference(image: Image.Image) -> np.ndarray:
    """The textbook way: alpha-composite onto opaque white, then convert to grey."""
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("L")).astype(int)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P-transparent"])
def test_transparency_is_composited_onto_white_paper_like_the_textbook_composite(mode: str) -> None:
    rng = np.random.default_rng(7)
    rgba = Image.fromarray(rng.integers(0, 256, (40, 50, 4), dtype=np.uint8), "RGBA")
    if mode == "LA":
        image = rgba.convert("LA")
    elif mode == "P-transparent":
        image = rgba.convert("RGB").quantize(16)
        image.info["transparency"] = 3
        image = Image.open(io.BytesIO(png_bytes(image)))
    else:
        image = rgba
    decoded = decode_png(png_bytes(image)).astype(int)
    assert np.abs(decoded - _composite_reference(Image.open(io.BytesIO(png_bytes(image))))).max() <= 1
