"""Batch reading of a collection: images per second with 1 and 2 worker processes, and on a Dask cluster
on this machine, each through the command a user types (`digitread read DIR --jobs N --out FILE`).

    .venv/bin/python bench/batch_read.py                 # 1000 photos, 3 runs each, bench/results/batch_read.json

The photos are 1280x960 JPEGs of 3-6 digit numbers made with the example tools (bench/load.py's
phone_photo). Times are wall-clock for the whole command, starting the workers and loading the
models included, so they are what a user waits; the median of the runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from load import phone_photo  # noqa: E402
from run import machine  # noqa: E402

from digitread._io import atomic_write_json  # noqa: E402

SETUPS = {
    "1 process": ["--jobs", "1"],
    "2 processes": ["--jobs", "2"],
    "dask, 2 workers": ["--engine", "dask", "--jobs", "2"],
}


def make_collection(folder: Path, count: int, seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    labels = {}
    for i in range(count):
        text = str(int(rng.integers(100, 1_000_000)))
        path = folder / f"photo_{i:05d}.jpg"
        path.write_bytes(phone_photo(text, rng, (1280, 960)))
        labels[str(path)] = text
    return labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="photos in the collection (default: 1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each setup (default: 3)")
    parser.add_argument("--out", default="bench/results/batch_read.json")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        labels = make_collection(folder, args.images, seed=0)
        for name, flags in SETUPS.items():
            seconds, exact = [], None
            for run in range(args.runs):
                out = Path(tmp) / f"{name.replace(' ', '_').replace(',', '')}_{run}.jsonl"
                command = [sys.executable, "-m", "digitread", "read", str(folder), "--out", str(out), "--quiet"]
                start = time.perf_counter()
                subprocess.run([*command, *flags], check=True, capture_output=True)
                seconds.append(time.perf_counter() - start)
                rows = [json.loads(line) for line in out.read_text().splitlines()]
                assert len(rows) == args.images, f"{name}: {len(rows)} rows for {args.images} images"
                exact = sum(row.get("text") == labels[row["source"]] for row in rows) / len(rows)
            median = statistics.median(seconds)
            results[name] = {
                "command": "digitread read DIR --out FILE " + " ".join(flags),
                "seconds": [round(s, 2) for s in seconds],
                "median_seconds": round(median, 2),
                "images_per_second": round(args.images / median, 1),
                "read_exactly": round(exact, 4),
            }
            print(f"{name}: {results[name]['images_per_second']} images/s ({median:.1f} s)", flush=True)
    base = results["1 process"]["images_per_second"]
    for entry in results.values():
        entry["speedup_vs_1_process"] = round(entry["images_per_second"] / base, 2)
    atomic_write_json(
        args.out,
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python bench/batch_read.py " + " ".join(sys.argv[1:]),
            "images": args.images,
            "photo": "1280x960 JPEG q85, one 3-6 digit number",
            "results": results,
            "load_average_before": load_before,
            "machine": machine(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
