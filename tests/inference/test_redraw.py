"""Re-drawn digits: canvas-sized PNGs that the serving input path turns back into MNIST inputs."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from digitguard.inference.redraw import as_canvas_png, redrawn_inputs


def test_a_redrawing_is_a_large_black_on_white_png(mnist_test_digits) -> None:
    floats, _ = mnist_test_digits
    digit = np.round(floats[0] * 255).astype(np.uint8)
    image = Image.open(io.BytesIO(as_canvas_png(digit, np.random.default_rng(0))))
    assert image.format == "PNG" and min(image.size) >= 28 * 6
    pixels = np.asarray(image)
    assert pixels.max() == 255 and pixels.min() < 64  # white paper, dark ink


def test_redrawn_inputs_come_back_as_mnist_inputs_the_same_way_each_time(mnist_test_digits) -> None:
    floats, _ = mnist_test_digits
    digits = np.round(floats[:5] * 255).astype(np.uint8)
    first, again = redrawn_inputs(digits, seed=1), redrawn_inputs(digits, seed=1)
    assert first.shape == (5, 1, 28, 28) and torch.equal(first, again)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    # centred like MNIST: ink's centre of mass within two pixels of the middle
    ys, xs = np.mgrid[0:28, 0:28]
    for image in first[:, 0].numpy():
        total = image.sum()
        assert abs((ys * image).sum() / total - 13.5) < 2 and abs((xs * image).sum() / total - 13.5) < 2
