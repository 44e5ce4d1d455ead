"""What a GIS needs to draw a lut raster with names: colours, category names, an attribute table and a
QGIS style.

A GeoTIFF holds a colour table but no names, so GDAL keeps category names and raster attribute tables in a
PAM sidecar, `MAP.tif.aux.xml`, which GDAL (rasterio, QGIS, ArcGIS, gdalinfo) reads on open. QGIS also
loads `MAP.qml` beside `MAP.tif` as the layer's default style, so the legend shows the class names even
where it ignores the attribute table. lut writes both next to every map it writes, through the same
temporary-then-rename group as the map, and marks both so `--overwrite` can recognise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from lut.toolkit.core.classes import CLASS_COLOURS, GRASS, SYNONYMS
from lut.toolkit.core.formats import LEGEND_FORMAT, LEGEND_KEY


RGBA = tuple[int, int, int, int]


def rgba_table(colours: dict[int, RGBA], fill: tuple[float, float, float, float] = (0, 0, 0, 0)) -> np.ndarray:
    """A (256, 4) float table in [0, 1] for drawing uint8 class rasters; values without a colour get `fill`."""
    table = np.tile(np.asarray(fill, np.float32), (256, 1))
    for value, rgba in colours.items():
        if value < 256:
            table[value] = np.asarray(rgba, np.float32) / 255.0
    return table


#: matplotlib's tab20 colours as 8-bit RGB (its floats x 255, truncated, as lut always drew them); kept here
#: so that mapping does not import matplotlib (0.17 s of a 256² scene's start-up)
TAB20 = ((31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44), (152, 223, 138),
         (214, 39, 40), (255, 152, 150), (148, 103, 189), (197, 176, 213), (140, 86, 75), (196, 156, 148),
         (227, 119, 194), (247, 182, 210), (127, 127, 127), (199, 199, 199), (188, 189, 34), (219, 219, 141),
         (23, 190, 207), (158, 218, 229))


def class_colours(classes: list[str], nodata: int = 255) -> dict[int, RGBA]:
    """Land-use names (and synonyms) get their conventional colour, each colour used once; other classes
    get distinct tab20 colours. `nodata` is transparent."""
    table: dict[int, RGBA] = {}
    used: set[tuple[int, ...]] = set()
    for i, name in enumerate(classes):
        lower = name.lower()
        rgb = next((CLASS_COLOURS[k] for k, words in SYNONYMS.items() if any(w in lower for w in words)), None)
        if rgb is None and any(w in lower for w in ("grass", "meadow", "pasture")):
            rgb = GRASS
        if rgb is None or rgb in used:
            candidates = [TAB20[j % 20] for j in range(i, i + 20)]
            rgb = max(candidates, key=lambda c: min((sum((a - b) ** 2 for a, b in zip(c, u)) for u in used),
                                                    default=0))
        used.add(rgb)
        table[i] = (*rgb, 255)
    table[nodata] = (0, 0, 0, 0)
    return table


@dataclass
class Category:
    value: int
    name: str
    colour: RGBA
    pixels: int | None = None
    km2: float | None = None


@dataclass
class Legend:
    """The categories of band 1 and how the other bands are to be read."""

    categories: list[Category]
    nodata: int
    band_notes: dict[int, str] = field(default_factory=dict)  # band -> description of a plain data band

    def names(self) -> list[str]:
        """GDAL category names: entry i names value i."""
        by_value = {c.value: c.name for c in self.categories}
        return [by_value.get(v, "") for v in range(max(by_value) + 1)]

    def category_xml(self, indent: str = "    ") -> list[str]:
        """The `<CategoryNames>` element of a PAM or VRT band."""
        return ([f"{indent}<CategoryNames>"] + [f"{indent}  <Category>{escape(n)}</Category>" for n in self.names()]
                + [f"{indent}</CategoryNames>"])


# GDAL's raster attribute table enums (gdal.h: GDALRATFieldType, GDALRATFieldUsage)
_INTEGER, _REAL, _STRING = 0, 1, 2
_GENERIC, _PIXEL_COUNT, _NAME, _MIN_MAX, _RED, _GREEN, _BLUE, _ALPHA = 0, 1, 2, 5, 6, 7, 8, 9
_RAT_FIELDS = (("Value", _INTEGER, _MIN_MAX), ("Class", _STRING, _NAME), ("Red", _INTEGER, _RED),
               ("Green", _INTEGER, _GREEN), ("Blue", _INTEGER, _BLUE), ("Alpha", _INTEGER, _ALPHA),
               ("Pixels", _INTEGER, _PIXEL_COUNT), ("km2", _REAL, _GENERIC))


def _rat_xml(legend: Legend) -> list[str]:
    lines = ['    <GDALRasterAttributeTable tableType="thematic">']
    for i, (name, kind, usage) in enumerate(_RAT_FIELDS):
        lines.append(f'      <FieldDefn index="{i}"><Name>{name}</Name><Type>{kind}</Type>'
                     f'<Usage>{usage}</Usage></FieldDefn>')
    for row, c in enumerate(legend.categories):
        km2 = "" if c.km2 is None else repr(float(c.km2))
        cells = (str(c.value), escape(c.name), *(str(v) for v in c.colour), str(c.pixels or 0), km2)
        lines.append(f'      <Row index="{row}">' + "".join(f"<F>{v}</F>" for v in cells) + "</Row>")
    lines.append("    </GDALRasterAttributeTable>")
    return lines


def pam_xml(legend: Legend) -> str:
    """The `.aux.xml` GDAL reads beside a GeoTIFF: category names and an attribute table on band 1, and
    "Gray" for the other bands, so no viewer takes a data band for transparency."""
    lines = ["<PAMDataset>", "  <Metadata>", f'    <MDI key="{LEGEND_KEY}">{LEGEND_FORMAT}</MDI>', "  </Metadata>",
             '  <PAMRasterBand band="1">', "    <ColorInterp>Palette</ColorInterp>"]
    lines += legend.category_xml()
    lines += _rat_xml(legend)
    lines.append("  </PAMRasterBand>")
    for band, description in sorted(legend.band_notes.items()):
        lines += [f'  <PAMRasterBand band="{band}">', f"    <Description>{escape(description)}</Description>",
                  "    <ColorInterp>Gray</ColorInterp>", "  </PAMRasterBand>"]
    lines.append("</PAMDataset>")
    return "\n".join(lines) + "\n"


def qml_style(legend: Legend) -> str:
    """A QGIS layer style: band 1 drawn as a palette with the class names as labels, no alpha band."""
    entries = "\n".join(
        f"        <paletteEntry value=\"{c.value}\" color=\"#{c.colour[0]:02x}{c.colour[1]:02x}{c.colour[2]:02x}\" "
        f"alpha=\"{c.colour[3]}\" label={quoteattr(c.name)}/>" for c in legend.categories)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="AllStyleCategories">
  <customproperties>
    <Option type="Map">
      <Option type="QString" name="{LEGEND_KEY}" value="{LEGEND_FORMAT}"/>
    </Option>
  </customproperties>
  <pipe>
    <provider>
      <resampling enabled="false" maxOversampling="2" zoomedInResamplingMethod="nearestNeighbour"
                  zoomedOutResamplingMethod="nearestNeighbour"/>
    </provider>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin><limits>None</limits><extent>WholeRaster</extent><statAccuracy>Estimated</statAccuracy></minMaxOrigin>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def sidecars(raster: Path) -> tuple[Path, Path]:
    """Where GDAL and QGIS look for a raster's legend: `NAME.tif.aux.xml` and `NAME.qml`."""
    raster = Path(raster)
    return raster.with_name(raster.name + ".aux.xml"), raster.with_suffix(".qml")


def write_legend(legend: Legend, aux: Path, qml: Path) -> None:
    Path(aux).write_text(pam_xml(legend), encoding="utf-8")
    Path(qml).write_text(qml_style(legend), encoding="utf-8")


def is_lut_legend(path: Path) -> bool:
    """An `.aux.xml` or `.qml` lut wrote (both carry the legend marker)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return LEGEND_FORMAT in head and LEGEND_KEY in head
