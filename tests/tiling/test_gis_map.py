"""Maps a GIS understands: names GDAL reads back, a confidence band that is never alpha, nearest overviews,
and legend sidecars that change with the map."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.tiling.writer import ClassMapWriter
from lut.toolkit.core.raster import to_cog
from lut.toolkit.core.errors import LutError

from ..conftest import CLASSES6, synthetic_scene, write_scene
from ..gdal_native import read_band_legend


def classify(bundle, scene, out, **kw):
    return classify_scene(ClassifyConfig(scene=scene, output=out, model=bundle, progress=False, **kw))


def colorinterp_without_sidecar(path):
    """What a reader that ignores .aux.xml sees: the TIFF's own marking."""
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path) as src:
        return src.colorinterp


@pytest.mark.parametrize("cog", [False, True])
def test_class_names_colours_and_a_plain_confidence_band(exported_bundle, tmp_path, cog):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(96, 128, class_index=3))
    result = classify(exported_bundle, scene, tmp_path / "m.tif", cog=cog, confidence=True)
    legend = read_band_legend(tmp_path / "m.tif")
    assert legend["categories"] == CLASSES6
    assert legend["rat"]["Class"] == CLASSES6 and legend["rat"]["Blue"][3] == "220"
    assert int(legend["rat"]["Pixels"][3]) == result.summary["classes"]["water"]["pixels"] > 0
    assert float(legend["rat"]["km2"][3]) == pytest.approx(result.summary["classes"]["water"]["km2"])
    with rasterio.open(tmp_path / "m.tif") as src, rasterio.open(tmp_path / "m.confidence.tif") as conf:
        assert src.count == 1 and src.colorinterp == (ColorInterp.palette,)  # one paletted band (lut-map/2)
        assert src.nodatavals == (255,) and src.tags()["LUT_FORMAT"] == "lut-map/2"
        assert src.colormap(1)[3][:3] == (40, 90, 220)
        assert conf.colorinterp == (ColorInterp.gray,) and "percent" in conf.descriptions[0]
        assert conf.read(1)[src.read(1) != 255].max() <= 100 and conf.tags()["LUT_FORMAT"] == "lut-confidence/1"
    assert colorinterp_without_sidecar(tmp_path / "m.tif") == (ColorInterp.palette,)
    assert result.summary["confidence"].endswith("m.confidence.tif")
    qml = ET.parse(tmp_path / "m.qml").getroot()
    renderer = qml.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("alphaBand") == "-1"
    labels = {e.get("value"): e.get("label") for e in renderer.iter("paletteEntry")}
    assert labels["0"] == "forest" and labels["5"] == "wetland"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or p.name.startswith(".")]


def test_cog_overviews_keep_classes_nearest_never_averaged(tmp_path):
    """A checkerboard of classes 0 and 4: averaging would invent class 2."""
    board = (np.indices((600, 600)).sum(0) % 2 * 4).astype(np.uint8)
    profile = {"width": 600, "height": 600, "crs": rasterio.crs.CRS.from_epsg(32633),
               "transform": from_origin(0, 600, 10, 10)}
    writer = ClassMapWriter(tmp_path / "g.tif", profile, CLASSES6, tmp_path / "g.confidence.tif")
    writer.write_rows(0, board, np.full_like(board, 77))
    writer.close()
    to_cog(tmp_path / "g.tif", tmp_path / "c.tif")
    with rasterio.open(tmp_path / "c.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.overviews(1) == [2, 4]
        for level in range(len(src.overviews(1))):
            with rasterio.open(tmp_path / "c.tif", overview_level=level) as ovr:
                assert set(np.unique(ovr.read(1)).tolist()) <= {0, 4}
        assert src.tags()["class_names"] == ",".join(CLASSES6) and src.colormap(1)[4][:3] == (170, 130, 90)
    assert ColorInterp.alpha not in colorinterp_without_sidecar(tmp_path / "c.tif")


def test_legend_sidecars_change_with_the_map_and_foreign_ones_are_refused(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(64, 64, class_index=0))
    classify(exported_bundle, scene, tmp_path / "m.tif")
    first = (tmp_path / "m.tif.aux.xml").read_text()
    classify(exported_bundle, write_scene(tmp_path / "s2.tif", synthetic_scene(64, 64, class_index=3)),
             tmp_path / "m.tif", overwrite=True)
    assert (tmp_path / "m.tif.aux.xml").read_text() != first  # pixel counts of the new map
    (tmp_path / "m.qml").write_text("<qgis>my own style</qgis>")
    with pytest.raises(LutError, match="m.qml exists and was not written by lut"):
        classify(exported_bundle, scene, tmp_path / "m.tif", overwrite=True)
    assert (tmp_path / "m.qml").read_text() == "<qgis>my own style</qgis>"


def test_classify_vector_writes_polygons_with_the_map(exported_bundle, tmp_path):
    import pyogrio

    data = np.concatenate([synthetic_scene(64, 64, class_index=0), synthetic_scene(64, 64, class_index=3)], axis=2)
    scene = write_scene(tmp_path / "s.tif", data)
    result = classify(exported_bundle, scene, tmp_path / "m.tif", vector=tmp_path / "m.gpkg", vector_min_area=0.5)
    frame = pyogrio.raw.read(tmp_path / "m.gpkg")
    names = frame[3][1]
    assert set(names) <= set(CLASSES6) and result.summary["vector"]["polygons"] == len(names)
    assert result.summary["vector"]["sieve_pixels"] == 50  # 0.5 ha of 100 m² pixels
    with pytest.raises(LutError, match="`vector_min_area` applies to `vector`"):
        classify(exported_bundle, scene, tmp_path / "n.tif", vector_min_area=1.0)
