"""One ONNX Runtime session per scene, built before its first window, from a file: the uint8-input variant
that lut export wrote, one cached beside an older export, or one built apart where lut may not write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lut.export import runtime
from lut.export.uint8_input import SOURCE_KEY
from lut.tiling import deployed, uint8_file
from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.toolkit.core.bundle import Bundle
from lut.toolkit.core.store import sha256_file

from ..conftest import synthetic_scene, write_scene


@pytest.fixture
def opened(monkeypatch) -> list[tuple[str, str, object]]:
    """Every session lut opens: (file name, when, session)."""
    calls: list = []
    real = runtime.open_session

    def spy(model, device="auto", options=None):
        session = real(model, device, options)
        calls.append((Path(model).name, "opened", session))
        return session

    monkeypatch.setattr(deployed, "open_session", spy)
    return calls


def _uint8_scene(tmp_path: Path) -> Path:
    data = np.concatenate([synthetic_scene(64, 64, class_index=c, seed=c) for c in (0, 2)], axis=2)
    return write_scene(tmp_path / "u8.tif", data)


def _classify(scene: Path, out: Path, bundle: Path, **kw):
    return classify_scene(ClassifyConfig(scene=scene, output=out, model=bundle, progress=False, **kw))


def test_a_uint8_scene_opens_one_session_the_exported_uint8_file(exported_bundle, tmp_path, opened):
    lut_json = Bundle.load(exported_bundle / "onnx")
    assert lut_json.uint8_input == {"fp32": "model_uint8_input.onnx", "int8": "model_int8_uint8_input.onnx"}
    _classify(_uint8_scene(tmp_path), tmp_path / "m.tif", exported_bundle, precision="int8")
    assert [name for name, _, _ in opened] == ["model_int8_uint8_input.onnx"]


def test_a_uint16_scene_opens_only_the_float_model(exported_bundle, tmp_path, opened):
    data = (synthetic_scene(64, 64, class_index=1).astype(np.uint16) * 10).astype(np.uint16)
    scene = write_scene(tmp_path / "u16.tif", data)
    _classify(scene, tmp_path / "m.tif", exported_bundle, precision="fp32", scale="reflectance")
    assert [name for name, _, _ in opened] == ["model.onnx"]


def test_sessions_are_kept_across_scenes_and_replaced_not_added(exported_bundle, tmp_path, opened):
    model = deployed.load_deployed(exported_bundle, "fp32")
    assert opened == []  # loading the model builds no session: the scene decides which one
    scene = _uint8_scene(tmp_path)
    for name in ("a", "b"):
        classify_scene(ClassifyConfig(scene=scene, output=tmp_path / f"{name}.tif", model=exported_bundle,
                                      progress=False), model=model)
    assert [name for name, _, _ in opened] == ["model_uint8_input.onnx"]


def _old_export(exported_bundle: Path, tmp_path: Path) -> Path:
    """An export made before the uint8-input files: no variant beside the model, none in lut.json."""
    old = tmp_path / "old"
    shutil.copytree(exported_bundle, old)
    lut = Bundle.load(old / "onnx")
    lut.uint8_input = {}
    lut.save(old / "onnx")
    for name in ("model_uint8_input.onnx", "model_int8_uint8_input.onnx"):
        (old / "onnx" / name).unlink()
    return old


def test_an_older_export_gets_its_variant_built_once_and_cached(exported_bundle, tmp_path, monkeypatch):
    old = _old_export(exported_bundle, tmp_path)
    built: list[Path] = []
    real = uint8_file.write_uint8_variant
    monkeypatch.setattr(uint8_file, "write_uint8_variant", lambda *a: built.append(a[1]) or real(*a))
    scene = _uint8_scene(tmp_path)
    _classify(scene, tmp_path / "new.tif", exported_bundle, precision="fp32")
    for run in ("1", "2"):
        _classify(scene, tmp_path / f"old{run}.tif", old, precision="fp32")
    cached = old / "onnx" / "model_uint8_input.onnx"
    assert len(built) == 1 and cached.is_file()
    assert oct(cached.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert not [p for p in (old / "onnx").iterdir() if p.name.startswith(".")]  # no temporaries left
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(cached), load_external_data=False).metadata_props}
    assert meta[SOURCE_KEY] == sha256_file(old / "onnx" / "model.onnx")
    assert (tmp_path / "old1.tif").read_bytes() == (tmp_path / "old2.tif").read_bytes()
    _assert_same_map(tmp_path / "new.tif", tmp_path / "old1.tif")
    # the model changes (a copy of another export over it): the cached variant is built again
    shutil.copy(old / "onnx" / "model_int8.onnx", old / "onnx" / "model.onnx")
    _classify(scene, tmp_path / "old3.tif", old, precision="fp32")
    assert len(built) == 2
    meta = {p.key: p.value for p in onnx.load(str(cached), load_external_data=False).metadata_props}
    assert meta[SOURCE_KEY] == sha256_file(old / "onnx" / "model.onnx")


def test_a_read_only_export_gets_its_variant_built_apart(exported_bundle, tmp_path, monkeypatch):
    old = _old_export(exported_bundle, tmp_path)
    before = sorted(p.name for p in (old / "onnx").iterdir())
    (old / "onnx").chmod(0o555)
    if os.geteuid() == 0:  # root writes through modes: a read-only folder as root sees it on a read-only mount
        monkeypatch.setattr(uint8_file, "_owned_and_writable", lambda folder: False)
    try:
        scene = _uint8_scene(tmp_path)
        _classify(scene, tmp_path / "ro.tif", old, precision="fp32")
    finally:
        (old / "onnx").chmod(0o755)
    assert sorted(p.name for p in (old / "onnx").iterdir()) == before
    _classify(scene, tmp_path / "new.tif", exported_bundle, precision="fp32")
    _assert_same_map(tmp_path / "new.tif", tmp_path / "ro.tif")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_uint8_file_maps_what_the_float_model_maps_at_every_batch_size(exported_bundle, tmp_path, precision):
    """Per batch size: dynamic INT8 quantizes each batch with its own range, so batch size may change an
    INT8 map (as it always did); the input path must not."""
    data = np.concatenate([synthetic_scene(72, 80, class_index=c, seed=c) for c in (0, 1, 3, 5)], axis=2)
    data[:, 5:30, 100:140] = 0  # windows with nodata take the float input beside the uint8 ones
    scene = write_scene(tmp_path / "s.tif", data, nodata=0)
    for batch in (1, 3, 32):
        maps = []
        for graph in (True, False):
            out = tmp_path / f"{batch}{graph}.tif"
            _classify(scene, out, exported_bundle, precision=precision, batch_size=batch, uint8_graph=graph,
                      confidence=True, probabilities=True)
            maps.append(b"".join(_pixels(p) for p in (out, out.with_suffix(".confidence.tif"),
                                                      out.with_suffix(".probabilities.tif"))))
        assert maps[0] == maps[1], f"batch size {batch}"


def test_session_options_reach_onnx_runtime(exported_bundle, tmp_path, opened):
    _classify(_uint8_scene(tmp_path), tmp_path / "m.tif", exported_bundle, precision="fp32", threads=1,
              spinning=False)
    options = opened[0][2].get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    _classify(_uint8_scene(tmp_path), tmp_path / "n.tif", exported_bundle, precision="fp32")
    assert opened[1][2].get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_bad_session_options_are_refused_before_work(exported_bundle, tmp_path):
    from lut.toolkit.core.errors import InputError

    with pytest.raises(InputError, match="`threads` must be at least 1"):
        _classify(_uint8_scene(tmp_path), tmp_path / "m.tif", exported_bundle, threads=0)
    assert not (tmp_path / "m.tif").exists()
    with pytest.raises(InputError, match="`optimization` must be one of"):
        runtime.SessionOptions(optimization="fast").check()


def _pixels(path: Path) -> bytes:
    with rasterio.open(path) as src:
        return src.read().tobytes()


def _assert_same_map(a: Path, b: Path) -> None:
    assert _pixels(a) == _pixels(b)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
