"""A legend a report can include: one swatch per class in its map colour, with its name and mapped km²."""

from __future__ import annotations

from pathlib import Path

from lut.toolkit.core.formats import PREVIEW_SOFTWARE

from .legend import class_colours


def write_legend_image(png: Path, classes: list[str], km2: list[float | None] | None = None,
                       title: str = "Land use") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = class_colours(classes)
    labels = [name if not km2 or km2[i] is None else f"{name}  ({km2[i]:,.2f} km² mapped)"
              for i, name in enumerate(classes)]
    handles = [Patch(facecolor="#{:02x}{:02x}{:02x}".format(*colours[i][:3]), edgecolor="#333333", label=label)
               for i, label in enumerate(labels)]
    fig = plt.figure(figsize=(3.6, 0.32 * len(classes) + 0.6))
    fig.legend(handles=handles, loc="center", frameon=False, title=title, alignment="left")
    fig.savefig(png, dpi=150, format="png", bbox_inches="tight", metadata={"Software": PREVIEW_SOFTWARE})
    plt.close(fig)
