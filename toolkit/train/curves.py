"""Training curves: the per-epoch history as CSV and as one figure (losses, accuracy and macro-F1, LRs)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr_head", "lr_backbone",
           "trainable_params")


def curves_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in COLUMNS})
    return buf.getvalue()


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Three panels over epochs: train and validation loss; validation accuracy and macro-F1; the head's
    and the backbone's learning rate at the start of each epoch (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            axes[0].plot(epochs, values, marker="o", label=label)
    axes[0].set(title="loss", xlabel="epoch")
    for key, label in (("val_accuracy", "accuracy"), ("val_macro_f1", "macro-F1")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            axes[1].plot(epochs, values, marker="o", label=label)
    axes[1].set(title="validation", xlabel="epoch", ylim=(0, 1))
    for key, label in (("lr_head", "head"), ("lr_backbone", "backbone")):
        values = [h.get(key) for h in history]
        if any(v for v in values):
            axes[2].plot(epochs, [v if v else float("nan") for v in values], marker="o", label=label)
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
