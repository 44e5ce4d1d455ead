"""Styles that travel inside a GeoPackage: the QGIS `layer_styles` table (QGIS loads its default style when
the layer is opened) holding a QML and an SLD (OGC Symbology Encoding, for other clients) that draw each
polygon in its class colour, named after its class."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .legend import class_colours

LAYER_STYLES = """CREATE TABLE IF NOT EXISTS layer_styles (
  id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
  f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
  useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
  update_time DATETIME DEFAULT CURRENT_TIMESTAMP)"""


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def qml(classes: list[str]) -> str:
    """A categorized fill renderer on `class`, one category per class in its colour."""
    colours = class_colours(classes)
    categories = "".join(f'<category symbol="{i}" value={quoteattr(name)} label={quoteattr(name)} render="true"/>'
                         for i, name in enumerate(classes))
    symbols = "".join(
        f'<symbol type="fill" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0"><layer class="SimpleFill" '
        f'enabled="1" pass="0" locked="0"><Option type="Map"><Option name="color" type="QString" '
        f'value="{r},{g},{b},255"/><Option name="outline_style" type="QString" value="no"/></Option>'
        f'<prop k="color" v="{r},{g},{b},255"/><prop k="outline_style" v="no"/></layer></symbol>'
        for i, (r, g, b, _) in ((i, colours[i]) for i in range(len(classes))))
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.28" styleCategories="Symbology"><renderer-v2 type="categorizedSymbol" attr="class" '
            f'symbollevels="0" enableorderby="0" forceraster="0"><categories>{categories}</categories>'
            f"<symbols>{symbols}</symbols></renderer-v2></qgis>\n")


def sld(classes: list[str], layer: str) -> str:
    """SLD 1.1 (Symbology Encoding): one rule per class, filtered on `class`."""
    colours = class_colours(classes)
    rules = "".join(
        f"<se:Rule><se:Name>{escape(name)}</se:Name><se:Description><se:Title>{escape(name)}</se:Title>"
        "</se:Description><ogc:Filter><ogc:PropertyIsEqualTo><ogc:PropertyName>class</ogc:PropertyName>"
        f"<ogc:Literal>{escape(name)}</ogc:Literal></ogc:PropertyIsEqualTo></ogc:Filter><se:PolygonSymbolizer>"
        f'<se:Fill><se:SvgParameter name="fill">{_hex(colours[i])}</se:SvgParameter></se:Fill>'
        "</se:PolygonSymbolizer></se:Rule>" for i, name in enumerate(classes))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<StyledLayerDescriptor version="1.1.0" '
            'xmlns="http://www.opengis.net/sld" xmlns:se="http://www.opengis.net/se" '
            'xmlns:ogc="http://www.opengis.net/ogc" xmlns:xlink="http://www.w3.org/1999/xlink" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<NamedLayer><se:Name>{escape(layer)}</se:Name><UserStyle><se:Name>{escape(layer)}</se:Name>"
            f"<se:FeatureTypeStyle>{rules}</se:FeatureTypeStyle></UserStyle></NamedLayer>"
            "</StyledLayerDescriptor>\n")


def write_styles(gpkg: Path, layer: str, geometry_column: str, classes: list[str]) -> None:
    """Store the default style of `layer` in the GeoPackage (registered in gpkg_contents as attributes)."""
    with sqlite3.connect(gpkg) as db:
        db.execute(LAYER_STYLES)
        db.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('layer_styles', 'attributes', 'layer_styles')")
        db.execute("DELETE FROM layer_styles WHERE f_table_name = ?", (layer,))
        db.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                   "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui, update_time) "
                   "VALUES ('', '', ?, ?, ?, ?, ?, 1, 'lut land-use classes', '', '', "
                   "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                   (layer, geometry_column, layer, qml(classes), sld(classes, layer)))
