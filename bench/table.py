"""Print the README's results table from bench/results/*.json.

python bench/table.py [bench/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
