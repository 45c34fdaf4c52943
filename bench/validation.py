"""Side-by-side checks of reader settings on validation sets (decide here) and the real scans (measure only).

    python bench/validation.py --config segment.RAISED_TAIL_HEIGHT=0 --config segment.RAISED_TAIL_HEIGHT=0.65
    python bench/validation.py --config reader.FALLBACK_BELOW=0.2 --config reader.FALLBACK_BELOW=0.1 --real
    python bench/validation.py --config "" --config sequence=runs/my_ensemble --real

Each --config (comma-separated ``module.CONSTANT=value`` of ``digitread.inference``, and
``sequence=DIR`` for another sequence model or ensemble than the shipped one, ``model=DIR`` for another
digit classifier; a tuple constant takes
its values joined by ':', ``reader.VIEW_SCALES=0.75:1.3``) is one line of JSON:
the share of each set read exactly, and how many readings differ from the first config's. A change to
the reader is chosen on the validation sets, made from MNIST *validation* digits that no model trained
on and that the benchmark's test digits never meet:

- ``photos``: 600 generated photos (``data/synth.py``, seed 77), text exact (points and signs count);
- ``strips``: 400 strips of 1-4 digits, a third with marks after them (``data/strips.py``, seed 31);
- ``underlined``: 400 strips of 1-4 digits, every one with a pen underline (seed 41);
- ``pale``: 300 pale numbers beside bold writing, one number per image (``bench/reading.py``, seed 51);
- ``fields``: 400 fields cropped from a column of numbers, the rows above and below cut into at the
  crop's edges, one number per image (``column_fields``, seed 61);
- ``commas``: 400 strips of 4-7 digits with thousands separators, half of them pen commas that reach
  below the line, and a comma or ',-' after half of them (``COMMA_STRIPS``, seed 71);
- ``combs``: 300 comb fields, a form's printed row of boxes with a digit in each, closed boxes or
  teeth rising from a baseline, the page a little askew (``data/synth.py``, seed 82), one number per
  image;
- ``singles``: 600 generated photos of one digit each, a third of them chalked on a board (``SINGLE_DIGITS``,
  seed 91), text exact;
- ``tilted``: 300 generated photos turned up to 20 degrees either way (``TILTED``, seed 93), text exact.

``--real`` adds the real scans in ../shared/data/realdev, one number per image: measured, never chosen on.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from reading import COMMA_STRIPS, SINGLE_DIGITS, TILTED, faint_numbers, realdev_rows  # noqa: E402

from digitread.data.mnist import load_mnist  # noqa: E402
from digitread.data.strips import StripConfig, compose_strip  # noqa: E402
from digitread.data.synth import make_comb_fields, make_numbers  # noqa: E402
from digitread.eval.reading import digits_only  # noqa: E402
from digitread.inference.reader import DigitReader  # noqa: E402

# The trailing marks the strips drew before crosses were drawn twice as often: kept, so the strips
# set is the same draw that earlier choices were made on.
STRIP_MARKS = (",", "-", "=", "/-", ",-", ".-", "--", "~", "+", "x", "v")


def column_fields(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """Fields cropped from a column of numbers, one number per field (a form's or a register's column,
    a table of readings): the crop holds its row's number somewhere in its middle (centre 0.3-0.7 of
    the crop's height), and parts of the rows above and below, cut by the crop's edges, bleed in."""
    rng = np.random.default_rng(seed)
    cfg = StripConfig(min_digits=1, max_digits=3, words=0, underline=0, invert=0, pattern=0, ruled=0, box=0, baseline=0)
    samples = []
    for _ in range(count):
        rows = [compose_strip(images, labels, rng, cfg) for _ in range(5)]
        inks = [np.clip(np.median(im) - im.astype(np.float32), 0, 255) for im, _ in rows]
        width = max(ink.shape[1] for ink in inks) + 20
        gaps = [int(ink.shape[0] * rng.uniform(0.0, 0.5)) for ink in inks]
        page = np.zeros((sum(ink.shape[0] for ink in inks) + sum(gaps), width), np.float32)
        tops, y = [], 0
        for ink, gap in zip(inks, gaps, strict=True):
            x = int(rng.integers(0, width - ink.shape[1] + 1))
            page[y : y + ink.shape[0], x : x + ink.shape[1]] += ink
            tops.append(y)
            y += ink.shape[0] + gap
        target = 2  # the middle row; two above it and two below, to be cut by the crop
        h = inks[target].shape[0]
        crop_h = int(h * rng.uniform(1.6, 3.0))
        centre = tops[target] + h / 2
        y0 = int(np.clip(centre - rng.uniform(0.3, 0.7) * crop_h, 0, page.shape[0] - crop_h))
        field = 225 - page[y0 : y0 + crop_h] + rng.normal(0, 3, (crop_h, width))
        samples.append((np.clip(field, 0, 255).astype(np.uint8), rows[target][1]))
    return samples


def validation_sets(scale: float = 1.0) -> dict[str, tuple[list, list[str], bool]]:
    """name -> (images, expected texts, whether the image holds one number)."""
    val = load_mnist().val

    def n(count: int) -> int:
        return max(1, round(count * scale))

    def strips(count: int, seed: int, cfg: StripConfig) -> list[tuple[np.ndarray, str]]:
        rng = np.random.default_rng(seed)
        return [compose_strip(val.images, val.labels, rng, cfg) for _ in range(count)]

    sets = {
        "photos": make_numbers(val.images, val.labels, n(600), seed=77),
        "strips": strips(
            n(400), 31, StripConfig(min_digits=1, max_digits=4, trailing_marks=STRIP_MARKS, underline=0, words=0)
        ),
        "underlined": strips(n(400), 41, StripConfig(min_digits=1, max_digits=4, underline=1.0, words=0)),
        "pale": faint_numbers(val.images, val.labels, n(300), seed=51),
        "fields": column_fields(val.images, val.labels, n(400), seed=61),
        "commas": strips(n(400), 71, COMMA_STRIPS),
        "combs": make_comb_fields(val.images, val.labels, n(300), seed=82),
        "singles": make_numbers(val.images, val.labels, n(600), seed=91, cfg=SINGLE_DIGITS),
        "tilted": make_numbers(val.images, val.labels, n(300), seed=93, cfg=TILTED),
    }
    one_number = ("pale", "fields", "combs", "singles")
    return {name: ([im for im, _ in s], [t for _, t in s], name in one_number) for name, s in sets.items()}


def real_sets() -> dict[str, tuple[list, list[str], bool]]:
    sets = {name: realdev_rows(name) for name in ("orand_car_a", "danish_rowid")}
    return {name: ([r["path"] for r in rows], [r["label"] for r in rows], True) for name, rows in sets.items() if rows}


_DEFAULTS: dict[tuple[object, str], object] = {}  # (module, constant) -> its value before any config


def apply(config: str) -> tuple[str | None, str | None]:
    """Set ``module.CONSTANT=value`` pairs (comma-separated) on ``digitread.inference`` modules, every
    constant an earlier config set back to its default first; returns the config's ``model=DIR`` and
    ``sequence=DIR`` (None: the shipped model)."""
    for (module, constant), value in _DEFAULTS.items():
        setattr(module, constant, value)
    models: dict[str, str | None] = {"model": None, "sequence": None}
    for pair in filter(None, config.split(",")):
        name, _, value = pair.partition("=")
        if name.strip() in models:
            models[name.strip()] = value.strip()
            continue
        module_name, _, constant = name.strip().rpartition(".")
        module = importlib.import_module(f"digitread.inference.{module_name}")
        if not hasattr(module, constant):
            raise SystemExit(f"digitread.inference.{module_name} has no {constant}")
        default = _DEFAULTS.setdefault((module, constant), getattr(module, constant))
        kind = type(default)
        setattr(module, constant, tuple(map(float, value.split(":"))) if kind is tuple else kind(float(value)))
    return models["model"], models["sequence"]


@functools.cache
def readers_for(models: tuple[str | None, str | None]) -> dict[bool, DigitReader]:
    """The readers of a config's ``(model, sequence)`` folders (``apply``), for images of many numbers
    (False) and of one (True); loaded once."""
    return {
        one: DigitReader.from_pretrained(models[0], sequence_path=models[1], one_number=one) for one in (False, True)
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", default=[], help="module.CONSTANT=value[,...]; repeat")
    parser.add_argument("--real", action="store_true", help="also measure the real scans (never choose on them)")
    parser.add_argument("--scale", type=float, default=1.0, help="a share of each validation set (quick looks)")
    parser.add_argument("--only", action="append", default=[], help="measure only this set (repeat)")
    args = parser.parse_args(argv)
    sets = validation_sets(args.scale) | (real_sets() if args.real else {})
    sets = {name: s for name, s in sets.items() if name in args.only} if args.only else sets
    first: dict[str, list[str]] = {}
    results = []
    for config in args.config or [""]:
        readers = readers_for(apply(config))
        row: dict = {"config": config}
        for name, (images, expected, one) in sets.items():
            texts = [r.text for r in readers[one].read_many(images)]
            # Text exact on the photos (points and signs count); digits only elsewhere, as the benchmark does.
            scored = texts if name in ("photos", "singles", "tilted") else [digits_only(t) for t in texts]
            row[name] = round(float(np.mean([t == e for t, e in zip(scored, expected, strict=True)])), 4)
            if name in first:
                row[f"{name}_changed"] = sum(a != b for a, b in zip(first[name], texts, strict=True))
            else:
                first[name] = texts
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


if __name__ == "__main__":
    main()
