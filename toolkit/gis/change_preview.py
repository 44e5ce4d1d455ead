"""The change quick-look: BEFORE, AFTER and the change side by side, with a gains/losses chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .legend import class_colours, rgba_table
from lut.toolkit.core.ownership import PREVIEW_SOFTWARE
from lut.toolkit.core.raster import decimated
from .transitions import Transitions

UNCHANGED_GREY = (0.86, 0.86, 0.86, 1.0)


def change_rgba(codes: np.ndarray, n: int, classes_rgba: np.ndarray) -> np.ndarray:
    """Unchanged pixels grey, changed ones in the colour of the class they became, nodata white."""
    out = np.ones(codes.shape + (4,), np.float32)
    valid = codes < n * n
    before, after = codes // n, codes % n
    changed = valid & (before != after)
    out[valid & ~changed] = UNCHANGED_GREY
    out[changed] = classes_rgba[after[changed]]
    return out


def write_change_preview(png: Path, before: Path, after: Path, change: Path, transitions: Transitions,
                         max_side: int = 600) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    classes = transitions.classes
    n = len(classes)
    colours = class_colours(classes)
    colours.pop(255)  # nodata: white, like anything unnamed
    rgba = rgba_table(colours, fill=(1.0, 1.0, 1.0, 1.0))
    fig, axes = plt.subplots(1, 4, figsize=(20, 5.4), gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    for ax, title, path in ((axes[0], "before", before), (axes[1], "after", after)):
        ax.imshow(rgba[decimated(path, max_side)], interpolation="nearest")
        ax.set_title(f"{title}: {Path(path).name}")
    axes[2].imshow(change_rgba(decimated(change, max_side).astype(np.int64), n, rgba), interpolation="nearest")
    share = 100.0 * transitions.changed_pixels() / max(transitions.total, 1)
    axes[2].set_title(f"change ({share:.1f}% of the common area)")
    for ax in axes[:3]:
        ax.set_axis_off()
    handles = [Patch(color=rgba[i][:3], label=f"→ {name}") for i, name in enumerate(classes)]
    handles.append(Patch(color=UNCHANGED_GREY[:3], label="unchanged"))
    axes[2].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False,
                   fontsize=8)
    _gains_losses(axes[3], transitions, rgba)
    fig.tight_layout()
    fig.savefig(png, dpi=90, format="png", metadata={"Software": PREVIEW_SOFTWARE})
    plt.close(fig)


def _gains_losses(ax, transitions: Transitions, rgba: np.ndarray) -> None:
    rows = transitions.per_class()
    unit = "_km2" if transitions.has_area else "_pixels"
    gains = np.array([r["gains" + unit] for r in rows], float)
    losses = np.array([r["losses" + unit] for r in rows], float)
    y = np.arange(len(rows))
    colours = [rgba[i][:3] for i in range(len(rows))]
    ax.barh(y, gains, color=colours, label="gains")
    ax.barh(y, -losses, color=colours, alpha=0.45, hatch="//", label="losses")
    ax.scatter(gains - losses, y, color="black", zorder=3, s=18, label="net")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [r["class"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("km²" if unit == "_km2" else "pixels")
    ax.set_title("gains (right), losses (left), net (dot)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
