"""Find, verify, download and split MNIST.

Where the files are looked for, in order: an explicit ``data_dir``, the ``DIGITREAD_DATA`` variable,
the user cache (``~/.cache/digitread/mnist``), and only then the public mirrors, into that cache.
Every file is checked against the md5 of its decompressed content before it is used.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitread._io import atomic_write_bytes
from digitread.data.idx import parse_idx, read_raw_bytes
from digitread.errors import DataError

ENV_DATA = "DIGITREAD_DATA"
ENV_CACHE = "DIGITREAD_CACHE"


@dataclass(frozen=True)
class DatasetFile:
    name: str  # file name on the mirrors, ending in .gz
    md5: str  # of the decompressed content
    shape: tuple[int, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """What a digit data set's four IDX files must be, and where they can be fetched."""

    name: str
    train_images: DatasetFile
    train_labels: DatasetFile
    test_images: DatasetFile
    test_labels: DatasetFile
    mirrors: tuple[str, ...] = field(default=())

    def files(self) -> tuple[DatasetFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)


MNIST = DatasetSpec(
    name="mnist",
    train_images=DatasetFile("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    train_labels=DatasetFile("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624", (60000,)),
    test_images=DatasetFile("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    test_labels=DatasetFile("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637", (10000,)),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
)


@dataclass
class DigitDataset:
    """Images as uint8 (N, 28, 28), white ink on black, and int64 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> DigitDataset:
        return DigitDataset(self.images[index], self.labels[index])


@dataclass
class MnistData:
    train: DigitDataset
    val: DigitDataset | None
    test: DigitDataset
    source: Path
    checksums: dict[str, str]  # file name -> md5 of decompressed content
    split: dict = field(default_factory=dict)  # {"val_size", "seed"}: which images validation holds


def default_cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]) / "mnist"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digitread" / "mnist"


def _find_file(directory: Path, file: DatasetFile) -> Path | None:
    for candidate in (directory / file.name, directory / file.name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _has_all(directory: Path, spec: DatasetSpec) -> bool:
    return all(_find_file(directory, f) for f in spec.files())


def locate(spec: DatasetSpec = MNIST, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The folder holding all of ``spec``'s files, downloading them into the cache if need be."""
    if data_dir is not None:
        directory = Path(data_dir)
        if not directory.is_dir():
            raise DataError(f"data folder {directory} does not exist")
        missing = [f.name for f in spec.files() if not _find_file(directory, f)]
        if missing:
            raise DataError(f"data folder {directory} lacks {', '.join(missing)} (gzipped or raw IDX files)")
        return directory
    env = os.environ.get(ENV_DATA)
    if env:
        return locate(spec, env, download=False)
    cache = default_cache_dir()
    if _has_all(cache, spec):
        return cache
    if not download or not spec.mirrors:
        raise DataError(_offline_message(spec, cache))
    download_dataset(spec, cache)
    return cache


def _offline_message(spec: DatasetSpec, cache: Path) -> str:
    return (
        f"no {spec.name} data found and it could not be downloaded: pass --data-dir DIR or set {ENV_DATA}=DIR "
        f"to a folder with {', '.join(f.name for f in spec.files())} (gzipped or raw), or copy them to {cache}"
    )


def download_dataset(spec: DatasetSpec, cache: Path, retries: int = 3, timeout: float = 30.0) -> None:
    """Fetch each missing file from the first mirror that serves it intact; write it atomically."""
    cache.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for file in spec.files():
        if _find_file(cache, file):
            continue
        if not _download_one(spec, file, cache, retries, timeout, errors):
            detail = "; ".join(errors[-3:])
            raise DataError(f"{_offline_message(spec, cache)} (last errors: {detail})")


def _download_one(
    spec: DatasetSpec, file: DatasetFile, cache: Path, retries: int, timeout: float, errors: list[str]
) -> bool:
    for mirror in spec.mirrors:
        url = mirror + file.name
        for attempt in range(retries):
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    payload = response.read()
                content = gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload
                if hashlib.md5(content).hexdigest() != file.md5:
                    errors.append(f"{url}: checksum mismatch")
                    break  # a mirror serving the wrong file will not improve on retry
                # The cache holds what was verified; a second process writing the same file is harmless
                # because each writes a private temporary file and renames it into place.
                atomic_write_bytes(cache / file.name, payload)
                return True
            # HTTPException: a connection cut off before the declared length arrived (IncompleteRead).
            except (urllib.error.URLError, http.client.HTTPException, OSError, EOFError, ValueError, zlib.error) as e:
                errors.append(f"{url}: {getattr(e, 'reason', e)}")
                if attempt + 1 < retries:
                    time.sleep(min(2.0**attempt, 5.0) * 0.5)
    return False


def load_dataset_file(directory: Path, file: DatasetFile) -> tuple[np.ndarray, str]:
    """Read one file, verify its md5 and shape; returns the array and the md5."""
    path = _find_file(directory, file)
    if path is None:
        raise DataError(f"{directory / file.name}: file not found")
    data = read_raw_bytes(path)
    md5 = hashlib.md5(data).hexdigest()
    if md5 != file.md5:
        raise DataError(
            f"{path}: checksum mismatch (md5 of decompressed content {md5}, expected {file.md5}); "
            "the file is corrupt or is not the expected one"
        )
    array = parse_idx(data, str(path))
    if array.shape != file.shape:
        raise DataError(f"{path}: shape {array.shape}, expected {file.shape}")
    return array, md5


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices with each class in the same proportion in both, from ``seed``."""
    if val_size <= 0:
        return np.arange(len(labels)), np.array([], dtype=np.int64)
    from sklearn.model_selection import train_test_split

    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=val_size, stratify=labels, random_state=seed
    )
    return np.sort(train_idx), np.sort(val_idx)


def load_mnist(
    data_dir: str | Path | None = None,
    val_size: int = 5000,
    seed: int = 0,
    spec: DatasetSpec = MNIST,
    download: bool = True,
) -> MnistData:
    """Load, verify and split MNIST.

    >>> data = load_mnist(val_size=5000, seed=0)  # doctest: +SKIP
    >>> len(data.train), len(data.val), len(data.test)  # doctest: +SKIP
    (55000, 5000, 10000)
    """
    directory = locate(spec, data_dir, download=download)
    arrays, checksums = {}, {}
    for key, file in zip(("xtr", "ytr", "xte", "yte"), spec.files(), strict=True):
        arrays[key], checksums[file.name] = load_dataset_file(directory, file)
    if len(arrays["xtr"]) != len(arrays["ytr"]) or len(arrays["xte"]) != len(arrays["yte"]):
        raise DataError(f"{directory}: image and label counts differ")
    for key in ("ytr", "yte"):
        if arrays[key].max(initial=0) > 9:
            raise DataError(f"{directory}: labels outside 0-9")
    train = DigitDataset(arrays["xtr"], arrays["ytr"].astype(np.int64))
    test = DigitDataset(arrays["xte"], arrays["yte"].astype(np.int64))
    # A stratified split needs at least one image of each class on both sides.
    if val_size != 0 and not 10 <= val_size <= len(train) - 10:
        raise DataError(f"validation size {val_size} must be 0 or between 10 and {len(train) - 10}")
    train_idx, val_idx = stratified_split(train.labels, val_size, seed)
    val = train.subset(val_idx) if val_size else None
    return MnistData(train.subset(train_idx), val, test, directory, checksums, {"val_size": val_size, "seed": seed})
