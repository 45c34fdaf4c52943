"""The `digitread` command. Thin: parses flags, calls the library, prints results.

User mistakes (a missing file, an unknown model, a corrupt image) end with one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

from digitread.config import SECTIONS, DataConfig, RunConfig, list_recipes, load_recipe
from digitread.errors import ConfigError, DigitreadError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _flag_type(hint: Any) -> type:
    """The argparse type for a field's type hint: ``float | None`` -> float."""
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _add_config_flags(parser: argparse.ArgumentParser, sections: tuple[str, ...] = tuple(SECTIONS)) -> None:
    """One flag per config field, named after it; defaults are left unset so a recipe can fill them."""
    for section, cls in SECTIONS.items():
        if section not in sections:
            continue
        group = parser.add_argument_group(f"{section} settings")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            if section == "augment":
                flag = "--aug-" + f.name.replace("_", "-")
            default = f.default if f.default is not dataclasses.MISSING else None
            help_text = f"{f.metadata.get('help', '')} (default: {default})"
            kind = _flag_type(hints[f.name])
            dest = f"{section}.{f.name}"
            if kind is bool:
                group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            else:
                group.add_argument(flag, dest=dest, type=kind, default=None, metavar=f.name.upper(), help=help_text)


def _resolve_run_config(args: argparse.Namespace) -> RunConfig:
    """Dataclass defaults, then the recipe, then flags given on the command line."""
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    if args.recipe:
        for section, settings in load_recipe(args.recipe).items():
            values[section].update(settings)
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".", 1)
            values[section][name] = value
    return RunConfig.from_dict({**values, "recipe": args.recipe})


# ---- commands ----


def cmd_models(args: argparse.Namespace) -> int:
    from digitread.models import count_parameters, create_model, get_entry, list_models

    names = list_models(args.pattern)
    if not names:
        raise DigitreadError(f"no registered model matches {args.pattern!r}; `digitread models` lists them all")
    if args.json:
        rows = [
            {"name": n, "parameters": count_parameters(create_model(n)), "description": get_entry(n).description}
            for n in names
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len("model"), *(len(n) for n in names))
    print(f"{'model':<{width}} {'parameters':>10}  description")
    for n in names:
        print(f"{n:<{width}} {count_parameters(create_model(n)):>10,}  {get_entry(n).description}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from importlib import resources

    names = list_recipes()
    width = max((len(n) for n in names), default=0)
    for name in names:
        recipe = json.loads((resources.files("digitread") / "recipes" / f"{name}.json").read_text())
        print(f"{name:<{width}} {recipe.get('notes', '')}")
        if recipe.get("measured"):
            print(f"{'':<{width}} measured: {recipe['measured']}")
    return 0


# The strip options of `train` (DataConfig): what each is, and what it does to the strips.
_STRIP_OPTIONS = (
    ("small_strips", "a share of the strips", "shrinks"),
    ("touching_strips", "a chance", "draws"),
    ("pen_commas", "a chance", "draws"),
)


def cmd_train(args: argparse.Namespace) -> int:
    from digitread.checkpoint import CONFIG_FILE, WEIGHTS_FILE
    from digitread.data.mnist import load_mnist
    from digitread.models import create_model
    from digitread.train import distributed
    from digitread.train.logging import ConsoleLogger, MultiLogger, TensorBoardLogger
    from digitread.train.loop import CHECKPOINT_FILE, HISTORY_FILE, RUN_CONFIG_FILE, fit, seed_everything
    from digitread.train.optim import validate

    # Under torchrun every process runs this; each checks the same things, only rank 0 changes files.
    group = distributed.join(args.device)
    out = Path(args.out)
    if args.resume:
        saved = out / RUN_CONFIG_FILE
        if not (out / CHECKPOINT_FILE).is_file() or not saved.is_file():
            raise DigitreadError(f"{out} has no checkpoint to resume from; start the run without --resume")
        cfg = RunConfig.from_dict(json.loads(saved.read_text()))
        given = sorted(k.split(".", 1)[1] for k, v in vars(args).items() if "." in k and v is not None)
        # Where the data lives may change (another machine); its checksums still say it is the same data.
        # Which weights the run ends with may change too: resuming a finished run with --keep last ends
        # it again with its final epoch's weights.
        changeable = {"epochs", "data_dir", "keep"}
        if args.recipe or set(given) - changeable:
            drop = sorted(set(given) - changeable)
            raise DigitreadError(
                f"--resume continues {out} with its saved settings; drop {', '.join(drop) or '--recipe'} "
                "(only --data-dir, --keep and --epochs may change, --epochs only with --schedule constant)"
            )
        if args.__dict__.get("data.data_dir"):
            cfg.data.data_dir = args.__dict__["data.data_dir"]
        if args.__dict__.get("train.keep"):
            cfg.train.keep = args.__dict__["train.keep"]
        epochs = args.__dict__.get("train.epochs")
        if epochs and epochs != cfg.train.epochs:
            if cfg.train.schedule != "constant":
                raise DigitreadError(
                    f"cannot extend a run whose {cfg.train.schedule} schedule was planned for "
                    f"{cfg.train.epochs} epochs; start a new run with --epochs {epochs}"
                )
            cfg.train.epochs = epochs
    else:
        if (out / CHECKPOINT_FILE).exists() or (out / CONFIG_FILE).exists():
            if not args.overwrite:
                raise DigitreadError(
                    f"{out} already holds a run: pass --resume to continue it or --overwrite to replace it"
                )
            init = getattr(args, "train.init", None)
            if init and _same_folder(init, out):
                raise DigitreadError(f"--init {init} is the run --overwrite would replace: write to another --out")
            import shutil

            distributed.barrier(group)  # every process has seen the old run before rank 0 removes it
            # Nothing of the old run may be mistaken for the new one if the new one is interrupted.
            for name in (CHECKPOINT_FILE, HISTORY_FILE, CONFIG_FILE, WEIGHTS_FILE, RUN_CONFIG_FILE):
                if group.is_main:
                    (out / name).unlink(missing_ok=True)
            for name in ("report", "tensorboard", "members"):
                if group.is_main:
                    shutil.rmtree(out / name, ignore_errors=True)
        cfg = _resolve_run_config(args)
    validate(cfg.train)
    for name in ("train_subset", "pen_digits"):
        if getattr(cfg.data, name) < 0:
            raise DigitreadError(f"{name.replace('_', ' ')} cannot be negative, got {getattr(cfg.data, name)}")
    for name, what, does in _STRIP_OPTIONS:
        value, flag = getattr(cfg.data, name), "--" + name.replace("_", "-")
        if not 0 <= value <= 1:
            raise DigitreadError(f"{flag} is {what}, from 0 to 1, got {value}")
        if value != getattr(DataConfig, name) and cfg.train.task != "strings":
            raise DigitreadError(f"{flag} {does} number strips: it is for --task strings")
    overrides = {} if cfg.train.dropout is None else {"dropout": cfg.train.dropout}
    seed_everything(cfg.train.seed)
    model = create_model(cfg.train.model, **overrides)  # before data loading, so an unknown name fails fast
    if not args.resume:
        _init_weights(model, cfg)
    model_task = getattr(model, "task", "digits")
    if model_task != cfg.train.task:
        raise DigitreadError(
            f"model {cfg.train.model} reads {model_task}, but the task is {cfg.train.task}: "
            f"pass --task {model_task} or choose a {cfg.train.task} model (see `digitread models`)"
        )
    if group.active and cfg.train.task != "digits":
        raise DigitreadError("training in several processes covers the digits task; train strings in one")
    if args.bagging and (cfg.train.task != "digits" or group.active or args.resume):
        raise DigitreadError("--bagging trains digit models in one process; run it again (no --resume) to continue")
    data = load_mnist(cfg.data.data_dir, cfg.data.val_size, cfg.train.seed)
    distributed.barrier(group)  # all checks passed everywhere before rank 0 writes anything
    loggers = [ConsoleLogger()]
    if cfg.train.tensorboard:
        loggers.append(TensorBoardLogger(out / "tensorboard"))
    logger = MultiLogger(*loggers)
    if args.bagging:
        try:
            return _train_bagging(args, cfg, data, out, logger)
        finally:
            logger.close()
    train = fit
    if cfg.train.task == "strings":
        from digitread.train.strings import fit_strings as train
    try:
        result = train(model, data, cfg, out, logger, resume=args.resume, progress=not args.quiet, device=args.device)
    finally:
        logger.close()
    if group.is_main:
        print(json.dumps(result.metrics))
    return 0


def _same_folder(model: str, out: Path) -> bool:
    from digitread.inference.predictor import resolve_model_dir

    return resolve_model_dir(model).resolve() == out.resolve()


def _init_weights(model, cfg) -> None:
    """``--init``: start from the weights of a trained model folder (a name such as ``default`` too)."""
    if cfg.train.init:
        from digitread.checkpoint import load_weights_into
        from digitread.inference.predictor import resolve_model_dir

        load_weights_into(model, resolve_model_dir(cfg.train.init))


def _train_bagging(args: argparse.Namespace, cfg, data, out: Path, logger) -> int:
    """--bagging K: K members, each on its own bootstrap sample and seed, in OUT/members/1..K; then OUT is
    their ensemble. A member already finished is kept, one interrupted is resumed: run it again to go on."""
    import copy

    from digitread.checkpoint import WEIGHTS_FILE
    from digitread.models import create_model
    from digitread.train.ensemble import build_digit_ensemble
    from digitread.train.loop import CHECKPOINT_FILE, fit, seed_everything

    members = []
    for k in range(1, args.bagging + 1):
        member = out / "members" / str(k)
        members.append(member)
        if (member / WEIGHTS_FILE).is_file():
            logger.message(f"member {k}/{args.bagging}: already trained in {member}")
            continue
        mcfg = copy.deepcopy(cfg)
        mcfg.data.bootstrap = k
        mcfg.train.seed = cfg.train.seed + k - 1
        seed_everything(mcfg.train.seed)
        overrides = {} if mcfg.train.dropout is None else {"dropout": mcfg.train.dropout}
        logger.message(f"member {k}/{args.bagging}: bootstrap sample {k}, seed {mcfg.train.seed} -> {member}")
        resume = (member / CHECKPOINT_FILE).is_file()
        model = create_model(mcfg.train.model, **overrides)
        if not resume:
            _init_weights(model, mcfg)  # each member starts from the same trained weights, on its own sample
        fit(
            model,
            data,
            mcfg,
            member,
            logger,
            resume=resume,
            progress=not args.quiet,
            device=args.device,
        )
    result = build_digit_ensemble(members, out, "soft", None, cfg.data.data_dir)
    print(json.dumps({k: result[k] for k in ("test_accuracy", "members", "voting")}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from digitread.eval.evaluate import evaluate_model

    report, out = evaluate_model(args.run, data_dir=args.data_dir, split=args.split, out_dir=args.out)
    m = report["metrics"]
    print(f"{args.split} accuracy {m['accuracy']:.4f} ({m['errors']} errors of {m['count']}), F1 {m['macro_f1']:.4f}")
    print(f"report written to {out}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from digitread.train.finetune import FinetuneConfig, finetune

    out = Path(args.out)
    if (out / "config.json").exists() and not args.overwrite:
        raise DigitreadError(f"{out} already holds a model: pass --overwrite to replace it")
    cfg = FinetuneConfig(
        holdout=args.holdout,
        head_epochs=args.head_epochs,
        epochs=args.epochs,
        head_lr=args.head_lr,
        lr=args.lr,
        batch_size=args.batch_size,
        augment=not args.no_augment,
        replay=not args.no_replay,
        seed=args.seed,
    )

    def log(phase: str, epoch: int, loss: float) -> None:
        if not args.quiet:
            total = cfg.head_epochs if phase == "head" else cfg.epochs
            what = "head only" if phase == "head" else "all layers"
            print(f"{what} epoch {epoch}/{total}: loss {loss:.4f}", file=sys.stderr)

    result = finetune(args.base, args.samples, out, cfg, log, args.data_dir)
    for problem in result["problems"]:
        print(f"digitread: skipped {problem}", file=sys.stderr)
    print(
        f"{result['samples']} samples ({result['trained_on']} trained on, {result['held_out']} held out): "
        f"held-out accuracy {result['holdout_accuracy_before']:.1%} -> {result['holdout_accuracy_after']:.1%}; "
        f"saved to {out}"
    )
    if "test_accuracy" in result:
        print(f"MNIST test accuracy {result['base_test_accuracy']:.2%} -> {result['test_accuracy']:.2%}")
    elif cfg.replay:
        print("MNIST not found (--data-dir, $DIGITREAD_DATA): trained on the samples alone, without replay")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from digitread.train.optim import validate
    from digitread.train.tune import tune

    if args.trials < 1 or (args.timeout is not None and args.timeout <= 0):
        raise DigitreadError("--trials must be at least 1 and --timeout above 0 seconds")
    if args.__dict__.get("train.epochs") is None:
        args.__dict__["train.epochs"] = 3  # a short schedule per trial: settings that win early mostly win late
    base = _resolve_run_config(args)
    validate(base.train)

    def progress(trial) -> None:
        if not args.quiet:
            pruned = trial.state.name == "PRUNED"
            value = f"validation accuracy {trial.value:.4f}" if trial.value is not None else ""
            value = f"pruned after epoch {max(trial.intermediate_values, default=0)}" if pruned else value
            print(f"trial {trial.number}: {value}  {trial.params}", file=sys.stderr)

    result = tune(base, args.out, args.trials, args.timeout, args.sampler, base.train.seed, progress)
    print(
        f"best of {result['trials']} trials ({result['pruned']} pruned): trial {result['trial']}, validation "
        f"accuracy {result['val_accuracy']:.4f}, {result['best']}; recipe {args.out}/best.json "
        f"(digitread train --recipe {args.out}/best.json), table trials.csv, plot trials.png"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from digitread.errors import ImageError
    from digitread.inference.predictor import DigitClassifier

    classifier = DigitClassifier.from_pretrained(args.run, backend=args.backend)
    fields, names = [], []
    for image in args.images:  # a bad file is reported and skipped; the rest are classified in one batch
        try:
            fields.append(classifier.prepare(image, image))
            names.append(image)
        except ImageError as e:
            print(f"digitread: error: {e}", file=sys.stderr)
    for prediction in classifier.classify_fields(fields, names):
        if args.json:
            print(json.dumps(prediction.to_dict()))
        else:
            print(f"{prediction.source}  {prediction.digit}  {prediction.confidence:.3f}")
    return EXIT_ERROR if len(names) < len(args.images) else 0


def _png_path(out: str) -> Path:
    """``--out`` for a picture, checked before any work is done."""
    if Path(out).suffix.lower() != ".png":
        raise DigitreadError(f"--out must name a .png file, got {out}")
    return Path(out)


def _write_png(out: Path, image) -> None:
    import cv2

    from digitread._io import atomic_write_bytes

    _, png = cv2.imencode(".png", image)
    atomic_write_bytes(out, png.tobytes())


def cmd_strips(args: argparse.Namespace) -> int:
    from digitread.data.mnist import load_mnist
    from digitread.data.strips import make_strips, preview_grid

    out = _png_path(args.out)
    data = load_mnist(args.data_dir, val_size=0, seed=0)
    samples = make_strips(data.train.images, data.train.labels, min(args.count, 200), seed=args.seed)
    _write_png(out, preview_grid(samples))
    print(f"{len(samples)} strips written to {out}")
    return 0


def cmd_augment_preview(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    import torch

    from digitread.data.augment import random_affine
    from digitread.data.mnist import load_mnist
    from digitread.data.tensors import images_to_tensor

    out = _png_path(args.out)
    cfg = _resolve_run_config(args)
    data = load_mnist(cfg.data.data_dir, val_size=0, seed=0)
    rng = np.random.default_rng(args.seed)
    picks = [int(rng.choice(np.flatnonzero(data.train.labels == row % 10))) for row in range(args.count)]
    digits = images_to_tensor(data.train.images[picks]).float() / 255  # (N, 1, 28, 28), each digit in turn
    generator = torch.Generator().manual_seed(args.seed)
    versions = args.variants if cfg.augment.enabled else 0  # without augmentation each is the original
    variants = [random_affine(digits, cfg.augment, generator) for _ in range(versions)]
    columns = [digits, *variants]

    def cell(image: torch.Tensor) -> np.ndarray:  # 28x28 in 0-1 -> 56x56 uint8 with a grey border
        pixels = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return np.pad(cv2.resize(pixels, (56, 56), interpolation=cv2.INTER_NEAREST), 2, constant_values=96)

    rows = []
    for i in range(len(picks)):
        original, *augmented = (cell(c[i]) for c in columns)
        gap = np.full((original.shape[0], 8), 255, np.uint8)  # sets the original apart
        rows.append(np.hstack([original, gap, *augmented]) if augmented else original)
    picture = np.vstack(rows)
    header = np.full((24, picture.shape[1]), 255, np.uint8)
    cv2.putText(header, "original   augmented", (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
    _write_png(out, np.vstack([header, picture]))
    settings = ", ".join(f"{k} {v}" for k, v in vars(cfg.augment).items() if v) or "no augmentation"
    print(f"{len(picks)} digits x {len(variants)} augmented versions written to {out} ({settings})")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from digitread.checkpoint import read_model_config
    from digitread.train.ensemble import build_digit_ensemble, build_ensemble

    if len(args.runs) < 2:
        raise ConfigError("an ensemble needs at least two runs")
    tasks = {read_model_config(r).get("task", "digits") for r in args.runs}
    if len(tasks) > 1:
        raise ConfigError("the runs read different things (digits and strings): an ensemble's members read one")
    if tasks == {"digits"}:
        if args.shifts != "0":
            raise ConfigError("--shifts is for sequence models; digit models read one 28x28 digit")
        weights = _weights(args.weights, len(args.runs))
        result = build_digit_ensemble([Path(r) for r in args.runs], Path(args.out), args.voting, weights, args.data_dir)
        cal = result["calibration"]
        calibrated = (
            f"calibration error {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} on {cal['fitted_on']}"
            if cal
            else "not calibrated: the members were validated on different images, and too few are held out by "
            "all of them (train members with the same --seed split, or with --bagging)"
        )
        print(
            f"{len(args.runs)} models, {args.voting} voting -> {result['out']}: test accuracy "
            f"{result['test_accuracy']:.4f}; {calibrated}"
        )
        return 0
    if args.voting != "soft" or args.weights:
        raise ConfigError("--voting and --weights are for digit models; sequence members always vote softly")
    if args.strips < 10:
        raise ConfigError("--strips must be at least 10")
    result = build_ensemble(
        [Path(r) for r in args.runs], Path(args.out), args.data_dir, args.strips, _shifts(args.shifts)
    )
    ece = f"calibration error {result['ece_before']:.3f} -> {result['ece_after']:.3f}"
    views = f", views shifted {result['shifts']} pixels" if len(result["shifts"]) > 1 else ""
    print(
        f"{', '.join(result['members'])}{views} -> {result['out']}: {result['exact']:.1%} of validation strips "
        f"exact; {ece}"
    )
    return 0


def _shifts(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--shifts takes whole pixels separated by commas, e.g. -2,0,2; got {text!r}") from None


def _weights(text: str | None, count: int) -> list[float] | None:
    if not text:
        return None
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError(f"--weights {text}: give numbers separated by commas, e.g. 2,1,1") from None
    if len(weights) != count:
        raise ConfigError(f"--weights has {len(weights)} numbers for {count} runs")
    return weights


def cmd_export(args: argparse.Namespace) -> int:
    from digitread.export import export_onnx
    from digitread.inference.predictor import resolve_model_dir
    from digitread.inference.sequence import DEFAULT_SEQUENCE_MODEL, ensemble_members, resolve_sequence_dir

    source = resolve_sequence_dir(args.run) if args.run == DEFAULT_SEQUENCE_MODEL else resolve_model_dir(args.run)
    members = ensemble_members(source)
    out = Path(args.out)
    if not out.name or out.is_dir():
        raise ConfigError(f"--out {args.out}: give the .onnx file to write, not a folder")
    # An ensemble's members are separate networks: each gets its own file, named after the member.
    targets = [(source, out)] if members is None else [(source / m, out.with_stem(f"{out.stem}-{m}")) for m in members]
    for folder, target in targets:
        result = export_onnx(folder, target)
        parity = f"ONNX Runtime matches PyTorch to {result['max_abs_diff']:.1e}"
        print(f"{result['arch']} written to {result['onnx']}; {parity}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from digitread.serve.server import serve
        from digitread.serve.settings import ServeSettings
    except ModuleNotFoundError as e:
        raise DigitreadError(f"serving needs {e.name}: pip install 'digitread[serve]'") from None
    settings = ServeSettings.from_env(
        model=args.model,
        sequence_model=args.sequence_model,
        mode=args.mode,
        feedback_db=args.feedback_db,
        max_request_bytes=args.max_request_bytes,
        max_image_bytes=args.max_image_bytes,
        max_pixels=args.max_pixels,
        max_batch=args.max_batch,
        inference_threads=args.inference_threads,
        torch_threads=args.torch_threads,
        backend=args.backend,
    )
    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_feedback_export(args: argparse.Namespace) -> int:
    try:
        from digitread.feedback.export import export_feedback
        from digitread.feedback.store import DEFAULT_URL, FeedbackStore
    except ModuleNotFoundError as e:
        raise DigitreadError(f"the feedback store needs {e.name}: pip install 'digitread[serve]'") from None
    url = args.db or os.environ.get("DIGITREAD_FEEDBACK_DB") or DEFAULT_URL
    _require_existing_sqlite(url)
    store = FeedbackStore(url)
    try:
        summary = export_feedback(store, args.out)
    finally:
        store.close()
    not_cut = summary.images_not_cut
    note = f" ({not_cut} images not cut: the boxes did not match the number)" if not_cut else ""
    print(f"{summary.images} images and {summary.digits} digits written to {args.out}{note}")
    return 0


def _require_existing_sqlite(url: str) -> None:
    """Exporting from a SQLite file that is not there would create an empty one: say so instead."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DigitreadError(f"not a database URL: {url!r} (e.g. sqlite:///digitread-feedback.db)") from None
    is_file_db = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if is_file_db and not Path(parsed.database).is_file():
        raise DigitreadError(f"no feedback database at {parsed.database}; pass --db with the server's URL")


def _expand(paths: list[str]) -> list[Path]:
    """Files as given, and the images inside folders (recursively, sorted)."""
    from digitread.inference.io import IMAGE_SUFFIXES

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        else:
            files.append(p)
    return files


def _annotation_paths(files: list[Path], folder: Path) -> dict[str, Path]:
    """One picture per input, ``NAME.annotated.png``, numbered when two inputs share a name; never an input."""
    inputs = {f.resolve() for f in files}
    paths, used = {}, set()
    for f in files:
        candidate, n = folder / f"{f.stem}.annotated.png", 1
        while candidate in used or candidate.resolve() in inputs:
            n += 1
            candidate = folder / f"{f.stem}.annotated-{n}.png"
        used.add(candidate)
        paths[str(f)] = candidate
    return paths


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_read(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from digitread._io import atomic_write_bytes
    from digitread.errors import ImageError
    from digitread.inference.annotate import annotate
    from digitread.inference.io import load_image
    from digitread.inference.reader import DigitReader

    files = _expand(args.images)
    if not files:
        raise DigitreadError(f"no images found in {' '.join(args.images)}")
    if args.out or args.jobs > 1 or args.engine != "local" or args.scheduler:
        return _read_collection(args, files)
    reader = DigitReader.from_pretrained(**_reader_options(args))
    annotate_dir = Path(args.annotate) if args.annotate else None
    pictures = _annotation_paths(files, annotate_dir) if annotate_dir else {}
    failed, rows = 0, []
    bar = tqdm(total=len(files), unit="image", disable=args.quiet or len(files) < 10 or None, file=sys.stderr)
    for start in range(0, len(files), args.batch):
        chunk = files[start : start + args.batch]
        loaded, names = [], []
        for f in chunk:  # a bad file is reported and skipped; the rest of the batch is still read
            try:
                loaded.append(load_image(f, str(f)))
                names.append(str(f))
            except ImageError as e:
                failed += 1
                bar.write(f"digitread: error: {e}", file=sys.stderr)
                if args.json:
                    rows.append({"source": str(f), "error": str(e)})
                elif args.jsonl:
                    print(json.dumps({"source": str(f), "error": str(e)}), flush=True)
        for gray, name, reading in zip(loaded, names, reader.read_many(loaded, names), strict=True):
            row = reading.to_dict()
            if annotate_dir is not None:
                import cv2

                _, png = cv2.imencode(".png", annotate(gray, reading))
                atomic_write_bytes(pictures[name], png.tobytes())
            if args.json:
                rows.append(row)
            elif args.jsonl:
                print(json.dumps(row), flush=True)
            else:
                uncertain = [str(i) for i, d in enumerate(reading.digits) if d.uncertain]
                text = reading.text.replace("\n", " / ") or "-"
                extra = f"  uncertain at {','.join(uncertain)}" if uncertain else ""
                bar.write(f"{name}  {text}  {reading.confidence:.3f}{extra}", file=sys.stdout)
        bar.update(len(chunk))
    bar.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    return EXIT_ERROR if failed else 0


def _read_collection(args: argparse.Namespace, files: list[Path]) -> int:
    """``read --out``: a JSONL row per image, appended as each is read, in --jobs processes (or on Dask)."""
    from tqdm.auto import tqdm

    from digitread.inference.collection import read_collection

    if not args.out:
        raise DigitreadError("--jobs, --engine and --scheduler write their rows to a file: add --out RESULTS.jsonl")
    if args.scheduler and args.engine != "dask":
        raise DigitreadError("--scheduler names a Dask scheduler: add --engine dask")
    options = _reader_options(args)
    pictures = _annotation_paths(files, Path(args.annotate)) if args.annotate else None

    def bar(total: int, done: int):  # with the rate and the time left, from what this run reads
        return tqdm(total=total, initial=done, unit="image", disable=args.quiet or None, file=sys.stderr, smoothing=0.1)

    summary = read_collection(files, args.out, options, args.jobs, args.engine, args.scheduler, pictures, bar)
    already = f", {summary.skipped:,} already there" if summary.skipped else ""
    print(
        f"{args.out}: {summary.read:,} images read, {summary.failed:,} could not be read{already}",
        file=sys.stderr,
    )
    return EXIT_ERROR if summary.failed else 0


def _add_recipe_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """--recipe: a recipe shipped in the package by name, or a recipe file such as `tune` writes."""
    parser.add_argument(
        "--recipe", metavar="NAME|FILE.json", help=f"{what}: {', '.join(list_recipes())}, or a recipe file"
    )


def _reader_options(args: argparse.Namespace) -> dict:
    """DigitReader.from_pretrained's settings from read's flags."""
    return {
        "path": args.model,
        "sequence_path": args.sequence_model,
        "decoder": args.decoder,
        "mode": args.mode,
        "min_confidence": args.min_confidence,
        "one_number": args.one_number,
        "backend": args.backend,
    }


def _add_backend_flag(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx"],
        default=default,
        help="what runs the models: onnx (ONNX Runtime, needs digitread[onnx]) or torch; auto: ONNX Runtime on "
        "the CPU when installed, faster for every shipped model measured (docs/speed.md) (default: auto)",
    )


def build_parser() -> argparse.ArgumentParser:
    from digitread import __version__

    parser = argparse.ArgumentParser(
        prog="digitread", description="Read handwritten digits; train and evaluate digit models."
    )
    parser.add_argument("--version", action="version", version=f"digitread {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models and their sizes")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'cnn*'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("recipes", help="list the training recipes shipped in the package")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser(
        "train",
        help="train a model on MNIST",
        description="Train a model on MNIST. Settings come from the defaults, then --recipe, then the flags given.",
    )
    p.add_argument("--out", required=True, help="run folder: checkpoints, history, the final model")
    _add_recipe_flag(p, "start from these settings")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument(
        "--bagging",
        type=_positive_int,
        metavar="K",
        help="train K members on bootstrap samples of the training set (OUT/members/1..K), then make OUT their "
        "soft-voting ensemble; run again to continue an interrupted one",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="write an evaluation report for a trained model")
    p.add_argument("run", help="model or run folder ('default': the shipped model)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files")
    p.add_argument("--split", choices=["test", "val"], default="test", help="which images (default: test)")
    p.add_argument("--out", help="report folder (default: RUN/report; reports/default for the shipped model)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "read",
        help="read the handwritten numbers in photos and scans",
        description="Read handwritten numbers. Prints 'image  text  confidence' per image; text joins lines "
        "with ' / '. The exit code is 1 when any file could not be read.",
    )
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--model", default=None, help="model or run folder (default: the shipped model)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON array with every detail")
    out.add_argument("--jsonl", action="store_true", help="one JSON object per image, as each is read")
    out.add_argument(
        "--out",
        metavar="RESULTS.jsonl",
        help="append a JSON row per image to this file as each is read; run again to read only what has no "
        "row yet (large collections: docs/scaling.md)",
    )
    p.add_argument(
        "--jobs", type=_positive_int, default=1, help="worker processes reading at once (needs --out) (default: 1)"
    )
    p.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help="local: --jobs processes on this machine; dask: a Dask cluster (--scheduler), or --jobs Dask "
        "workers on this machine (needs --out) (default: local)",
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="the Dask scheduler to use, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--annotate", metavar="OUT_DIR", help="write OUT_DIR/NAME.annotated.png with boxes and digits")
    p.add_argument("--min-confidence", type=float, default=0.5, help="mark digits below this as uncertain")
    p.add_argument(
        "--one-number", action="store_true", help="each image is a field with one number: keep its most prominent line"
    )
    p.add_argument(
        "--mode",
        choices=["auto", "segment", "sequence"],
        default="auto",
        help="segment: digit by digit; sequence: each line whole (touching digits); auto: per line, the whole "
        "reading unless it is very likely wrong (under 0.02) and the digit-by-digit one is surer; in a comb "
        "field's boxes, both readers weighed together (default: auto)",
    )
    p.add_argument("--sequence-model", default=None, help="sequence model folder (default: the shipped one)")
    p.add_argument(
        "--decoder",
        choices=["greedy", "beam"],
        default="greedy",
        help="sequence decoding: greedy (fast) or beam search (sums alignments; 4x slower) (default: greedy)",
    )
    p.add_argument("--batch", type=_positive_int, default=32, help="images classified together")
    _add_backend_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser(
        "augment-preview",
        help="write a picture of training digits as augmentation changes them (what the model sees)",
        description="Draw MNIST training digits, one of each class in turn, each beside several augmented "
        "versions, with the augmentation of --recipe and the --aug-* flags given, into a PNG grid.",
    )
    p.add_argument("--out", required=True, help="PNG file to write")
    _add_recipe_flag(p, "take the augmentation settings of this recipe")
    p.add_argument("--count", type=_positive_int, default=10, help="digits, one per row (default: 10)")
    p.add_argument("--variants", type=_positive_int, default=8, help="augmented versions of each (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _add_config_flags(p, sections=("data", "augment"))
    p.set_defaults(func=cmd_augment_preview)

    p = sub.add_parser(
        "strips",
        help="write a picture of synthetic number strips (what the sequence model trains on)",
        description="Render seeded synthetic number strips from MNIST training digits and write a grid PNG: "
        "each strip as photographed, its label, and the strip the model reads.",
    )
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--count", type=_positive_int, default=16, help="strips to draw (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files")
    p.set_defaults(func=cmd_strips)

    p = sub.add_parser(
        "export",
        help="export a model to ONNX and check ONNX Runtime against PyTorch",
        description="Export a model folder to ONNX (dynamic batch; dynamic width for sequence models) and check "
        "that ONNX Runtime's logits match PyTorch's.",
    )
    p.add_argument(
        "run", help="model or run folder ('default': the shipped digit model; 'sequence': the shipped sequence model)"
    )
    p.add_argument("--onnx", "--out", dest="out", metavar="FILE", required=True, help=".onnx file to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "ensemble",
        help="combine trained runs into one ensemble model folder, its confidence calibrated",
        description="Digit models: one model folder that votes (soft: the weighted mean of the members' "
        "probabilities; majority: their weighted votes), its temperature fitted on the MNIST validation split, "
        "its test accuracy measured; it loads, evaluates, predicts, reads and serves like any model. Sequence "
        "models: each run's model copied into OUT, listed in OUT/members.json, with the power that makes the "
        "ensemble's confidence a chance of being right fitted on synthetic strips of the validation digits. "
        "OUT is replaced only once the new folder is complete.",
    )
    p.add_argument("runs", nargs="+", help="run or model folders, all digit models or all sequence models")
    p.add_argument("--voting", choices=["soft", "majority"], default="soft", help="digit models (default: soft)")
    p.add_argument("--weights", help="digit models: one weight per run, e.g. 2,1,1 (default: equal)")
    p.add_argument("--out", required=True, help="ensemble folder to write")
    p.add_argument("--strips", type=int, default=1000, help="validation strips to calibrate on (default: 1000)")
    p.add_argument(
        "--shifts",
        default="0",
        help="sequence models: also read each strip moved by these pixels (down; negative: up), every view "
        "voting like a member, e.g. -2,0,2 (default: 0, the strip only)",
    )
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $DIGITREAD_DATA, then the cache)")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser(
        "serve",
        help="serve the reader over HTTP, with a web page to write or photograph a number",
        description="Serve the HTTP API (OpenAPI at /docs) and the web page at /. Every setting can also come "
        "from a DIGITREAD_<SETTING> variable, e.g. DIGITREAD_FEEDBACK_DB; flags win.",
    )
    p.add_argument("--model", default=None, help="digit model folder (default: the shipped model)")
    p.add_argument("--sequence-model", default=None, help="sequence model folder (default: the shipped one)")
    p.add_argument("--mode", choices=["auto", "segment", "sequence"], default=None, help="reading mode (default: auto)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=_positive_int, default=1, help="processes, each with its own model (default: 1)")
    p.add_argument(
        "--feedback-db",
        default=None,
        help="SQLAlchemy URL of the feedback store (default: sqlite:///digitread-feedback.db, beside the server)",
    )
    p.add_argument("--max-request-bytes", type=_positive_int, default=None, help="largest request body")
    p.add_argument("--max-image-bytes", type=_positive_int, default=None, help="largest image file")
    p.add_argument("--max-pixels", type=_positive_int, default=None, help="most pixels in one image")
    p.add_argument("--max-batch", type=_positive_int, default=None, help="most images in one batch request")
    p.add_argument("--inference-threads", type=_positive_int, default=None, help="images read at once per worker")
    p.add_argument("--torch-threads", type=_positive_int, default=None, help="PyTorch threads per reading (default: 1)")
    _add_backend_flag(p, default=None)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("feedback", help="work with the corrections users sent to the service")
    feedback = p.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    q = feedback.add_parser(
        "export",
        help="write the corrections out as labelled images for training and evaluation",
        description="Write each stored image with its corrected number (OUT/images, OUT/labels.csv) and, where "
        "the service's boxes match the number, each digit cut out (OUT/digits/D/, OUT/digits.csv, and MNIST-style "
        "IDX files).",
    )
    q.add_argument("out", help="folder to write")
    q.add_argument(
        "--db",
        default=None,
        help="SQLAlchemy URL (default: $DIGITREAD_FEEDBACK_DB, else sqlite:///digitread-feedback.db)",
    )
    q.set_defaults(func=cmd_feedback_export)

    p = sub.add_parser(
        "finetune",
        help="adapt a trained digit model to someone's handwriting or another digit data set",
        description="Hold out some samples, train the classifier head, then every layer at a small rate, "
        "and report accuracy on the held-out samples before and after. SAMPLES: images in subfolders "
        "named 0-9, or a folder with labels.csv (file,label), or a folder with IDX images and labels.",
    )
    p.add_argument("base", help="model or run folder to start from ('default': the shipped model)")
    p.add_argument("--samples", required=True, help="folder of labelled samples")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    p.add_argument("--holdout", type=float, default=0.25, help="share of samples held out (default: 0.25)")
    p.add_argument("--head-epochs", type=int, default=15, help="epochs training the head alone (default: 15)")
    p.add_argument("--epochs", type=int, default=15, help="epochs training every layer after that (default: 15)")
    p.add_argument("--head-lr", type=float, default=3e-3, help="learning rate for the head (default: 0.003)")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate for every layer (default: 0.0003)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="samples per step (default: 32)")
    p.add_argument("--no-augment", action="store_true", help="no small rotations, shifts and zooms")
    p.add_argument(
        "--no-replay", action="store_true", help="train on the samples alone, without MNIST digits in each batch"
    )
    p.add_argument("--data-dir", help="MNIST folder for replay (default: $DIGITREAD_DATA, then the cache)")
    p.add_argument("--seed", type=int, default=0, help="seeds the hold-out split and training (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "tune",
        help="search training settings with Optuna (TPE, pruning, resumable)",
        description="Train the model with settings Optuna proposes, each on a short schedule (default 3 "
        "epochs), scored by validation accuracy; poor trials are pruned. The study is kept in OUT/study.db, so "
        "the same command resumes it. Writes OUT/best.json (a recipe), OUT/trials.csv and OUT/trials.png. "
        "Training flags (--model, --epochs, --train-subset, ...) set what every trial shares.",
    )
    p.add_argument("--out", required=True, help="folder for the study, the trials and the results")
    p.add_argument("--trials", type=int, default=20, help="trials in the study in all, resumed ones included")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    p.add_argument("--sampler", choices=["tpe", "random", "grid"], default="tpe", help="(default: tpe)")
    _add_recipe_flag(p, "start every trial from these settings")
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    _add_config_flags(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("predict", help="classify images that each show one digit")
    p.add_argument("run", help="model or run folder ('default': the shipped model)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--json", action="store_true", help="one JSON object per image, with all ten probabilities")
    _add_backend_flag(p)
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DigitreadError as e:
        print(f"digitread: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("digitread: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read our output stopped (`digitread read ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a folder that is a file, no permission, a full disk: say which, in one line
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"digitread: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
