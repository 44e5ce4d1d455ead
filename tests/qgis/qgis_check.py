"""Run by the system Python with QGIS's bindings (apt python3-qgis), not by lut's venv:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis/qgis_check.py FILE...

Loads each file as QGIS would (its default style: a .qml beside a raster, layer_styles in a GeoPackage),
renders it offscreen, and prints one JSON line per file: valid, renderer type, legend labels, and how many
rendered pixels are not transparent."""

import json
import sys

from qgis.core import (QgsApplication, QgsMapRendererSequentialJob, QgsMapSettings, QgsRasterLayer,
                       QgsVectorLayer)
from qgis.PyQt.QtCore import QSize


def render(layer) -> int:
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(200, 200))
    settings.setDestinationCrs(layer.crs())
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    return sum(1 for y in range(0, 200, 4) for x in range(0, 200, 4) if image.pixelColor(x, y).alpha() > 0)


def check(path: str) -> dict:
    if path.endswith(".gpkg"):
        layer = QgsVectorLayer(path, "layer", "ogr")
        renderer = layer.renderer()
        labels = [c.label() for c in renderer.categories()] if renderer.type() == "categorizedSymbol" else []
    else:
        layer = QgsRasterLayer(path, "layer")
        renderer = layer.renderer()
        labels = [item[0] for item in renderer.legendSymbologyItems()]
    return {"path": path, "valid": layer.isValid(), "renderer": renderer.type(), "labels": labels,
            "drawn": render(layer)}


app = QgsApplication([], False)
app.initQgis()
for name in sys.argv[1:]:
    print(json.dumps(check(name)))
app.exitQgis()
