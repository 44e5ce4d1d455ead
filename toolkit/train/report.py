"""Human-readable views of a run's metrics: a terminal table, report.md and a confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def format_metrics(metrics: dict) -> str:
    lines = [
        f"strategy            {metrics['strategy']}",
        f"test accuracy       {metrics['accuracy']:.4f}",
        f"macro F1            {metrics['macro_f1']:.4f}",
        f"trainable params    {metrics['trainable_params']:,} of {metrics['total_params']:,} "
        f"({100 * metrics['trainable_params'] / max(metrics['total_params'], 1):.2f}%)",
        f"training time       {metrics['train_seconds']:.1f} s (best epoch {metrics['best_epoch']})",
        "per-class F1:",
    ]
    width = max(len(c) for c in metrics["per_class_f1"])
    lines += [f"  {c:<{width}}  {v:.3f}" for c, v in metrics["per_class_f1"].items()]
    classes = list(metrics["per_class_f1"])
    lines.append("confusion matrix (rows true, columns predicted):")
    short = [c[:6] for c in classes]
    lines.append("  " + " " * width + "  " + " ".join(f"{s:>6}" for s in short))
    for c, row in zip(classes, metrics["confusion_matrix"]):
        lines.append(f"  {c:<{width}}  " + " ".join(f"{v:>6d}" for v in row))
    return "\n".join(lines)


def markdown_report(metrics: dict, bundle) -> str:
    classes = list(metrics["per_class_f1"])
    split, chip = bundle.split, bundle.chip
    ground = (f"{chip.size_px} px chips at {chip.gsd_m:g} m ({chip.source})" if chip and chip.gsd_m
              else f"{chip.size_px if chip else '?'} px chips, ground resolution unknown")
    out = [
        f"# lut finetune: {metrics['strategy']}",
        "",
        f"- backbone: `{bundle.backbone['spec']}` ({bundle.backbone['kind']})",
        f"- data: `{bundle.data}`, split seed {split['seed']}, "
        f"{split['train']}/{split['val']}/{split['test']} train/val/test",
        f"- image size: {bundle.image_size} px; {ground}",
        f"- scaling: {bundle.band_rule.description if bundle.band_rule else '-'}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| test accuracy | {metrics['accuracy']:.4f} |",
        f"| macro F1 | {metrics['macro_f1']:.4f} |",
        f"| trainable parameters | {metrics['trainable_params']:,} of {metrics['total_params']:,} |",
        f"| training time | {metrics['train_seconds']:.1f} s |",
        f"| best epoch (validation) | {metrics['best_epoch']} |",
        "",
        "## Per-class F1",
        "",
        "| class | F1 |",
        "|---|---|",
        *[f"| {c} | {v:.3f} |" for c, v in metrics["per_class_f1"].items()],
        "",
        "## Confusion matrix (rows true, columns predicted)",
        "",
        "| | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
        *[f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(classes, metrics["confusion_matrix"])],
        "",
        "## Training history",
        "",
        "| epoch | train loss | val loss | val accuracy | val macro-F1 | trainable params |",
        "|---|---|---|---|---|---|",
        *[f"| {h['epoch']} | {h['train_loss']:.4f} | {h.get('val_loss', float('nan')):.4f} | "
          f"{h['val_accuracy']:.4f} | {h.get('val_macro_f1', float('nan')):.4f} | {h['trainable_params']:,} |"
          for h in metrics["history"]],
        "",
        "Per-epoch values, with the learning rates, are in [curves.csv](curves.csv).",
        "",
        "![training curves](curves.png)",
        "",
        "![confusion matrix](confusion.png)",
        "",
    ]
    return "\n".join(out)


def plot_confusion(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(metrics["per_class_f1"])
    cm = np.asarray(metrics["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_title(f"{metrics['strategy']}: accuracy {metrics['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
