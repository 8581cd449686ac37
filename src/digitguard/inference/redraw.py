"""MNIST digits re-drawn as canvas PNGs, and brought back through the serving input path.

What the browser sends is not an MNIST digit: a large, off-centre, anti-aliased drawing that
:mod:`digitguard.inference.preprocess` turns into a 28×28 input. Re-drawing held-out digits
this way measures the input path (``bench/input_path_accuracy.py``) and gives the detectors
clean inputs that look like what they will see in service (``detector calibrate --on canvas``).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from digitguard.inference.preprocess import decode_png, to_mnist


def as_canvas_png(digit_u8: np.ndarray, rng: np.random.Generator) -> bytes:
    """Upscale 6–12×, draw black on white, and put it off-centre on a larger blank canvas."""
    scale = int(rng.integers(6, 13))
    side = 28 * scale
    big = Image.fromarray(255 - digit_u8).resize((side, side), Image.Resampling.BILINEAR)
    width, height = side + int(rng.integers(0, 240)), side + int(rng.integers(0, 240))
    canvas = Image.new("L", (width, height), 255)
    canvas.paste(big, (int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def redrawn_inputs(digits_u8: np.ndarray, seed: int = 0) -> torch.Tensor:
    """uint8 digits ``(n, 28, 28)`` → the model inputs ``(n, 1, 28, 28)`` their canvas drawings become."""
    rng = np.random.default_rng(seed)
    inputs = [to_mnist(decode_png(as_canvas_png(digit, rng))) for digit in digits_u8]
    return torch.from_numpy(np.stack(inputs).astype(np.float32)).unsqueeze(1)
