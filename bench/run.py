"""The benchmark suite: trains the study's network as published and the default CNN, then measures
inference speed. Writes one JSON file per model to --out, with the machine described.

    make bench                                   # 3 seeds each, about 10 minutes on 2 cores
    python bench/run.py --seeds 1 --only cnn     # one model, one seed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from digitread import __version__, create_model
from digitread._io import atomic_write_json
from digitread.config import RunConfig, load_recipe
from digitread.data.mnist import load_mnist
from digitread.inference.predictor import DigitClassifier
from digitread.models import count_parameters
from digitread.runtime import set_threads
from digitread.train.loop import fit, seed_everything

# model name in the results -> recipe it is trained with
SUITE = {"seed_mlp": "study", "cnn": "cnn"}


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory_gb = None
    with contextlib.suppress(ValueError, OSError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cpu": cpu,
        "cores": cores,
        "memory_gb": memory_gb,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy": np.__version__,
        "digitread": __version__,
        "platform": platform.platform(),
    }


def inference_speed(run_dir: Path, digits: np.ndarray) -> dict:
    """Digits classified per second by DigitClassifier (28x28 uint8 in, probabilities out) at batch 1 and
    batch 256: medians of repeated, timed calls after a warm-up."""
    classifier = DigitClassifier.from_pretrained(run_dir)
    result = {}
    for batch, repeats in ((1, 300), (256, 30)):
        x = digits[:batch]
        for _ in range(10):
            classifier.probabilities(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            classifier.probabilities(x)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        result[f"batch_{batch}"] = {"median_ms": round(median * 1000, 4), "images_per_second": round(batch / median, 1)}
    return result


def bench_model(name: str, recipe: str, seeds: list[int], data_dir: str | None, runs_dir: Path) -> dict:
    cfg_dict = load_recipe(recipe)
    per_seed = []
    for seed in seeds:
        cfg = RunConfig.from_dict({**cfg_dict, "recipe": recipe})
        cfg.train.seed = seed
        data = load_mnist(data_dir, cfg.data.val_size, seed)
        seed_everything(seed)
        model = create_model(cfg.train.model)
        result = fit(model, data, cfg, runs_dir / f"{name}-seed{seed}", progress=False)
        per_seed.append(
            {
                "seed": seed,
                "test_accuracy": result.metrics["test_accuracy"],
                "train_seconds": result.metrics["train_seconds"],
            }
        )
        print(f"{name} seed {seed}: {per_seed[-1]}", file=sys.stderr, flush=True)
    speed = inference_speed(result.out_dir, data.test.images[:256])
    accuracies = [r["test_accuracy"] for r in per_seed]
    seconds = [r["train_seconds"] for r in per_seed]
    return {
        "model": name,
        "parameters": count_parameters(result.model),
        "recipe": recipe,
        "settings": cfg_dict,
        "seeds": per_seed,
        "test_accuracy": {
            "median": statistics.median(accuracies),
            "min": min(accuracies),
            "max": max(accuracies),
            "mean": statistics.fmean(accuracies),
        },
        "train_seconds": {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)},
        "inference": speed,
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "make bench",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results", help="folder for the JSON results")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model (medians are reported)")
    parser.add_argument("--only", choices=sorted(SUITE), action="append", help="run only these models")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITREAD_DATA)")
    parser.add_argument("--runs", default="runs/bench", help="where the benchmark's runs are written")
    args = parser.parse_args()
    set_threads(0)
    for name in args.only or SUITE:
        result = bench_model(name, SUITE[name], list(range(args.seeds)), args.data_dir, Path(args.runs))
        path = Path(args.out) / f"{name}.json"
        atomic_write_json(path, result)
        print(json.dumps({k: result[k] for k in ("model", "test_accuracy", "train_seconds", "inference")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
