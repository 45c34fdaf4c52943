"""Reader settings timed side by side in one process, in turn, so that a noisy host slows them alike.

    python bench/speed_configs.py --config "" --config preprocess.COMB_EXTEND=0,preprocess.COMB_REFIT=0
    python bench/speed_configs.py --config "" --config sequence=runs/my_ensemble --rounds 3

Each --config is what ``bench/validation.py`` takes (``module.CONSTANT=value`` pairs, ``model=DIR``,
``sequence=DIR``). Each round times every config in turn on the benchmark's 1280x960 photo with a
6-digit number (median of --repeats reads, as ``bench/reading.py`` times it), on --combs comb fields
of MNIST test digits (ms an image, read in one batch) and on a 1280x960 grain image (median of 5); one
line of JSON per config and round. Quote the spread over rounds: one round on a shared host is noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from backends import timed_load  # noqa: E402
from reading import bench_photo_speed  # noqa: E402
from validation import apply, readers_for  # noqa: E402

from digitread.data.mnist import load_mnist  # noqa: E402
from digitread.data.synth import make_comb_fields  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", default=[], help="module.CONSTANT=value[,...]; repeat")
    parser.add_argument("--rounds", type=int, default=2, help="times every config is timed, in turn")
    parser.add_argument("--repeats", type=int, default=20, help="reads of the photo a timing takes the median of")
    parser.add_argument("--combs", type=int, default=100, help="comb fields read (seed 2033, as the benchmark's)")
    args = parser.parse_args(argv)
    data = load_mnist()
    combs = [image for image, _ in make_comb_fields(data.test.images, data.test.labels, args.combs, seed=2033)]
    grain = np.random.default_rng(11).integers(0, 256, (960, 1280), dtype=np.uint8)  # the benchmark's
    rows = []
    try:
        for round_ in range(args.rounds):
            for config in args.config or [""]:
                readers = readers_for(apply(config))
                reader, one_number = readers[False], readers[True]
                photo = bench_photo_speed(reader, data, args.repeats)["median_ms"]
                start = time.perf_counter()
                one_number.read_many(combs)
                comb_ms = (time.perf_counter() - start) / len(combs) * 1000
                _, grain_s = timed_load(lambda reader=reader: reader.read(grain), 5)
                row = {
                    "round": round_,
                    "config": config,
                    "photo_ms": photo,
                    "comb_field_ms": round(comb_ms, 1),
                    "grain_ms": round(grain_s * 1000, 1),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        apply("")
    return rows


if __name__ == "__main__":
    main()
