"""PyTorch against ONNX Runtime on the shipped models: the figures behind ``backend="auto"``.

For each thread setting (PyTorch's, which the ONNX Runtime sessions copy at load) measures
- the digit model: ``DigitClassifier.probabilities`` (normalise, run, temperature, softmax) on one
  digit (ms per call) and on 256 (digits/s);
- each sequence member: one strip, and a batch of 64 strips (the reader's batch), strips/s;
- the reader: load time, and ms per image reading the example numbers one by one and all together.
Backends are timed turn about, and each figure is the median of --repeats rounds, so that load from
other processes on the machine falls on both alike. Writes bench/results/backends.json with the
machine described (and its load average before and after: figures taken on a busy machine say so).

    .venv/bin/python bench/backends.py                       # threads 1 and 2, 7 rounds, about 2 minutes
    .venv/bin/python bench/backends.py --threads 1 --repeats 3
    .venv/bin/python bench/backends.py --digit-models runs/bench/fast995-seed0,runs/bench/fast-seed0
                                                      # those models only: bench/results/backends_digit_models.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from digitread._io import atomic_write_json
from digitread.data.strips import collate_strips
from digitread.inference.io import load_image
from digitread.inference.layout import find_lines
from digitread.inference.predictor import DigitClassifier
from digitread.inference.reader import DigitReader
from digitread.inference.sequence import RIGHT_MARGIN, SequenceReader, strip_lengths, strip_tensor
from digitread.inference.strip import line_strip

sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = sorted((ROOT / "examples" / "numbers").glob("*.png"))
DIGITS = sorted((ROOT / "examples" / "digits").glob("*.png"))
BACKENDS = ("torch", "onnx")


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean seconds per call over ``calls`` calls, after two calls to warm up."""
    fn()
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def turn_about(fns: dict[str, Callable[[], object]], calls: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternation, ``repeats`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(seconds_per_call(fn, calls))
    return {name: statistics.median(t) for name, t in times.items()}


def example_strips() -> list[np.ndarray]:
    strips = []
    for path in NUMBERS:
        prepared, lines = find_lines(load_image(path))
        strips += [line_strip(prepared, line).image for line in lines]
    return strips


def strip_batch(strips: list[np.ndarray], frame_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Strips as ``SequenceReader.read`` hands them to a member whose output columns are ``frame_width``
    pixels wide: padded floats and valid columns."""
    x, _, _, _ = collate_strips([(np.pad(s, ((0, 0), (0, RIGHT_MARGIN))), "") for s in strips])
    return strip_tensor(x), strip_lengths(torch.tensor([s.shape[1] for s in strips]), x.shape[-1], frame_width)


def timed_load(make: Callable[[], object], repeats: int) -> tuple[object, float]:
    times, made = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        made = make()
        times.append(time.perf_counter() - start)
    return made, statistics.median(times)


def digit_model_speed(model: str | None, repeats: int) -> dict:
    """``DigitClassifier.probabilities`` on one digit and on 256, each backend in turn."""
    classifiers = {b: DigitClassifier.from_pretrained(model, backend=b) for b in BACKENDS}
    fields = np.stack([classifiers["torch"].prepare(p) for p in DIGITS])
    batch = np.resize(fields, (256, 28, 28))
    one = turn_about({b: (lambda c=c: c.probabilities(fields[:1])) for b, c in classifiers.items()}, 200, repeats)
    many = turn_about({b: (lambda c=c: c.probabilities(batch)) for b, c in classifiers.items()}, 5, repeats)
    return {b: {"batch_1_ms": round(one[b] * 1e3, 3), "batch_256_digits_per_s": round(256 / many[b])} for b in BACKENDS}


def bench_threads(threads: int, repeats: int, digit_models: list[str]) -> dict:
    torch.set_num_threads(threads)
    result: dict = {"threads": threads}
    if digit_models:  # other digit models only, the reader's figures left to a full run
        result["digit_models"] = {model: digit_model_speed(model, repeats) for model in digit_models}
        return result
    result["digit_model"] = digit_model_speed(None, repeats)

    readers = {b: SequenceReader.from_pretrained(backend=b) for b in BACKENDS}
    strips = example_strips()
    widest = max(strips, key=lambda s: s.shape[1])
    members = {}
    for m, model in enumerate(readers["torch"].models):
        fw = readers["torch"].frame_widths[m]
        single, batch64 = strip_batch([widest], fw), strip_batch([strips[i % len(strips)] for i in range(64)], fw)
        runs = {b: r.backends[m] for b, r in readers.items()}
        one = turn_about({b: (lambda f=f, s=single: f(*s)) for b, f in runs.items()}, 20, repeats)
        many = turn_about({b: (lambda f=f, s=batch64: f(*s)) for b, f in runs.items()}, 2, repeats)
        members[model.arch] = {
            b: {"batch_1_ms": round(one[b] * 1e3, 2), "batch_64_strips_per_s": round(64 / many[b])} for b in BACKENDS
        }
    result["sequence_members"] = members
    result["strip_widths"] = {"batch_1": int(single[0].shape[-1]), "batch_64": sorted({s.shape[1] for s in strips})}

    reader_figures = {}
    loaded = {}
    for b in (*BACKENDS, "auto"):
        loaded[b], load_s = timed_load(lambda b=b: DigitReader.from_pretrained(backend=b), 3)
        reader_figures[b] = {"load_s": round(load_s, 3)}
    images = [load_image(p) for p in NUMBERS]
    one_by_one = turn_about({b: (lambda r=loaded[b]: [r.read(im) for im in images]) for b in BACKENDS}, 1, repeats)
    together = turn_about({b: (lambda r=loaded[b]: r.read_many(images)) for b in BACKENDS}, 1, repeats)
    for b in BACKENDS:
        reader_figures[b]["ms_per_image_one_by_one"] = round(one_by_one[b] / len(images) * 1e3, 2)
        reader_figures[b]["ms_per_image_together"] = round(together[b] / len(images) * 1e3, 2)
    reader_figures["auto"]["runs_on"] = loaded["auto"].classifier.backend.name
    result["reader"] = reader_figures
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="PyTorch (and ONNX Runtime) thread settings, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=7, help="rounds per figure; medians are reported")
    parser.add_argument(
        "--out",
        default=None,
        help="JSON file to write (bench/results/backends.json; with --digit-models, backends_digit_models.json)",
    )
    parser.add_argument(
        "--digit-models",
        default="",
        help="comma-separated digit model folders: measure only these (the classifier), not the shipped reader",
    )
    args = parser.parse_args()
    digit_models = [m for m in args.digit_models.split(",") if m]
    # Other digit models' figures go to their own file: the full run's file backs docs/speed.md's tables.
    args.out = args.out or f"bench/results/{'backends_digit_models' if digit_models else 'backends'}.json"
    load_before = os.getloadavg()
    runs = []
    for threads in (int(t) for t in args.threads.split(",")):
        runs.append(bench_threads(threads, args.repeats, digit_models))
        print(json.dumps(runs[-1]))
    result = {
        "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        **({} if digit_models else {"images": [p.name for p in NUMBERS]}),  # the reader's, in a full run
        "repeats": args.repeats,
        "runs": runs,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python bench/backends.py --threads {args.threads} --repeats {args.repeats}"
        + (f" --digit-models {args.digit_models}" if digit_models else ""),
    }
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
