"""Print the README's results tables from bench/results/*.json (models, reading, then load).

python bench/table.py [bench/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    rows = [r for r in results if "test_accuracy" in r]  # the model runs of bench/run.py
    print(
        "| model | parameters | recipe | test accuracy, median (min-max) | training s, median "
        "| batch 1: ms / digit | batch 256: digits/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        acc, secs, inf = r["test_accuracy"], r["train_seconds"], r["inference"]
        print(
            f"| `{r['model']}` | {r['parameters']:,} | `{r['recipe']}` | "
            f"{acc['median']:.2%} ({acc['min']:.2%}-{acc['max']:.2%}) | {secs['median']:.0f} | "
            f"{inf['batch_1']['median_ms']:.2f} | {inf['batch_256']['images_per_second']:,.0f} |"
        )
    if rows:
        m = rows[0]["machine"]
        print(
            f"\n{len(rows[0]['seeds'])} seeds each; {m['cpu']}, {m['cores']} cores, "
            f"torch {m['torch']}, {rows[0]['date'][:10]}."
        )
    reading = folder / "reading.json"
    if reading.is_file():
        print()
        reading_table(json.loads(reading.read_text()))
    loads = [r for r in results if "requests_per_s" in r]  # bench/load.py
    if loads:
        print()
        load_table(sorted(loads, key=lambda r: -r["clients"]))
    return 0


def load_table(runs: list[dict]) -> None:
    """The service under load (bench/load.py): one row per run."""
    print("| clients | duration | requests | requests/s | p50 | p95 | p99 | errors | read exactly |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        lat = r["latency_ms"]
        print(
            f"| {r['clients']} | {r['seconds']:.0f} s | {r['requests']:,} | {r['requests_per_s']:.1f} | "
            f"{lat['p50']:,.0f} ms | {lat['p95']:,.0f} ms | {lat['p99']:,.0f} ms | {r['errors']} | "
            f"{r['read_exactly']:.0%} |"
        )


def _cell(score: dict) -> str:
    return f"{score['exact']:.1%} ({score['char_accuracy']:.1%})"


def reading_table(r: dict) -> None:
    """Whole numbers read exactly (characters right) per reading mode, all measured in one run."""
    print("| test | images | auto (default) | segment | sequence |")
    print("|---|---|---|---|---|")
    syn = r["synthetic"]
    print(
        f"| generated photos, 4-8 digits (`data/synth.py`) | {syn['auto']['images']} | "
        f"{_cell(syn['auto']['with_marks'])} | {_cell(syn['segment']['with_marks'])} | - |"
    )
    t = r["touching_strips"]
    print(
        f"| generated strips, every digit touching (`data/strips.py`) | {t['images']} | "
        f"{_cell(t['auto'])} | {_cell(t['segment'])} | {_cell(t['sequence'])} |"
    )
    names = {
        "orand_car_a": "real cheque amounts (`realdev/orand_car_a`)",
        "danish_rowid": "real register row numbers (`realdev/danish_rowid`)",
    }
    for key, title in names.items():
        d = r["realdev"].get(key)
        if d:
            cells = " | ".join(_cell(d[mode]) for mode in ("auto", "segment", "sequence"))
            print(f"| {title}, `--one-number` | {d['auto']['count']} | {cells} |")
    m = r["machine"]
    print(f"\nExact (characters right: 1 - edit distance); {m['cpu']}, {m['cores']} cores, {r['date'][:10]}.")


if __name__ == "__main__":
    raise SystemExit(main())
