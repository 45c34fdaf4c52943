"""Benchmark of the reader: whole numbers read exactly, on generated photos and on real scans, and speed.

    python bench/reading.py                         # writes bench/results/reading.json
    python bench/reading.py --failures reports/     # also pictures of the worst real-scan failures

Besides reading.json it draws reading_confidence.png: for auto's readings of each set, what share is
read right when only readings at least so sure are accepted, and the reliability diagram.

Every accuracy is given for each reading mode side by side (segment: digit by digit; sequence: each
line whole; auto: per line, the surer of the two), measured in one run.

Generated photos are composed from MNIST *test* digits (data/synth.py, seeded); generated strips of
touching digits and of numbers with thousands separators likewise (data/strips.py). The real scans in
../shared/data/realdev are only measured: never trained, fitted or calibrated on, and no picture made
from them is committed (the failure pictures go to a folder git ignores; the confidence picture draws
only figures).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from backends import timed_load  # noqa: E402
from run import machine  # noqa: E402

from digitread._io import atomic_write_json  # noqa: E402
from digitread.data.mnist import MnistData, load_mnist  # noqa: E402
from digitread.data.strips import StripConfig, compose_strip  # noqa: E402
from digitread.data.synth import (  # noqa: E402
    SynthConfig,
    compose_number,
    make_blank_pages,
    make_comb_fields,
    make_numbers,
)
from digitread.eval.reading import confidence_report, digits_only, score_readings  # noqa: E402
from digitread.eval.report import plot_reading_confidence  # noqa: E402
from digitread.inference import preprocess  # noqa: E402
from digitread.inference import reader as reader_module  # noqa: E402
from digitread.inference.annotate import annotate  # noqa: E402
from digitread.inference.io import load_image  # noqa: E402
from digitread.inference.reader import MODES, DigitReader  # noqa: E402
from digitread.inference.sequence import SequenceReader  # noqa: E402
from digitread.inference.strip import image_strip  # noqa: E402

REALDEV = Path(__file__).parents[1] / ".." / "shared" / "data" / "realdev"
REAL_NAMES = {"orand_car_a": "real cheque amounts", "danish_rowid": "real register numbers"}


def bench_synthetic(reader: DigitReader, data: MnistData, count: int, confidences: dict | None = None) -> dict:
    samples = make_numbers(data.test.images, data.test.labels, count, seed=2026)
    t0 = time.perf_counter()
    readings = reader.read_many([image for image, _ in samples])
    seconds = time.perf_counter() - t0
    predicted, expected = [r.text for r in readings], [text for _, text in samples]
    sureness = ([r.confidence for r in readings], [p == e for p, e in zip(predicted, expected, strict=True)])
    if confidences is not None:
        confidences["generated photos"] = sureness
    return {
        "images": count,
        "digits_per_image": "4-8",
        "with_marks": score_readings(predicted, expected),
        "confidence": confidence_report(*sureness),
        "digits_only": score_readings([digits_only(p) for p in predicted], [digits_only(e) for e in expected]),
        "ms_per_image": round(seconds / count * 1000, 2),
    }


def realdev_rows(name: str) -> list[dict] | None:
    """The rows of a real-scan set's labels.csv (``file``, ``label``), each with ``path`` to its image;
    None when the set is not here."""
    folder = REALDEV / name
    if not (folder / "labels.csv").is_file():
        return None
    with open(folder / "labels.csv", newline="") as f:
        return [{**row, "path": folder / "images" / row["file"]} for row in csv.DictReader(f)]


def bench_realdev(
    reader: DigitReader, name: str, failures: Path | None, confidences: dict | None = None
) -> dict | None:
    rows = realdev_rows(name)
    if rows is None:
        return None
    paths = [row["path"] for row in rows]
    readings = reader.read_many(paths, [row["file"] for row in rows])
    predicted = [digits_only(r.text) for r in readings]
    expected = [row["label"] for row in rows]
    result = score_readings(predicted, expected)
    sureness = ([r.confidence for r in readings], [p == e for p, e in zip(predicted, expected, strict=True)])
    result["confidence"] = confidence_report(*sureness)
    if confidences is not None:
        confidences[REAL_NAMES[name]] = sureness
    if failures is not None:
        wrong = [
            (r, p, row) for r, p, row in zip(readings, paths, rows, strict=True) if digits_only(r.text) != row["label"]
        ]
        wrong.sort(key=lambda item: -item[0].confidence)  # confident failures first: the worst kind
        tiles = []
        for reading, path, row in wrong[:16]:
            picture = annotate(load_image(path), reading, min_side=160)
            picture = cv2.resize(picture, (480, int(480 * picture.shape[0] / picture.shape[1])))
            label = f"{row['label']} -> {digits_only(reading.text) or '(nothing)'} ({reading.confidence:.2f})"
            cv2.putText(picture, label, (5, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 0, 0), 2)
            tiles.append(picture)
        if tiles:
            failures.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(failures / f"worst_failures_{name}.png"), np.vstack(tiles))
    return result


def bench_non_digits(reader: DigitReader, per_letter: int = 4) -> dict:
    """Letters (drawn with OpenCV fonts that training's outlier letters do not use, jittered) must not come
    back as confident digits. All letters but i, l, o, I, O are drawn, digit look-alikes (b, g, q, s, z,
    B, S, Z) included, although training only shows letters without a digit look-alike.

    Counted as rejected: an empty reading, or every character marked uncertain (below min_confidence).
    """
    rng = np.random.default_rng(11)
    fonts = [cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_PLAIN | cv2.FONT_ITALIC]
    letters = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRTUVWXYZ"
    images = []
    for ch in letters:
        for _ in range(per_letter):
            canvas = np.full((96, 96), int(rng.integers(200, 250)), np.uint8)
            font = fonts[int(rng.integers(len(fonts)))]
            cv2.putText(
                canvas,
                ch,
                (int(rng.integers(15, 35)), int(rng.integers(60, 75))),
                font,
                float(rng.uniform(1.8, 2.6)),
                int(rng.integers(20, 60)),
                int(rng.integers(2, 5)),
                cv2.LINE_AA,
            )
            images.append(canvas)
    readings = reader.read_many(images)
    rejected = sum(not r.digits or all(d.uncertain for d in r.digits if d.char.isdigit()) for r in readings)
    return {"images": len(images), "rejected": rejected / len(images), "min_confidence": reader.min_confidence}


def bench_blank(reader: DigitReader, count: int = 300) -> dict:
    """Blank generated pages (``data.synth.make_blank_pages``: lighting, grain, ruled lines, JPEG, no
    ink) must read empty: the share that does, and the share read 0.5 or more sure anyway."""
    readings = reader.read_many(make_blank_pages(count, seed=5))
    return {
        "images": count,
        "read_empty": sum(not r.text for r in readings) / count,
        "read_sure": sum(bool(r.text) and r.confidence >= 0.5 for r in readings) / count,
    }


def faint_numbers(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """Pale numbers (1-3 digits at 15-45% of their contrast) on a page that, in 7 of 10, also holds a
    bold word of letters lower down: bold ink sets Otsu's threshold above the pale strokes, as a
    clerk's notes do beside a register's row number."""
    rng = np.random.default_rng(seed)
    cfg = StripConfig(min_digits=1, max_digits=3, words=0, underline=0, invert=0)
    samples = []
    for _ in range(count):
        number, label = compose_strip(images, labels, rng, cfg)
        paper = float(np.median(number))
        number = paper + (number.astype(np.float32) - paper) * rng.uniform(0.15, 0.45)
        h, w = number.shape
        page = np.full((3 * h, max(w, 3 * h)), paper, np.float32) + rng.normal(0, 2, (3 * h, max(w, 3 * h)))
        y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, page.shape[1] - w + 1))
        page[y : y + h, x : x + w] = number
        page = np.clip(page, 0, 255).astype(np.uint8)
        if rng.random() < 0.7:
            word = "".join(rng.choice(list("aceimnoruvw"), int(rng.integers(3, 7))))
            scale = h / 60 * rng.uniform(0.6, 1.0)
            at = (int(rng.integers(0, max(1, page.shape[1] // 3))), int(h * rng.uniform(2.3, 2.8)))
            ink = int(max(0, paper - rng.uniform(120, 180)))
            cv2.putText(page, word, at, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, scale, ink, max(1, int(3 * scale)))
        samples.append((page, label))
    return samples


def bench_faint(reader: DigitReader, data: MnistData, count: int = 300) -> dict:
    """Pale numbers beside bold writing (``faint_numbers``, MNIST test digits), each image a field with
    one number: read with the second look at images read empty (``faint_look``), and without it."""
    samples = faint_numbers(data.test.images, data.test.labels, count, seed=2029)
    expected = [label for _, label in samples]
    result = {"images": count, "digits_per_image": "1-3"}
    for name, faint_look in (("second_look", True), ("first_look_only", False)):
        looker = DigitReader(reader.classifier, one_number=True, sequence=reader.sequence, faint_look=faint_look)
        readings = looker.read_many([image for image, _ in samples])
        result[name] = score_readings([digits_only(r.text) for r in readings], expected)
    return result


def bench_photo_speed(reader: DigitReader, data: MnistData, repeats: int = 20) -> dict:
    """A 1280x960 photo with a 6-digit number on it, read end to end (decode excluded)."""
    rng = np.random.default_rng(7)
    image, text = compose_number(
        data.test.images, data.test.labels, rng, SynthConfig(min_digits=6, max_digits=6, decimal_point=0, minus=0)
    )
    photo = np.full((960, 1280, 3), np.median(image, axis=(0, 1)), np.uint8)
    scale = 1000 / image.shape[1]
    small = cv2.resize(image, None, fx=scale, fy=scale)
    photo[300 : 300 + small.shape[0], 140 : 140 + small.shape[1]] = small
    gray = load_image(photo)
    reader.read(gray)
    reading, seconds = timed_load(lambda: reader.read(gray), repeats)
    return {
        "size": "1280x960",
        "digits": 6,
        "median_ms": round(seconds * 1000, 2),
        "read_correctly": reading.text == text,
    }


def bench_clutter_speed(reader: DigitReader, repeats: int = 5) -> dict:
    """Images of clutter with no number on them, read end to end: grain (uniform noise; at 1024x768
    no pixel is merged by shrinking to the working size, the worst case) and blotchy texture (blurred
    noise). Thousands of specks come through binarisation; reading them must stay quick (a service
    reads whatever it is sent) and should find no number (auto does; segment only reads junk)."""
    rng = np.random.default_rng(11)
    images = {
        "grain 1280x960": rng.integers(0, 256, (960, 1280), dtype=np.uint8),
        "grain 1024x768": rng.integers(0, 256, (768, 1024), dtype=np.uint8),
        "texture 1280x960": np.clip(cv2.GaussianBlur(rng.normal(128, 60, (960, 1280)), (0, 0), 3), 0, 255).astype(
            np.uint8
        ),
    }
    out = {}
    for name, image in images.items():
        reading, seconds = timed_load(lambda image=image: reader.read(image), repeats)
        out[name] = {
            "median_ms": round(seconds * 1000, 1),
            "read_empty": not reading.text,
            "lines_read": len(reading.lines),
        }
    return out


# Numbers with thousands separators, half of them commas written as a pen writes them (down below the
# line), and a comma or ',-' after half of them (``StripConfig.pen_commas``).
COMMA_STRIPS = StripConfig(
    min_digits=4, max_digits=7, separators=1.0, pen_commas=1.0, trailing=0.5, trailing_marks=(",", ",-"),
    underline=0, words=0,
)  # fmt: skip


def bench_strips(readers: dict[str, DigitReader], data: MnistData, cfg: StripConfig, seed: int, count: int) -> dict:
    """Generated strips of MNIST test digits (``cfg``, seeded): the digits read exactly by each mode on
    the same images."""
    rng = np.random.default_rng(seed)
    samples = [compose_strip(data.test.images, data.test.labels, rng, cfg) for _ in range(count)]
    result = {"images": count, "digits_per_image": f"{cfg.min_digits}-{cfg.max_digits}"}
    for mode, reader in readers.items():
        readings = reader.read_many([image for image, _ in samples])
        result[mode] = score_readings([digits_only(r.text) for r in readings], [label for _, label in samples])
    return result


def bench_commas(readers: dict[str, DigitReader], data: MnistData, count: int = 300) -> dict:
    """Numbers of 4-7 digits with thousands separators (``COMMA_STRIPS``), half of them pen commas."""
    return bench_strips(readers, data, COMMA_STRIPS, 2031, count)


def bench_touching(readers: dict[str, DigitReader], data: MnistData, count: int = 300) -> dict:
    """Strips in which every digit is pushed against the one before, a third of the gaps joined by a
    pen stroke."""
    # The marks after the number are pinned to those of the first measurement, and underlines left out,
    # so the set stays the same when training strips gain new kinds of marks.
    marks = (",", "-", "=", "/-", ",-", ".-", "--", "~")
    cfg = StripConfig(
        min_digits=3, max_digits=7, touching=1.0, ligature=0.3, words=0, trailing_marks=marks, underline=0
    )
    return bench_strips(readers, data, cfg, 2027, count)


# Photos taken askew: the whole picture turned up to 20 degrees either way.
TILTED = SynthConfig(rotation=20.0)
# One digit per photo (a form's box, a score, a postal digit), a third of them chalked on a board.
SINGLE_DIGITS = SynthConfig(min_digits=1, max_digits=1, decimal_point=0.0, minus=0.0, invert=0.3)


def _modes_and_settings_off(
    readers: dict[str, DigitReader],
    samples: list,
    off: dict[str, tuple[ModuleType, str, float]],
    exact_text: bool = True,
) -> dict:
    """``samples`` read by each mode, and by auto with each setting of ``off`` (name -> the module, its
    constant and the value that turns it off) set so in turn, side by side, under its name: text exact,
    or digits only."""

    def score(readings: list) -> dict:
        texts = [r.text if exact_text else digits_only(r.text) for r in readings]
        return score_readings(texts, [label for _, label in samples])

    images = [image for image, _ in samples]
    result = {mode: score(reader.read_many(images)) for mode, reader in readers.items()}
    for name, (module, constant, value) in off.items():
        default = getattr(module, constant)
        try:
            setattr(module, constant, type(default)(value))
            result[name] = score(readers["auto"].read_many(images))
        finally:
            setattr(module, constant, default)
    return result


def bench_tilted(readers: dict[str, DigitReader], data: MnistData, count: int = 300) -> dict:
    """Generated photos turned up to 20 degrees either way (``TILTED``, MNIST test digits), text exact:
    read by each mode, and by auto without turning them level (``preprocess.TILT_MIN`` 0, side by side)."""
    samples = make_numbers(data.test.images, data.test.labels, count, seed=2037, cfg=TILTED)
    result = _modes_and_settings_off(readers, samples, {"auto_not_turned": (preprocess, "TILT_MIN", 0)})
    return {"images": count, "digits_per_image": "4-8", "degrees": TILTED.rotation} | result


def bench_single_digits(readers: dict[str, DigitReader], data: MnistData, count: int = 1000) -> dict:
    """Generated photos of one MNIST test digit each (``SINGLE_DIGITS``): read exactly by each mode, and
    by auto with the lighter half of an unevenly lit board taken for paper, as before
    ``preprocess.BRIGHT_MINORITY`` (side by side)."""
    samples = make_numbers(data.test.images, data.test.labels, count, seed=2035, cfg=SINGLE_DIGITS)
    result = _modes_and_settings_off(
        readers, samples, {"auto_board_halves_as_paper": (preprocess, "BRIGHT_MINORITY", 0)}
    )
    return {"images": count, "digits_per_image": "1", "on_boards": SINGLE_DIGITS.invert} | result


def bench_combs(readers: dict[str, DigitReader], data: MnistData, count: int = 300) -> dict:
    """Comb fields (a form's printed row of boxes, a digit of MNIST's test set in each; ``data.synth``):
    the digits read exactly by each mode, and by auto with the comb's teeth left in, and without the two
    readings weighed together (``reader.COMB_JOINT`` 0), each side by side."""
    samples = make_comb_fields(data.test.images, data.test.labels, count, seed=2033)
    off = {
        "auto_teeth_left_in": (preprocess, "COMB_TEETH", 0),
        "auto_not_weighed": (reader_module, "COMB_JOINT", 0),
    }
    result = _modes_and_settings_off(readers, samples, off, exact_text=False)
    return {"images": count, "digits_per_image": "3-8"} | result


def bench_sequence_speed(sequence: SequenceReader, data: MnistData, count: int = 256, repeats: int = 5) -> dict:
    """Strips per second through the sequence model (strip cutting excluded), batched and one at a time."""
    rng = np.random.default_rng(2028)
    strips = []
    while len(strips) < count:
        strip = image_strip(
            compose_strip(data.test.images, data.test.labels, rng, StripConfig(min_digits=3, words=0, underline=0))[0]
        )
        if strip is not None:
            strips.append(strip)
    sequence.read(strips[:8])  # warm up
    batched, single = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sequence.read(strips)
        batched.append(time.perf_counter() - t0)
    for strip in strips[:50]:
        t0 = time.perf_counter()
        sequence.read([strip])
        single.append(time.perf_counter() - t0)
    return {
        "strips": count,
        "median_width_px": int(np.median([s.shape[1] for s in strips])),
        "strips_per_second_batched": round(count / statistics.median(batched), 1),
        "ms_per_strip_alone": round(statistics.median(single) * 1000, 2),
        "decoder": sequence.decoder,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results", help="folder for reading.json")
    parser.add_argument("--count", type=int, default=1000, help="generated photos")
    parser.add_argument("--model", default=None, help="digit model folder (default: the shipped model)")
    parser.add_argument("--sequence-model", default=None, help="sequence model folder (default: the shipped one)")
    parser.add_argument("--failures", type=Path, default=None, help="write pictures of the worst real failures here")
    args = parser.parse_args()
    reader = DigitReader.from_pretrained(args.model, sequence_path=args.sequence_model)  # auto, as users get it
    segment_reader = DigitReader(reader.classifier, mode="segment")
    # Each real image is a field with one number: every mode is measured with one_number.
    fields = {
        mode: DigitReader(reader.classifier, one_number=True, sequence=reader.sequence, mode=mode) for mode in MODES
    }
    data = load_mnist(val_size=0)  # generated images are made from its test digits
    confidences: dict[str, tuple[list[float], list[bool]]] = {}  # auto's, for the picture
    synthetic = {
        "auto": bench_synthetic(reader, data, args.count, confidences),
        "segment": bench_synthetic(segment_reader, data, args.count),
    }
    realdev = {}
    for name in ("orand_car_a", "danish_rowid"):
        # Auto's failures are drawn and its confidences go in the picture; the other modes are only scored.
        realdev[name] = {mode: bench_realdev(r, name, None) for mode, r in fields.items() if mode != "auto"}
        realdev[name]["auto"] = bench_realdev(fields["auto"], name, args.failures, confidences)
        realdev[name]["auto_all_lines"] = bench_realdev(reader, name, None)
    result = {
        "model": args.model or "default",
        "sequence_model": args.sequence_model or "sequence",
        "synthetic": synthetic,
        "touching_strips": bench_touching(fields, data),
        "comma_strips": bench_commas(fields, data),
        "comb_fields": bench_combs(fields, data),
        "single_digits": bench_single_digits(fields, data),
        "tilted_photos": bench_tilted({"auto": reader, "segment": segment_reader}, data),
        "faint_numbers": bench_faint(reader, data),
        "realdev": realdev,
        "non_digits": {"auto": bench_non_digits(reader), "segment": bench_non_digits(segment_reader)},
        "blank_pages": {"auto": bench_blank(reader), "segment": bench_blank(segment_reader)},
        "photo": {"auto": bench_photo_speed(reader, data), "segment": bench_photo_speed(segment_reader, data)},
        "clutter": {"auto": bench_clutter_speed(reader), "segment": bench_clutter_speed(segment_reader)},
        "sequence_speed": bench_sequence_speed(reader.sequence, data),
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/reading.py",
    }
    atomic_write_json(Path(args.out) / "reading.json", result)
    plot_reading_confidence(confidences, Path(args.out) / "reading_confidence.png")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
