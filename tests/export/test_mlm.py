"""Models that describe themselves: every export writes STAC MLM metadata, and the ONNX folder alone is
enough to map: a plain onnxruntime + numpy script (no lut import) reproduces lut's per-window classes on
real windows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.toolkit.core.errors import LutError

from ..conftest import write_scene

NAIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "scenes" / "naip_2020_rgbn_5m.tif"

PLAIN = """
import json, sys
import numpy as np
import onnxruntime as ort

folder, windows = sys.argv[1], np.load(sys.argv[2])          # (n, bands, h, w) raw values, bands in mlm order
item = json.load(open(folder + "/mlm.json"))
spec, rule = item["properties"]["mlm:input"][0], item["properties"]["lut:scaling"]
low, high = np.array(rule["low"])[:, None, None], np.array(rule["high"])[:, None, None]
x = (windows * rule["scale"] + rule["offset"] - low) / (high - low)
x = np.clip(x, 0, 1)
stats = spec["statistics"]
x = (x - np.array([s["mean"] for s in stats])[:, None, None]) / np.array([s["stddev"] for s in stats])[:, None, None]
session = ort.InferenceSession(folder + "/" + item["assets"]["fp32"]["href"], providers=["CPUExecutionProvider"])
logits = session.run(None, {spec["name"]: x.astype(np.float32)})[0]
print(json.dumps(logits.argmax(1).tolist()))
"""


def test_every_export_describes_its_model(exported_bundle):
    item = json.loads((exported_bundle / "onnx" / "mlm.json").read_text())
    props = item["properties"]
    assert "https://stac-extensions.github.io/mlm/v1.4.0/schema.json" in item["stac_extensions"]
    spec = props["mlm:input"][0]
    assert [b["name"] for b in spec["bands"]] == ["red", "green", "blue"]
    assert spec["input"]["shape"] == [-1, 3, 32, 32] and spec["input"]["data_type"] == "float32"
    classes = props["mlm:output"][0]["classification:classes"]
    assert [c["name"] for c in classes][:2] == ["forest", "cropland"] and len(classes[0]["color_hint"]) == 6
    assert set(props["lut:precisions"]) == {"fp32", "int8"}
    assert set(item["assets"]) == {"fp32", "int8", "fp32_uint8_input", "int8_uint8_input"}
    assert item["assets"]["int8_uint8_input"]["roles"] == ["lut:uint8-input"]  # not an mlm:model of its own
    assert props["lut:scaling"]["quantity"] == "dn" and props["lut:version"]
    assert all((exported_bundle / "onnx" / a["href"]).is_file() for a in item["assets"].values())


@pytest.mark.skipif(not NAIP.is_file(), reason="../shared/data/scenes is absent")
def test_a_plain_onnxruntime_script_reproduces_lut_per_window_classes(exported_bundle, tmp_path):
    out = tmp_path / "m.tif"
    classify_scene(ClassifyConfig(scene=NAIP, output=out, model=exported_bundle, precision="fp32", bands=(1, 2, 3),
                                  resample=False, progress=False))
    with rasterio.open(NAIP) as src, rasterio.open(out) as mapped:
        data, classes = src.read([1, 2, 3]), mapped.read(1)
    windows, expected = [], []
    for y in range(0, 640, 32):
        for x in range(0, 640, 32):
            window = data[:, y:y + 32, x:x + 32]
            if (window != 0).all(axis=0).all():  # fully valid windows: no fill to reproduce
                windows.append(window)
                expected.append(int(classes[y + 16, x + 16]))
    assert len(windows) > 200
    np.save(tmp_path / "w.npy", np.stack(windows).astype(np.float64))
    done = subprocess.run([sys.executable, "-c", PLAIN, str(exported_bundle / "onnx"), str(tmp_path / "w.npy")],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == expected


def test_a_scene_of_unknown_encoding_is_refused_by_a_self_describing_model(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", np.random.default_rng(0).integers(0, 5000, (3, 64, 64)).astype(np.int32))
    with pytest.raises(LutError, match="which no rule of the model's input maps: pass `scale` percentile"):
        classify_scene(ClassifyConfig(scene=scene, output=tmp_path / "m.tif", model=exported_bundle, progress=False))
    assert not (tmp_path / "m.tif").exists()
