"""Write stored corrections out as labelled images that training and evaluation can read.

    DIR/images/<id>.<ext>       each image as it was sent; DIR/labels.csv names its number
    DIR/digits/<d>/<id>_<k>.png each digit cut out where the service's boxes match the corrected number
    DIR/digits.csv              file, label, feedback id and position of each cut digit
    DIR/digits-images-idx3-ubyte.gz, DIR/digits-labels-idx1-ubyte.gz
                                the cut digits in MNIST form (28x28, white on black), as IDX files

A digit is cut only when the reading found exactly as many digit boxes as the corrected number has
digits: then the k-th box holds the k-th digit. Otherwise only the whole image is kept, labelled.
Every file is written atomically, so an interrupted export never leaves half a file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digitread._io import atomic_write_bytes
from digitread.data.idx import write_idx
from digitread.errors import ImageError
from digitread.feedback.store import Feedback, FeedbackStore
from digitread.inference.io import load_image
from digitread.inference.normalize import normalize_digit

EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
MARGIN = 0.15  # share of a box's longer side kept around a cut digit, so no stroke end is lost


@dataclass
class ExportSummary:
    images: int
    digits: int
    images_not_cut: int  # the box count did not match the corrected number's digit count

    def to_dict(self) -> dict:
        return {"images": self.images, "digits": self.digits, "images_not_cut": self.images_not_cut}


def digit_boxes(feedback: Feedback) -> list[tuple[str, tuple[int, int, int, int]]] | None:
    """(label, box) for each digit of the corrected number, or None when the boxes do not match it."""
    boxes = [tuple(d["box"]) for d in feedback.reading.get("digits", []) if d["char"].isdigit()]
    labels = [c for c in feedback.number if c.isdigit()]
    if not labels or len(boxes) != len(labels):
        return None
    return list(zip(labels, boxes, strict=True))


def cut_digit(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    pad = int(round(MARGIN * max(w, h)))
    height, width = gray.shape
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(width, x + w + pad), min(height, y + h + pad)
    if x1 <= x0 or y1 <= y0:
        raise ImageError(f"box {box} lies outside the {width}x{height} image")
    return gray[y0:y1, x0:x1]


def _png(gray: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", gray)
    if not ok:
        raise ImageError("could not encode a PNG")
    return encoded.tobytes()


def _csv(header: list[str], rows: list[list]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def export_feedback(store: FeedbackStore, out_dir: str | Path) -> ExportSummary:
    """Write every stored correction under ``out_dir`` (see the module docstring for the layout)."""
    out = Path(out_dir)
    labels, digit_rows, fields, field_labels = [], [], [], []
    not_cut = 0
    for fb in store:
        name = f"images/{fb.id:06d}.{EXTENSIONS.get(fb.image_format, 'img')}"
        atomic_write_bytes(out / name, fb.image)
        pairs = digit_boxes(fb)
        cut = 0
        if pairs is not None:
            gray = load_image(fb.image, name)
            for k, (label, box) in enumerate(pairs):
                try:
                    crop = cut_digit(gray, box)
                    field = normalize_digit(crop)
                except ImageError:  # a box with no ink in it: keep the others
                    continue
                file = f"digits/{label}/{fb.id:06d}_{k}.png"
                atomic_write_bytes(out / file, _png(crop))
                digit_rows.append([file, label, fb.id, k])
                fields.append(field)
                field_labels.append(int(label))
                cut += 1
        else:
            not_cut += 1
        labels.append([name, fb.number, fb.read_text, fb.id, fb.created_at.isoformat(), cut])
    atomic_write_bytes(out / "digits.csv", _csv(["file", "label", "feedback_id", "position"], digit_rows))
    images = np.stack(fields) if fields else np.zeros((0, 28, 28), np.uint8)
    write_idx(out / "digits-images-idx3-ubyte.gz", images.astype(np.uint8))
    write_idx(out / "digits-labels-idx1-ubyte.gz", np.array(field_labels, np.uint8))
    # Written last: a labels.csv present means the export it describes is complete.
    header = ["file", "number", "read", "feedback_id", "created_at", "digits_cut"]
    atomic_write_bytes(out / "labels.csv", _csv(header, labels))
    return ExportSummary(len(labels), len(digit_rows), not_cut)
