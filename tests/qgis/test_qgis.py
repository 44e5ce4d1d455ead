"""lut's outputs in QGIS itself (3.22 on Debian 12), headless: each loads with its class names in the legend
and renders. Runs where the system Python has QGIS's bindings (`apt-get install python3-qgis`), else skips;
`tests/qgis/qgis_check.py` says how to run it by hand."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ..conftest import CLASSES6, write_lut_map

SYSTEM = Path("/usr/bin/python3")
SCRIPT = Path(__file__).with_name("qgis_check.py")


def qgis_available() -> bool:
    if not SYSTEM.is_file():
        return False
    return subprocess.run([str(SYSTEM), "-c", "import qgis.core"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not qgis_available(), reason="QGIS's Python bindings (python3-qgis) are not installed")


def in_qgis(*paths: Path) -> list[dict]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}
    out = subprocess.run([str(SYSTEM), str(SCRIPT), *map(str, paths)], capture_output=True, text=True, env=env,
                         timeout=300, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_maps_vectors_change_and_samples_load_with_class_names_and_render(tmp_path):
    import numpy as np

    from lut.toolkit.assess.design import DesignConfig, design
    from lut.toolkit.gis.change import ChangeConfig, compute_change
    from lut.toolkit.gis.vectorize import VectorizeConfig, vectorize

    classes = np.repeat(np.arange(6, dtype=np.uint8), 20)[None].repeat(60, 0)
    before = write_lut_map(tmp_path / "before.tif", classes)
    after = write_lut_map(tmp_path / "after.tif", np.roll(classes, 20, axis=1))
    compute_change(ChangeConfig(before, after, tmp_path / "change.tif"))
    vectorize(VectorizeConfig(before, tmp_path / "before.gpkg"))
    design(DesignConfig(before, tmp_path / "sample.gpkg", n=30, min_per_stratum=5))
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "before.tif").write_bytes(before.read_bytes())  # no .aux.xml, no .qml
    results = {Path(r["path"]).name if "alone" not in r["path"] else "alone": r
               for r in in_qgis(before, tmp_path / "change.tif", tmp_path / "before.gpkg", alone / "before.tif",
                                tmp_path / "sample.gpkg")}
    assert all(r["valid"] and r["drawn"] > 0 for r in results.values()), results
    assert results["before.tif"]["renderer"] == "paletted" and results["before.tif"]["labels"] == CLASSES6
    assert results["before.gpkg"]["renderer"] == "categorizedSymbol" and results["before.gpkg"]["labels"] == CLASSES6
    assert "forest→cropland" in results["change.tif"]["labels"]
    assert results["alone"]["renderer"] == "paletted"  # the TIFF's own palette, without any sidecar
    assert [label.split(" (")[0] for label in results["sample.gpkg"]["labels"]] == CLASSES6  # by stratum
