"""The speed benchmark: training and inference, digitread's recipes side by side with two references
trained as published in the same run, written to one JSON file with the machine described.

    make bench                                         # 3 seeds each (about 40 minutes on 2 cores)
    python bench/run.py --seeds 1 --only fast          # one recipe, one seed
    python bench/run.py --reference-epochs 3           # a shorter run of PyTorch's example

For every run the test accuracy is probed during training with the clock stopped, so "time to 99.0%"
is the training time until the model first scores 99.0% on the MNIST test set. The references:
the study's network (``--recipe study``) and PyTorch's official MNIST example (bench/reference.py).
Each model trains in a child process of its own, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from digitread import __version__, create_model  # noqa: E402
from digitread._io import atomic_write_json  # noqa: E402
from digitread.config import RunConfig, load_recipe  # noqa: E402
from digitread.data.mnist import load_mnist  # noqa: E402
from digitread.data.tensors import images_to_tensor  # noqa: E402
from digitread.inference.predictor import DigitClassifier  # noqa: E402
from digitread.models import count_parameters  # noqa: E402
from digitread.runtime import available_cores, predict_logits, set_threads  # noqa: E402
from digitread.train.loop import fit, seed_everything  # noqa: E402

# result name -> (recipe, settings changed for this run)
RECIPES = {
    "fast": ("fast", {}),
    "fast_compiled": ("fast", {"compile": True}),  # the same with torch.compile, side by side
    "fast995": ("fast995", {}),
    "best": ("best", {}),
    "seed_mlp": ("study", {}),
}
REFERENCE = "pytorch_example"
SHIPPED = "shipped"  # the model inside the package, which the reader uses: inference only
TARGETS = (0.99, 0.995)
PROBES = 40  # test-accuracy probes per run, evenly spaced in steps
BACKENDS = ("torch", "onnx")


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = available_cores()
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


def time_to(curve: list[dict], target: float) -> float | None:
    """Training seconds until the test accuracy first reached ``target`` (None: never)."""
    return next((p["seconds"] for p in curve if p["test_accuracy"] >= target), None)


def median_or_none(values: list[float | None]) -> float | None:
    """The median, counting a run that never got there as slower than any that did (None if the median did not)."""
    middle = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(middle) else middle


def timed_calls(function, x: np.ndarray, repeats: int) -> float:
    """Median seconds of ``function(x)`` after a warm-up."""
    for _ in range(10):
        function(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def inference_speed(function, digits: np.ndarray) -> dict:
    """Digits classified per second at batch 1 and batch 256 (28x28 uint8 in, probabilities out)."""
    result = {}
    for batch, repeats in ((1, 300), (256, 30)):
        median = timed_calls(function, digits[:batch], repeats)
        result[f"batch_{batch}"] = {"median_ms": round(median * 1000, 4), "images_per_second": round(batch / median, 1)}
    return result


def _peak_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM, not getrusage's ru_maxrss: a child started
    by fork and exec inherits the parent's ru_maxrss, so it would report the benchmark's own memory."""
    with contextlib.suppress(OSError, AttributeError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # elsewhere: the best there is


class TestProbe:
    """Called by ``fit`` with the clock stopped: the test accuracy after ``step`` steps, ``seconds`` of training."""

    def __init__(self, x_test: torch.Tensor, y_test: torch.Tensor, preprocess: dict | None):
        self.x_test, self.y_test, self.preprocess = x_test, y_test, preprocess
        self.curve: list[dict] = []

    def __call__(self, model, step: int, seconds: float) -> None:
        predicted = predict_logits(model, self.x_test, 1000, self.preprocess).argmax(1)
        accuracy = (predicted == self.y_test).float().mean().item()
        self.curve.append({"step": step, "seconds": round(seconds, 3), "test_accuracy": round(accuracy, 4)})


def classifier_speed(model_dir, digits: np.ndarray) -> dict:
    """``inference_speed`` of DigitClassifier on each backend (normalising, network, temperature, softmax)."""
    return {
        backend: inference_speed(DigitClassifier.from_pretrained(model_dir, backend=backend).probabilities, digits)
        for backend in BACKENDS
    }


def run_recipe(name: str, recipe: str, changes: dict, seeds: list[int], data_dir: str | None, runs_dir: str) -> dict:
    """Train ``recipe`` once per seed with the test accuracy probed along the way; then time inference."""
    set_threads(0)
    settings = load_recipe(recipe)
    per_seed = []
    for seed in seeds:
        cfg = RunConfig.from_dict({**settings, "recipe": recipe})
        cfg.train.seed = seed
        for key, value in changes.items():
            setattr(cfg.train, key, value)
        data = load_mnist(data_dir, cfg.data.val_size, seed)
        x_test, y_test = images_to_tensor(data.test.images), torch.from_numpy(data.test.labels)
        seed_everything(seed)
        model = create_model(cfg.train.model)
        probe = TestProbe(x_test, y_test, getattr(model, "config", {}).get("preprocess"))
        n_train = cfg.data.train_subset or len(data.train.labels)  # the validation split is already out
        every = max(1, int(cfg.train.epochs * (n_train // cfg.train.batch_size)) // PROBES)
        out_dir = Path(runs_dir) / f"{name}-seed{seed}"
        result = fit(model, data, cfg, out_dir, progress=False, probe=probe, probe_every=every)
        curve = probe.curve
        per_seed.append(
            {
                "seed": seed,
                "test_accuracy": result.metrics["test_accuracy"],
                "train_seconds": result.metrics["train_seconds"],
                **{f"seconds_to_{t:.1%}": time_to(curve, t) for t in TARGETS},
                "curve": curve,
            }
        )
        print(f"{name} seed {seed}: { ({k: v for k, v in per_seed[-1].items() if k != 'curve'}) }", file=sys.stderr)
    return {
        "model": cfg.train.model,
        "recipe": recipe,
        "parameters": count_parameters(result.model),
        "settings": {**settings, "changed": changes},
        **summarise(per_seed),
        "inference": classifier_speed(result.out_dir, data.test.images[:256]),
        "peak_memory_mb": _peak_mb(),
    }


def run_shipped(data_dir: str | None) -> dict:
    """The model in the package: classifying digits, and reading a 1280x960 photo end to end."""
    from reading import bench_photo_speed

    from digitread.inference.predictor import resolve_model_dir
    from digitread.inference.reader import DigitReader

    set_threads(0)
    data = load_mnist(data_dir, 0, 0)
    classifier = DigitClassifier.from_pretrained()
    photo = {}
    for threads in (1, 2):
        set_threads(threads)  # the sessions take the thread count set when they are made
        for backend in BACKENDS:
            reader = DigitReader.from_pretrained(backend=backend)
            photo[f"{backend}, {threads} thread{'s' * (threads > 1)}"] = bench_photo_speed(reader, data, repeats=30)
    set_threads(0)
    return {
        "model": classifier.model.arch,
        "recipe": "reader",
        "parameters": count_parameters(classifier.model),
        "inference": classifier_speed(resolve_model_dir(None), data.test.images[:256]),
        "photo_1280x960": photo,
        "peak_memory_mb": _peak_mb(),
    }


def run_reference(seeds: list[int], data_dir: str | None, epochs: int) -> dict:
    """PyTorch's MNIST example, as published (bench/reference.py)."""
    from reference import example_probabilities, train_example

    set_threads(0)
    data = load_mnist(data_dir, 0, 0)
    per_seed = []
    for seed in seeds:
        trained = train_example(data, seed=seed + 1, epochs=epochs)  # the script's own default seed is 1
        curve = trained["curve"]
        per_seed.append(
            {
                "seed": seed + 1,
                "test_accuracy": curve[-1]["test_accuracy"],
                "train_seconds": curve[-1]["seconds"],
                **{f"seconds_to_{t:.1%}": time_to(curve, t) for t in TARGETS},
                "curve": curve,
            }
        )
        print(f"{REFERENCE} seed {seed + 1}: {curve[-1]}", file=sys.stderr)
    model = trained["model"]
    return {
        "model": "the example's Net (2 convs, 2 linear layers)",
        "recipe": f"Adadelta lr 1.0, StepLR gamma 0.7, batch 64, {epochs} epochs, no augmentation",
        "parameters": count_parameters(model),
        **summarise(per_seed),
        "inference": {"torch": inference_speed(lambda x: example_probabilities(model, x), data.test.images[:256])},
        "peak_memory_mb": _peak_mb(),
    }


def summarise(per_seed: list[dict]) -> dict:
    accuracies = [r["test_accuracy"] for r in per_seed]
    seconds = [r["train_seconds"] for r in per_seed]
    return {
        "seeds": per_seed,
        "test_accuracy": {"median": statistics.median(accuracies), "min": min(accuracies), "max": max(accuracies)},
        "train_seconds": {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)},
        **{f"seconds_to_{t:.1%}": median_or_none([r[f"seconds_to_{t:.1%}"] for r in per_seed]) for t in TARGETS},
    }


def ratios(results: dict) -> dict:
    """How much faster digitread trains and classifies than each reference, all from one run: training
    to the reference's final accuracy (median) with the quickest recipe that gets there, and to 99.0%
    where the reference gets there; classifying digits at batch 256 and batch 1 with the ``fast``
    recipe's model (each model on its faster backend)."""
    ours = {name: results[name] for name in RECIPES if name in results}
    fast = ours.get("fast")
    out = {}
    for name in ("seed_mlp", REFERENCE):
        ref = results.get(name)
        if not fast or not ref:
            continue
        target = ref["test_accuracy"]["median"]
        ref_seconds = median_or_none([time_to(r["curve"], target) for r in ref["seeds"]])
        reaching = {
            recipe: median_or_none([time_to(r["curve"], target) for r in run["seeds"]]) for recipe, run in ours.items()
        }
        quickest = min((r for r in reaching if reaching[r] is not None), key=reaching.get, default=None)
        fast_inf, ref_inf = fast["inference"].values(), ref["inference"].values()
        entry = {
            "accuracy_reached": target,
            "reference_seconds": ref_seconds,
            "recipe": quickest,
            "digitread_seconds": reaching.get(quickest),
            "training_speedup": round(ref_seconds / reaching[quickest], 1) if quickest and ref_seconds else None,
            "batch_256_speedup": round(_best(fast_inf, 256) / _best(ref_inf, 256), 2),
            "batch_1_speedup": round(_best(fast_inf, 1) / _best(ref_inf, 1), 2),
        }
        if ref["seconds_to_99.0%"] and fast["seconds_to_99.0%"]:
            entry["to_99.0%"] = {
                "reference_seconds": ref["seconds_to_99.0%"],
                "fast_seconds": fast["seconds_to_99.0%"],
                "speedup": round(ref["seconds_to_99.0%"] / fast["seconds_to_99.0%"], 1),
            }
        out[name] = entry
    return out


def _best(speeds, batch: int) -> float:
    """Digits per second at ``batch`` on the faster of a model's backends."""
    return max(v[f"batch_{batch}"]["images_per_second"] for v in speeds)


def in_child(function, *args):
    """Run ``function(*args)`` in a fresh process, so the peak memory it reports is its own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results/speed.json", help="the JSON file to write")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model (medians are reported)")
    names = [*RECIPES, REFERENCE, SHIPPED]
    parser.add_argument("--only", choices=names, action="append", help="run only these (repeatable)")
    parser.add_argument("--reference-epochs", type=int, default=14, help="epochs of PyTorch's example (published: 14)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITREAD_DATA)")
    parser.add_argument("--runs", default="runs/bench", help="where the benchmark's runs are written")
    parser.add_argument("--ratios-only", action="store_true", help="recompute the ratios of the file --out names")
    args = parser.parse_args()
    set_threads(0)
    out = Path(args.out)
    # Runs of --only merge into the file a full run wrote, so one model can be measured again alone.
    results = json.loads(out.read_text())["models"] if out.is_file() else {}
    if args.ratios_only:
        report = json.loads(out.read_text())
        report["ratios"] = ratios(report["models"])
        atomic_write_json(out, report)
        print(json.dumps(report["ratios"], indent=1))
        return 0
    seeds = list(range(args.seeds))
    for name in args.only or names:
        if name == REFERENCE:
            results[name] = in_child(run_reference, seeds, args.data_dir, args.reference_epochs)
        elif name == SHIPPED:
            results[name] = in_child(run_shipped, args.data_dir)
        else:
            recipe, changes = RECIPES[name]
            results[name] = in_child(run_recipe, name, recipe, changes, seeds, args.data_dir, args.runs)
        keys = ("test_accuracy", "train_seconds", "seconds_to_99.0%", "seconds_to_99.5%", "inference")
        print(json.dumps({name: {k: results[name][k] for k in keys if k in results[name]}}), flush=True)
    report = {
        "models": results,
        "ratios": ratios(results),
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
    }
    atomic_write_json(out, report)
    print(json.dumps(report["ratios"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
