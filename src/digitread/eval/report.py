"""An evaluation report folder: report.json, report.md and the pictures people would rather look at.

confusion_matrix.json / .png    counts, and a heatmap of them
mistakes.png                    the most confident mistakes: image, true label, prediction, confidence
training_curves.png             loss and accuracy per epoch, when the run's history is known
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from digitread._io import atomic_write_bytes, atomic_write_json


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        from digitread.errors import DigitreadError

        raise DigitreadError("reports need matplotlib: pip install 'digitread[report]'") from None

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_confusion(matrix: np.ndarray, path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    # A log scale keeps the few off-diagonal errors visible beside the thousand-strong diagonal.
    shown = np.log10(matrix + 1)
    im = ax.imshow(shown, cmap="Blues")
    n = matrix.shape[0]
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                dark = shown[i, j] > shown.max() * 0.6
                ax.text(
                    j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color="white" if dark else "black"
                )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="log10(count + 1)")
    _save_figure(fig, path)


def plot_mistakes(images: np.ndarray, mistakes: list[dict[str, Any]], path: Path, columns: int = 8) -> None:
    plt = _pyplot()
    count = max(len(mistakes), 1)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.25, rows * 1.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, mistakes, strict=False):
        ax.imshow(images[m["index"]], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {m['label']} → {m['predicted']}\n{m['confidence']:.2f}", fontsize=8)
    if not mistakes:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle("Most confident mistakes", fontsize=10)
    _save_figure(fig, path)


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax_acc.plot(epochs, [h["train_acc"] for h in history], marker="o", label="train")
    if any("val_acc" in h for h in history):
        ax_loss.plot(epochs, [h.get("val_loss") for h in history], marker="o", label="validation")
        ax_acc.plot(epochs, [h.get("val_acc") for h in history], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    _save_figure(fig, path)


def plot_reliability(rows: list[dict[str, Any]], path: Path, ece: float) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label="model")
    ax.set(xlabel="confidence", ylabel="accuracy", title=f"Reliability (ECE {ece:.4f})", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    _save_figure(fig, path)


def plot_reading_confidence(sets: dict[str, tuple[list[float], list[bool]]], path: Path, bar: float = 0.9) -> None:
    """For each named set of number readings (their confidences, whether each was right): left, the share
    read right among those accepted as the bar falls (risk-coverage), the point at ``bar`` marked;
    right, the reliability diagram (readings binned by confidence as for their calibration error)."""
    from digitread.eval.calibration import reliability_of
    from digitread.eval.reading import coverage_curve

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4))
    for name, (confidence, correct) in sets.items():
        conf, hit = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=bool)
        covered, exact = coverage_curve(conf, hit)
        (line,) = left.plot(covered, exact, label=name)
        taken = conf >= bar
        if taken.any():
            left.plot([taken.mean()], [hit[taken].mean()], "o", color=line.get_color())
        rows = reliability_of(conf, hit)
        right.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=name)
    left.set(
        xlabel="share of numbers accepted (surest first)",
        ylabel="share of those read exactly",
        title=f"Accepting the surest readings (dots: confidence >= {bar})",
        xlim=(0, 1.02),
    )
    right.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    right.set(
        xlabel="confidence of the number",
        ylabel="share read exactly",
        title="Reliability",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    for ax, corner in ((left, "lower left"), (right, "upper left")):
        ax.grid(alpha=0.3)
        ax.legend(loc=corner)
    _save_figure(fig, path)


def _markdown(report: dict[str, Any], pictures: list[str]) -> str:
    m = report["metrics"]
    lines = [
        f"# Evaluation of `{report['model']['arch']}` on {report['split']}",
        "",
        f"- model: `{report['model']['path']}` ({report['model']['parameters']:,} parameters)",
        f"- images: {m['count']:,}; accuracy **{m['accuracy']:.2%}** ({m['errors']} errors)",
        f"- macro precision {m['macro_precision']:.4f}, recall {m['macro_recall']:.4f}, F1 {m['macro_f1']:.4f}",
    ]
    if "calibration" in m:
        c = m["calibration"]
        lines.append(
            f"- calibration: temperature {c['temperature']:.3f}; expected calibration error {c['ece']:.4f} "
            f"(without the temperature {c['ece_uncalibrated']:.4f})"
        )
    lines += [
        "",
        "| digit | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for c, v in m["per_class"].items():
        lines.append(f"| {c} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |")
    lines += ["", "Most frequent confusions (true → predicted: count):", ""]
    for pair in report["top_confusions"]:
        lines.append(f"- {pair['true']} → {pair['predicted']}: {pair['count']}")
    lines.append("")
    for p in pictures:
        lines.append(f"![{p}]({p})")
    return "\n".join(lines) + "\n"


def _top_confusions(matrix: np.ndarray, k: int = 8) -> list[dict[str, int]]:
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = [np.unravel_index(i, off.shape) for i in flat]
    return [{"true": int(t), "predicted": int(p), "count": int(off[t, p])} for t, p in pairs if off[t, p] > 0]


def write_report(
    out_dir: str | Path,
    metrics: dict[str, Any],
    mistakes: list[dict[str, Any]],
    images: np.ndarray,
    model_info: dict[str, Any],
    split: str,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write every file of the report into ``out_dir``; returns what report.json holds."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    matrix = np.array(metrics["confusion_matrix"])
    atomic_write_json(out / "confusion_matrix.json", {"labels": list(range(len(matrix))), "matrix": matrix.tolist()})
    plot_confusion(matrix, out / "confusion_matrix.png", f"{model_info['arch']} on {split}: {metrics['accuracy']:.2%}")
    plot_mistakes(images, mistakes, out / "mistakes.png")
    pictures = ["confusion_matrix.png", "mistakes.png"]
    if "calibration" in metrics:
        plot_reliability(metrics["calibration"]["reliability"], out / "reliability.png", metrics["calibration"]["ece"])
        pictures.append("reliability.png")
    if history:
        plot_training_curves(history, out / "training_curves.png")
        pictures.append("training_curves.png")
    report = {
        "split": split,
        "model": model_info,
        "metrics": metrics,
        "top_confusions": _top_confusions(matrix),
        "mistakes": mistakes,
        "files": ["report.json", "report.md", "confusion_matrix.json", *pictures],
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_bytes(out / "report.md", _markdown(report, pictures).encode())
    return report
