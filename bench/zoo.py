"""Every architecture in the registry on one equal schedule: parameters, MNIST test accuracy (mean and
spread over seeds) and training time on this machine, side by side in one run.

    .venv/bin/python bench/zoo.py                       # 3 seeds, 3 epochs each: bench/results/zoo.json
    .venv/bin/python bench/zoo.py --epochs 10 --only resnet --only gru_rows

The schedule is the `cnn` recipe's (AdamW, one-cycle, label smoothing, rotation/shift/zoom
augmentation) with only the model changed, so differences come from the architectures. Three epochs
is short: it ranks how fast each learns, not how far each can go (the `best` recipe's 15 epochs
take the CNN from 99.4% to 99.56%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402

from digitread import create_model, list_models  # noqa: E402
from digitread._io import atomic_write_json  # noqa: E402
from digitread.config import RunConfig, load_recipe  # noqa: E402
from digitread.data.mnist import load_mnist  # noqa: E402
from digitread.models import count_parameters  # noqa: E402
from digitread.runtime import set_threads  # noqa: E402
from digitread.train.loop import fit, seed_everything  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", action="append", help="these models only (repeatable)")
    parser.add_argument("--out", default="bench/results/zoo.json")
    parser.add_argument("--runs", default="runs/zoo")
    args = parser.parse_args()
    set_threads(0)
    # Sequence models read strips, not digits: bench/reading.py measures them.
    names = args.only or [n for n in list_models() if getattr(create_model(n), "task", "digits") == "digits"]
    out = Path(args.out)
    results = json.loads(out.read_text())["models"] if out.is_file() else {}  # --only merges into a full run
    settings = load_recipe("cnn")
    for name in names:
        seeds = []
        for seed in range(args.seeds):
            cfg = RunConfig.from_dict({**settings, "recipe": "cnn"})
            cfg.train.model, cfg.train.epochs, cfg.train.seed = name, args.epochs, seed
            data = load_mnist(None, cfg.data.val_size, seed)
            seed_everything(seed)
            model = create_model(name)
            result = fit(model, data, cfg, Path(args.runs) / f"{name}-seed{seed}", progress=False)
            seeds.append((result.metrics["test_accuracy"], result.metrics["train_seconds"]))
            print(f"{name} seed {seed}: {seeds[-1]}", file=sys.stderr, flush=True)
        accuracies = [a for a, _ in seeds]
        results[name] = {
            "parameters": count_parameters(model),
            "epochs": args.epochs,
            "seeds": args.seeds,
            "test_accuracy_mean": round(statistics.fmean(accuracies), 5),
            "test_accuracy_std": round(statistics.pstdev(accuracies), 5),
            "test_accuracy_min": round(min(accuracies), 5),
            "test_accuracy_max": round(max(accuracies), 5),
            "train_seconds_median": round(statistics.median(s for _, s in seeds), 1),
        }
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python bench/zoo.py " + " ".join(sys.argv[1:]),
            "schedule": f"the cnn recipe with the model changed, {args.epochs} epochs",
            "models": results,
            "machine": machine(),
        }
        atomic_write_json(out, report)  # after every model, so a stopped run keeps what it measured
    print("| model | parameters | test accuracy, mean ± sd (min-max) | training, median |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| `{name}` | {r['parameters']:,} | {r['test_accuracy_mean']:.2%} ± {r['test_accuracy_std']:.2%} "
            f"({r['test_accuracy_min']:.2%}-{r['test_accuracy_max']:.2%}) | {r['train_seconds_median']:.0f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
