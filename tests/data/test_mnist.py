from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from digitguard.data import mnist
from digitguard.errors import DownloadError, HashMismatchError, IdxFormatError


@pytest.fixture
def mnist_copy(mnist_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "mnist"
    copy.mkdir()
    for name in mnist.PINNED_SHA256:
        shutil.copy(mnist_dir / name, copy / name)
    return copy


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


class TestPinnedHashes:
    def test_the_shared_copy_matches_the_pinned_hashes(self, mnist_dir: Path) -> None:
        assert mnist.verify_directory(mnist_dir) == mnist.PINNED_SHA256

    def test_pinned_hashes_agree_with_the_shared_sha256sums(self, mnist_dir: Path) -> None:
        listed = dict(reversed(line.split()) for line in (mnist_dir / "SHA256SUMS").read_text().splitlines())
        assert listed == mnist.PINNED_SHA256

    def test_one_flipped_byte_is_a_hash_mismatch_naming_the_file(self, mnist_copy: Path) -> None:
        flip_byte(mnist_copy / mnist.TEST_LABELS)
        with pytest.raises(HashMismatchError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256 mismatch"):
            mnist.verify_directory(mnist_copy)

    def test_load_refuses_modified_data_unless_explicitly_allowed(self, mnist_copy: Path) -> None:
        labels = mnist_copy / mnist.TRAIN_LABELS
        import gzip

        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[8] = (raw[8] + 1) % 10  # a flipped label, still a valid IDX file
        labels.write_bytes(gzip.compress(bytes(raw)))
        with pytest.raises(HashMismatchError):
            mnist.load(mnist_copy)
        data = mnist.load(mnist_copy, allow_unverified=True)
        assert data.verified is False
        assert data.file_sha256[mnist.TRAIN_LABELS] != mnist.PINNED_SHA256[mnist.TRAIN_LABELS]

    def test_missing_file_is_reported(self, mnist_copy: Path) -> None:
        (mnist_copy / mnist.TEST_IMAGES).unlink()
        with pytest.raises(IdxFormatError, match="file not found"):
            mnist.verify_directory(mnist_copy)

    def test_load_gives_the_standard_split_sizes(self, mnist_dir: Path) -> None:
        data = mnist.load(mnist_dir)
        assert data.train.images.shape == (60_000, 28, 28)
        assert data.test.labels.shape == (10_000,)
        assert data.verified


class TestFetch:
    def test_fetch_from_a_mirror_downloads_and_verifies_all_files(
        self, mnist_dir: Path, tmp_path: Path
    ) -> None:
        target = tmp_path / "fetched"
        hashes = mnist.fetch(target, [mnist_dir.as_uri() + "/"])
        assert hashes == mnist.PINNED_SHA256
        assert sorted(p.name for p in target.iterdir()) == sorted(mnist.PINNED_SHA256)

    def test_a_corrupt_mirror_is_skipped_for_the_next(
        self, mnist_copy: Path, mnist_dir: Path, tmp_path: Path
    ) -> None:
        flip_byte(mnist_copy / mnist.TRAIN_IMAGES)
        target = tmp_path / "fetched"
        mnist.fetch(target, [mnist_copy.as_uri(), mnist_dir.as_uri()])
        assert mnist.verify_directory(target) == mnist.PINNED_SHA256

    def test_when_every_mirror_fails_nothing_is_written(self, mnist_copy: Path, tmp_path: Path) -> None:
        for name in mnist.PINNED_SHA256:
            flip_byte(mnist_copy / name)
        target = tmp_path / "fetched"
        with pytest.raises(DownloadError, match="no mirror delivered the pinned file") as info:
            mnist.fetch(target, [mnist_copy.as_uri(), "ftp://example.invalid/mnist/"])
        assert info.value.exit_code == 2
        assert "not allowed" in str(info.value)
        assert list(target.iterdir()) == []

    def test_an_existing_good_file_is_not_downloaded_again(self, mnist_dir: Path, tmp_path: Path) -> None:
        target = tmp_path / "fetched"
        mnist.fetch(target, [mnist_dir.as_uri()])
        before = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
        mnist.fetch(target, ["file:///nonexistent/"])
        assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == before


class TestMirrorsFromEnvironment:
    def test_default_when_unset(self) -> None:
        assert mnist.mirrors_from_env(None) == mnist.DEFAULT_MIRRORS

    def test_comma_or_space_separated(self) -> None:
        assert mnist.mirrors_from_env("a/, b/ c/") == ("a/", "b/", "c/")
