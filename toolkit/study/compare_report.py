"""The study's four tables (markdown), CSV/JSON of every cell and the data-efficiency plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lut.toolkit.core.atomic import write_text_atomic


def _label(labels) -> str:
    return "all" if labels is None else str(labels)


def _name(backbone: str) -> str:
    return Path(backbone).name if "/" in backbone else backbone


def _pick(cells: list[dict], backbone: str, strategy: str, labels=None) -> dict | None:
    return next((c for c in cells if c["backbone"] == backbone and c["strategy"] == strategy
                 and c["labels"] == labels), None)


def strategy_table(cells: list[dict], backbone: str, strategies: list[str]) -> list[str]:
    rows = [c for s in strategies if (c := _pick(cells, backbone, s))]
    if not rows:
        return []
    probe = _pick(cells, backbone, "linear_probe")
    base = probe["train_seconds"] if probe else None
    out = [f"### {_name(backbone)}", "",
           "| strategy | test accuracy | macro F1 | trainable params | % of total | training time | vs linear probe |",
           "|---|---|---|---|---|---|---|"]
    for c in rows:
        rel = f"{c['train_seconds'] / base:.1f}x" if base else "-"
        out.append(f"| {c['strategy']} | {c['accuracy']:.4f} | {c['macro_f1']:.4f} | {c['trainable_params']:,} | "
                   f"{100 * c['trainable_params'] / c['total_params']:.2f}% | {c['train_seconds']:.0f} s | {rel} |")
    return out + [""]


def per_class_table(cells: list[dict], backbone: str) -> list[str]:
    full = [c for c in cells if c["backbone"] == backbone and c["labels"] is None]
    probe = _pick(cells, backbone, "linear_probe")
    if not full or not probe:
        return []
    others = [c for c in full if c["strategy"] != "linear_probe"] or full
    best = max(others, key=lambda c: c["accuracy"])
    out = [f"### {_name(backbone)}: linear_probe vs {best['strategy']} (best of the others)", "",
           f"| class | linear_probe F1 | {best['strategy']} F1 | change |", "|---|---|---|---|"]
    for name, f1 in probe["per_class_f1"].items():
        other = best["per_class_f1"][name]
        out.append(f"| {name} | {f1:.3f} | {other:.3f} | {other - f1:+.3f} |")
    return out + [""]


def efficiency_table(cells: list[dict], backbone: str, strategies: list[str], labels: list) -> list[str]:
    present = [s for s in strategies if any(_pick(cells, backbone, s, n) for n in labels)]
    if not present or len(labels) < 2:
        return []
    out = [f"### {_name(backbone)}", "", "| training labels | " + " | ".join(present) + " |",
           "|---|" + "---|" * len(present)]
    for n in labels:
        vals = []
        for s in present:
            c = _pick(cells, backbone, s, n)
            vals.append(f"{c['accuracy']:.4f}" if c else "-")
        everything = next((c["train_labels"] for c in cells if c["backbone"] == backbone and c["labels"] is None), "?")
        shown = _label(n) if n is not None else f"all ({everything})"
        out.append(f"| {shown} | " + " | ".join(vals) + " |")
    return out + [""]


def domain_table(cells: list[dict], backbones: list[str], strategies: list[str]) -> list[str]:
    present = [s for s in strategies if any(_pick(cells, b, s) for b in backbones)]
    if not present:
        return []
    out = ["| backbone | " + " | ".join(present) + " |", "|---|" + "---|" * len(present)]
    for b in backbones:
        vals = [f"{c['accuracy']:.4f}" if (c := _pick(cells, b, s)) else "-" for s in present]
        out.append(f"| {_name(b)} | " + " | ".join(vals) + " |")
    return out + [""]


def plot_efficiency(cells: list[dict], backbones: list[str], strategies: list[str], labels: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for b in backbones:
        for s in strategies:
            pts = [(c["train_labels"], c["accuracy"]) for n in labels if (c := _pick(cells, b, s, n))]
            if len(pts) >= 2:
                xs, ys = zip(*sorted(pts))
                ax.plot(xs, ys, marker="o", label=f"{_name(b)} / {s}")
    ax.set_xscale("log")
    ax.set_xlabel("training labels")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("data efficiency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(out: Path, cfg, every_cell: list[dict], domain_strategies: tuple[str, ...]) -> None:
    """Write results.md/.csv/.json and the plots of a compare run into `out`.

    With a recipe grid, tables 1-4 show each group's validation winner; section 6 lists every setting.
    `domain_strategies` are the strategies of the domain-pretraining table (table 4)."""
    from .recipe_grid import search_table, winners

    cells = winners(every_cell) if cfg.grid else every_cell

    labels = cfg.train_labels
    eff = [s for s in cfg.efficiency_strategies if s in cfg.strategies]
    md = ["# lut compare", "",
          f"Data `{cfg.data}`, image size {cfg.image_size or 'backbone default'}, {cfg.train.epochs} epochs, "
          f"batch {cfg.train.batch_size}, seed {cfg.train.seed}; test accuracy on the held-out 20% split "
          "with best-validation weights.", "", "## 1. Strategy comparison (all training labels)", ""]
    for b in cfg.backbones:
        md += strategy_table(cells, b, cfg.strategies)
    md += ["## 2. Per-class F1", ""]
    for b in cfg.backbones:
        md += per_class_table(cells, b)
    md += ["## 3. Data efficiency (test accuracy by number of training labels)", ""]
    for b in cfg.backbones:
        md += efficiency_table(cells, b, eff, labels)
    if len(labels) >= 2:
        md += ["![data efficiency](data_efficiency.png)", ""]
    md += ["## 4. Domain-specific pretraining (all training labels)", ""]
    md += domain_table(cells, cfg.backbones, [s for s in domain_strategies if s in cfg.strategies])
    if cfg.grid:
        md += search_table(every_cell)
    md += curve_section(out, every_cell)
    write_text_atomic(out / "results.md", "\n".join(md))
    chosen = {c["key"] for c in cells}
    every_cell = [{**c, "winner": c["key"] in chosen} for c in every_cell]
    write_text_atomic(out / "results.json", json.dumps(every_cell, indent=2))
    buf = io.StringIO()
    fields = ["backbone", "strategy", "labels", "setting", "train_labels", "accuracy", "macro_f1", "best_val_accuracy",
              "winner", "trainable_params", "total_params", "train_seconds", "best_epoch"]
    writer = csv.DictWriter(buf, fieldnames=fields + [f"f1_{c}" for c in cells[0]["per_class_f1"]] if cells else fields)
    writer.writeheader()
    for c in every_cell:
        row = {k: c.get(k) for k in fields}
        row["labels"] = _label(c["labels"])
        row.update({f"f1_{k}": v for k, v in c["per_class_f1"].items()})
        writer.writerow(row)
    write_text_atomic(out / "results.csv", buf.getvalue())
    if len(labels) >= 2:
        plot_efficiency(cells, cfg.backbones, eff, labels, out / "data_efficiency.png")


def curve_section(out: Path, cells: list[dict]) -> list[str]:
    """One training-curves figure per cell, in curves/, linked from results.md."""
    from lut.toolkit.train.curves import plot_curves

    (out / "curves").mkdir(exist_ok=True)
    lines = ["## 5. Training curves per cell", ""]
    for c in cells:
        if not c.get("history"):
            continue
        plot_curves(c["history"], out / "curves" / f"{c['key']}.png", c["key"])
        lines.append(f"- [{c['key']}](curves/{c['key']}.png)")
    return lines + [""]
