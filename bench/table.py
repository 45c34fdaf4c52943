"""Print the README's results tables from bench/results/*.json (speed, reading, then load).

python bench/table.py [bench/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    speed = folder / "speed.json"
    if speed.is_file():
        speed_table(json.loads(speed.read_text()))
    reading = folder / "reading.json"
    if reading.is_file():
        print()
        reading_table(json.loads(reading.read_text()))
    loads = [json.loads(p.read_text()) for p in sorted(folder.glob("load*.json"))]
    if loads:
        print()
        load_table(sorted(loads, key=lambda r: -r["clients"]))
    return 0


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def speed_table(r: dict) -> None:
    """Training to 99.0% and 99.5% and classifying digits (bench/run.py), the references in the same run."""
    print(
        "| run | recipe | parameters | seeds | test accuracy, median (min-max) | training | to 99.0% | to 99.5% "
        "| batch 1: ms | batch 256: digits/s | peak memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    trained = {name: m for name, m in r["models"].items() if "seeds" in m}
    for name, m in trained.items():
        acc, inf = m["test_accuracy"], m["inference"]
        best = min(inf.values(), key=lambda v: v["batch_1"]["median_ms"])
        fastest = max(inf.values(), key=lambda v: v["batch_256"]["images_per_second"])
        recipe = m["recipe"] if " " in m["recipe"] else f"`{m['recipe']}`"  # the reference's is a description
        print(
            f"| `{name}` | {recipe} | "
            f"{m['parameters']:,} | {len(m['seeds'])} | {acc['median']:.2%} ({acc['min']:.2%}-{acc['max']:.2%}) | "
            f"{_seconds(m['train_seconds']['median'])} | {_seconds(m['seconds_to_99.0%'])} | "
            f"{_seconds(m['seconds_to_99.5%'])} | {best['batch_1']['median_ms']:.3f} | "
            f"{fastest['batch_256']['images_per_second']:,.0f} | {m['peak_memory_mb']:,.0f} MB |"
        )
    m = r["machine"]
    print(f"\nMedians over seeds; {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {r['date'][:10]}.")
    print("\n| model | backend | batch 1: ms | batch 256: digits/s |")
    print("|---|---|---|---|")
    for name, model in r["models"].items():
        for backend, v in model["inference"].items():
            print(
                f"| `{name}` ({model['model'] if ' ' not in model['model'] else 'its Net'}) | {backend} | "
                f"{v['batch_1']['median_ms']:.3f} | {v['batch_256']['images_per_second']:,.0f} |"
            )
    shipped = r["models"].get("shipped", {}).get("photo_1280x960", {})
    if shipped:
        cells = ", ".join(f"{k}: {v['median_ms']:.1f} ms" for k, v in shipped.items())
        print(f"\nReading a 1280x960 photo with 6 digits, end to end (decoding excluded), median of 30: {cells}.")
    for name, q in r.get("ratios", {}).items():
        line = (
            f"- against `{name}`: to its final {q['accuracy_reached']:.2%}, {_seconds(q['reference_seconds'])} "
            f"against {_seconds(q['digitread_seconds'])} with `{q['recipe']}` ({q['training_speedup']}x)"
        )
        if "to_99.0%" in q:
            t = q["to_99.0%"]
            line += (
                f"; to 99.0%, {_seconds(t['reference_seconds'])} against {_seconds(t['fast_seconds'])} "
                f"with `fast` ({t['speedup']}x)"
            )
        print(
            f"{line}; the `fast` model classifies {q['batch_256_speedup']}x the digits per second at batch 256 "
            f"and {q['batch_1_speedup']}x at batch 1."
        )


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
    c = r.get("comma_strips")
    if c:
        print(
            f"| generated numbers with thousands separators, half pen commas (`data/strips.py`) | {c['images']} | "
            f"{_cell(c['auto'])} | {_cell(c['segment'])} | {_cell(c['sequence'])} |"
        )
    combs = r.get("comb_fields")
    if combs:
        print(
            f"| generated comb fields, a digit in each printed box (`data/synth.py`), `--one-number` | "
            f"{combs['images']} | {_cell(combs['auto'])} | {_cell(combs['segment'])} | {_cell(combs['sequence'])} |"
        )
    f = r.get("faint_numbers")
    if f:  # auto only; the reading without the second look is printed after the table
        print(
            f"| generated pale numbers beside bold writing, `--one-number` | {f['images']} | "
            f"{_cell(f['second_look'])} | - | - |"
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
    if f:
        print(f"Pale numbers read without the second look at images read empty: {_cell(f['first_look_only'])}.")
    if combs:
        print(f"Comb fields read with the teeth between boxes left in (auto): {_cell(combs['auto_teeth_left_in'])}.")
    letters, blank = r.get("non_digits"), r.get("blank_pages")
    if letters:
        print(
            f"Drawn letters that come back with no confident digit: {letters['auto']['rejected']:.1%} "
            f"({letters['segment']['rejected']:.1%} segment only)."
        )
    if blank:
        a, s = blank["auto"], blank["segment"]
        print(
            f"Blank generated pages read empty: {a['read_empty']:.1%} of {a['images']} "
            f"({a['read_sure']:.1%} read 0.5 or more sure; segment only {s['read_empty']:.1%}, {s['read_sure']:.1%})."
        )
    confidence_table(r, names)


def _accept(report: dict, bar: float) -> str:
    row = next(a for a in report["accept"] if a["min_confidence"] == bar)
    right = "-" if row["exact_when_accepted"] is None else f"{row['exact_when_accepted']:.1%}"
    return f"{row['accepted']:.1%} | {right}"


def confidence_table(r: dict, names: dict[str, str]) -> None:
    """Auto's readings accepted at a confidence bar, and how many of those are right (runs since 2026-12-06)."""
    sets = {"generated photos": r["synthetic"]["auto"].get("confidence")}
    sets |= {
        title.split(" (")[0]: (r["realdev"].get(key) or {}).get("auto", {}).get("confidence")
        for key, title in names.items()
    }
    sets = {name: report for name, report in sets.items() if report}
    if not sets:
        return
    header = ["set"] + [
        f"accepted at {bar} or more" if c == 0 else "read right of those" for bar in (0.8, 0.9) for c in (0, 1)
    ]
    print("\n| " + " | ".join([*header, "calibration error"]) + " |")
    print("|---|---|---|---|---|---|")
    for name, report in sets.items():
        print(f"| {name} | {_accept(report, 0.8)} | {_accept(report, 0.9)} | {report['calibration_error']:.3f} |")


if __name__ == "__main__":
    raise SystemExit(main())
