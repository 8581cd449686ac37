"""A strict parser for the IDX format of the MNIST files.

IDX: a 4-byte magic (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the payload. MNIST uses type 0x08
(unsigned byte): images are 3-dimensional (count, rows, cols) and labels
1-dimensional (count). Files may be gzip-compressed.

The parser never trusts the header: it reads at most the payload the header
announces plus one byte (so an oversized payload is detected without reading
an unbounded stream), and every broken rule raises :class:`IdxFormatError`
naming the file and the rule.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from digitguard.errors import DataConsistencyError, IdxFormatError

UNSIGNED_BYTE = 0x08
MAX_ITEMS = 10_000_000
MNIST_SIDE = 28
NUM_CLASSES = 10


@dataclass(frozen=True)
class IdxHeader:
    type_code: int
    dims: tuple[int, ...]

    @property
    def payload_size(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))


def _open(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _read_header(stream: BinaryIO, path: Path, expected_ndim: int) -> IdxHeader:
    magic = stream.read(4)
    if len(magic) != 4:
        raise IdxFormatError(path, "truncated header: fewer than 4 magic bytes")
    zero1, zero2, type_code, ndim = magic
    if zero1 or zero2 or type_code != UNSIGNED_BYTE or ndim != expected_ndim:
        raise IdxFormatError(
            path,
            f"wrong magic 0x{magic.hex()}: expected 0x000008{expected_ndim:02x} "
            f"(unsigned bytes, {expected_ndim} dimension(s))",
        )
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) != 4 * ndim:
        raise IdxFormatError(path, "truncated header: dimension sizes missing")
    return IdxHeader(type_code, struct.unpack(f">{ndim}I", raw_dims))


def _read_payload(stream: BinaryIO, path: Path, header: IdxHeader) -> np.ndarray:
    expected = header.payload_size
    payload = stream.read(expected + 1)
    if len(payload) < expected:
        raise IdxFormatError(
            path, f"truncated payload: header announces {expected} bytes, file has {len(payload)}"
        )
    if len(payload) > expected:
        raise IdxFormatError(path, f"oversized payload: more than the {expected} bytes the header announces")
    return np.frombuffer(payload, dtype=np.uint8).reshape(header.dims)


def _parse(path: Path, expected_ndim: int, check_dims) -> np.ndarray:
    try:
        with _open(path) as stream:
            header = _read_header(stream, path, expected_ndim)
            check_dims(header.dims)
            return _read_payload(stream, path, header)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise IdxFormatError(path, "file not found") from exc
        raise IdxFormatError(path, f"unreadable or corrupt compressed stream: {exc}") from exc


def read_images(path: Path, side: int = MNIST_SIDE) -> np.ndarray:
    """Read an IDX image file into a ``(n, side, side)`` uint8 array."""

    def check_dims(dims: tuple[int, ...]) -> None:
        count, rows, cols = dims
        if (rows, cols) != (side, side):
            raise IdxFormatError(path, f"wrong dimensions {rows}x{cols}: expected {side}x{side}")
        if not 0 < count <= MAX_ITEMS:
            raise IdxFormatError(path, f"wrong dimensions: {count} images (allowed 1..{MAX_ITEMS})")

    return _parse(path, 3, check_dims)


def read_labels(path: Path) -> np.ndarray:
    """Read an IDX label file into a ``(n,)`` uint8 array of digits 0–9."""

    def check_dims(dims: tuple[int, ...]) -> None:
        if not 0 < dims[0] <= MAX_ITEMS:
            raise IdxFormatError(path, f"wrong dimensions: {dims[0]} labels (allowed 1..{MAX_ITEMS})")

    labels = _parse(path, 1, check_dims)
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise IdxFormatError(path, f"label {int(labels[bad[0]])} at index {int(bad[0])} is outside 0-9")
    return labels


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files; their counts must agree."""
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise DataConsistencyError(
            labels_path,
            f"image/label count mismatch: {len(images)} images in {images_path.name}, {len(labels)} labels",
        )
    return images, labels


def encode(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes (uncompressed) — used to write data sets."""
    if array.dtype != np.uint8:
        raise ValueError("IDX encoding here supports uint8 arrays only")
    header = bytes([0, 0, UNSIGNED_BYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()
