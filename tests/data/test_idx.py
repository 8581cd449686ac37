from __future__ import annotations

import contextlib
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digitguard.data import idx
from digitguard.errors import DataConsistencyError, IdxFormatError


def write(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def images_bytes(count: int = 3, rows: int = 28, cols: int = 28) -> bytes:
    array = (np.arange(count * rows * cols) % 256).astype(np.uint8).reshape(count, rows, cols)
    return idx.encode(array)


def labels_bytes(values: list[int]) -> bytes:
    return idx.encode(np.array(values, dtype=np.uint8))


@pytest.fixture(params=["images.idx", "images.idx.gz"])
def image_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / request.param


class TestWellFormedFiles:
    def test_images_round_trip_through_encode_and_read(self, image_file: Path) -> None:
        write(image_file, images_bytes(3))
        images = idx.read_images(image_file)
        assert images.shape == (3, 28, 28)
        assert images.dtype == np.uint8
        assert images[0, 0, 5] == 5

    def test_labels_round_trip(self, tmp_path: Path) -> None:
        labels = idx.read_labels(write(tmp_path / "l.gz", labels_bytes([0, 9, 3])))
        assert labels.tolist() == [0, 9, 3]

    def test_read_pair_returns_matching_arrays(self, tmp_path: Path) -> None:
        images, labels = idx.read_pair(
            write(tmp_path / "i.gz", images_bytes(2)), write(tmp_path / "l.gz", labels_bytes([1, 2]))
        )
        assert len(images) == len(labels) == 2


class TestMalformedFilesAreRefusedWithTheBrokenRule:
    def test_wrong_magic_type_code(self, image_file: Path) -> None:
        payload = bytearray(images_bytes())
        payload[2] = 0x0D  # float instead of unsigned byte
        write(image_file, bytes(payload))
        with pytest.raises(IdxFormatError, match="wrong magic") as info:
            idx.read_images(image_file)
        assert info.value.path == str(image_file)

    def test_label_file_given_as_images_has_wrong_magic(self, tmp_path: Path) -> None:
        with pytest.raises(IdxFormatError, match="wrong magic"):
            idx.read_images(write(tmp_path / "l.gz", labels_bytes([1])))

    def test_wrong_dimensions(self, image_file: Path) -> None:
        write(image_file, images_bytes(2, rows=27, cols=28))
        with pytest.raises(IdxFormatError, match="wrong dimensions 27x28"):
            idx.read_images(image_file)

    def test_zero_images_is_wrong_dimensions(self, image_file: Path) -> None:
        write(image_file, bytes([0, 0, 8, 3]) + struct.pack(">3I", 0, 28, 28))
        with pytest.raises(IdxFormatError, match="wrong dimensions: 0 images"):
            idx.read_images(image_file)

    def test_truncated_payload(self, image_file: Path) -> None:
        write(image_file, images_bytes(3)[:-10])
        with pytest.raises(IdxFormatError, match="truncated payload"):
            idx.read_images(image_file)

    def test_truncated_header(self, image_file: Path) -> None:
        write(image_file, bytes([0, 0, 8, 3, 0, 0]))
        with pytest.raises(IdxFormatError, match="truncated header"):
            idx.read_images(image_file)

    def test_oversized_payload(self, image_file: Path) -> None:
        write(image_file, images_bytes(3) + b"\x00")
        with pytest.raises(IdxFormatError, match="oversized payload"):
            idx.read_images(image_file)

    def test_image_label_count_mismatch(self, tmp_path: Path) -> None:
        with pytest.raises(DataConsistencyError, match="count mismatch: 3 images"):
            idx.read_pair(
                write(tmp_path / "i.gz", images_bytes(3)), write(tmp_path / "l.gz", labels_bytes([1, 2]))
            )

    def test_label_outside_0_to_9(self, tmp_path: Path) -> None:
        with pytest.raises(IdxFormatError, match="label 10 at index 1 is outside 0-9"):
            idx.read_labels(write(tmp_path / "l.gz", labels_bytes([3, 10, 4])))

    def test_corrupt_gzip_stream(self, tmp_path: Path) -> None:
        path = tmp_path / "i.gz"
        path.write_bytes(gzip.compress(images_bytes())[:-12] + b"garbage!garbage!")
        with pytest.raises(IdxFormatError, match=r"corrupt compressed stream|truncated"):
            idx.read_images(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(IdxFormatError, match="file not found"):
            idx.read_images(tmp_path / "absent.gz")

    def test_errors_carry_exit_status_2(self, image_file: Path) -> None:
        write(image_file, b"\x00")
        with pytest.raises(IdxFormatError) as info:
            idx.read_images(image_file)
        assert info.value.exit_code == 2


class TestFuzzing:
    @settings(max_examples=300, deadline=None)
    @given(payload=st.binary(max_size=4096))
    def test_arbitrary_bytes_parse_or_raise_idx_format_error(self, tmp_path_factory, payload: bytes) -> None:
        path = tmp_path_factory.mktemp("fuzz") / "f.idx"
        path.write_bytes(payload)
        for reader in (idx.read_images, idx.read_labels):
            with contextlib.suppress(IdxFormatError):
                reader(path)

    @settings(max_examples=200, deadline=None)
    @given(
        count=st.integers(1, 4),
        rows=st.integers(1, 40),
        cut=st.integers(0, 8),
        extra=st.binary(max_size=4),
    )
    def test_mutated_headers_and_lengths_never_escape_the_parser(
        self, tmp_path_factory, count: int, rows: int, cut: int, extra: bytes
    ) -> None:
        payload = images_bytes(count, rows=rows, cols=28)
        payload = payload[: len(payload) - cut] + extra
        path = tmp_path_factory.mktemp("fuzz") / "f.idx.gz"
        write(path, payload)
        try:
            images = idx.read_images(path)
        except IdxFormatError:
            return
        assert images.shape == (count, 28, 28) and rows == 28 and len(extra) == cut
