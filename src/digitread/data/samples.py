"""Labelled digit samples a person brings: a folder of images in subfolders named 0-9, a folder with a
labels.csv (``file,label``), or a digit data set in IDX format (images and labels files, like MNIST's).

Images are turned into the 28x28 fields the model sees exactly as ``predict`` does (``prepare``), so
a model fine-tuned on them reads new images of the same hand the same way.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from digitread.errors import DataError, ImageError
from digitread.inference.io import IMAGE_SUFFIXES

MAX_SAMPLES = 200_000  # a person's samples, or a digit data set; refuse anything stranger before reading it


def _idx_pair(folder: Path) -> tuple[Path, Path] | None:
    images = sorted(folder.glob("*images-idx3-ubyte*"))
    labels = sorted(folder.glob("*labels-idx1-ubyte*"))
    if len(images) == 1 and len(labels) == 1:
        return images[0], labels[0]
    if images or labels:
        raise DataError(f"{folder}: expected one *images-idx3-ubyte and one *labels-idx1-ubyte file")
    return None


def _labelled_files(folder: Path) -> list[tuple[Path, int]]:
    csv_path = folder / "labels.csv"
    if csv_path.is_file():
        out = []
        with open(csv_path, newline="") as f:
            for number, row in enumerate(csv.reader(f), 1):
                if number == 1 and row and row[0].strip().lower() == "file":
                    continue  # a header
                if len(row) != 2 or row[1].strip() not in {str(d) for d in range(10)}:
                    raise DataError(f"{csv_path}: line {number} is not 'file,digit': {row}")
                out.append((folder / row[0].strip(), int(row[1])))
        return out
    out = []
    for digit in range(10):
        sub = folder / str(digit)
        if sub.is_dir():
            out += [(p, digit) for p in sorted(sub.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return out


def load_samples(folder: str | Path, prepare) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(fields (N, 28, 28) uint8, labels (N,), problems): ``prepare(path)`` makes a field from an image file;
    images that cannot be read are listed in ``problems`` and left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of samples")
    pair = _idx_pair(folder)
    if pair is not None:
        from digitread.data.idx import read_idx

        images, labels = read_idx(pair[0]), read_idx(pair[1])
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(f"{folder}: IDX images must be (N, 28, 28) with one label each, got {images.shape}")
        if len(images) > MAX_SAMPLES:
            raise DataError(f"{folder}: {len(images):,} images is over the limit of {MAX_SAMPLES:,}")
        if labels.max(initial=0) > 9:
            raise DataError(f"{pair[1]}: labels must be digits 0-9")
        return images.astype(np.uint8), labels.astype(np.int64), []
    files = _labelled_files(folder)
    if not files:
        raise DataError(
            f"{folder}: no samples found: put images in subfolders named 0-9, or list them in labels.csv "
            "(file,label), or give a folder with IDX images and labels"
        )
    if len(files) > MAX_SAMPLES:
        raise DataError(f"{folder}: {len(files):,} images is over the limit of {MAX_SAMPLES:,}")
    fields, labels, problems = [], [], []
    for path, digit in files:
        try:
            fields.append(prepare(path))
            labels.append(digit)
        except ImageError as e:
            problems.append(str(e))
    if not fields:
        raise DataError(f"{folder}: none of the {len(files)} samples could be read ({problems[0]})")
    return np.stack(fields).astype(np.uint8), np.array(labels, np.int64), problems
