"""Many scenes in one run: scene lists and shards, records and resume, failures, mosaic, and the Ray engine
(a two-node cluster on this machine, shared by the Ray tests)."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from click.testing import CliRunner

from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.tiling.engines import RayOptions, SceneWorker
from lut.tiling.many import EXIT_PARTIAL, ManyConfig, classify_many
from lut.tiling.scene_list import expand_scenes, map_path, parse_shard, shard_of
from lut.toolkit.cli import lut
from lut.toolkit.core.errors import LutError

from ..conftest import CLASSES6, synthetic_scene, write_scene


@pytest.fixture()
def scenes(tmp_path) -> Path:
    """Two dates of two same-named tiles, and a corrupt file."""
    root = tmp_path / "scenes"
    for date, cls in (("2020", 0), ("2025", 3)):
        (root / date).mkdir(parents=True)
        for i in range(2):
            write_scene(root / date / f"T{i}.tif", synthetic_scene(64, 96, class_index=cls, seed=i))
    return root


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run(bundle, items, out, **kw):
    """A many-scene run through the library; its progress lines as logged on `lut.tiling.many`."""
    template = ClassifyConfig(scene=Path("-"), output=Path(out), model=bundle, progress=False)
    logger, handler = logging.getLogger("lut.tiling.many"), _Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = classify_many(ManyConfig(scenes=[str(i) for i in items], output=Path(out), template=template,
                                          progress="lines", **kw))
    finally:
        logger.removeHandler(handler)
    return result, handler.lines


def rows(out):
    return [json.loads(line) for line in (Path(out) / "run.jsonl").read_text().splitlines()]


def test_scene_lists_globs_directories_and_at_files(scenes, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# my tiles\nscenes/2020/T0.tif\n\nscenes/2025/T1.tif\n")
    assert expand_scenes([f"@{listing}"]) == [str(scenes / "2020/T0.tif"), str(scenes / "2025/T1.tif")]
    assert expand_scenes([str(scenes / "*" / "T0.tif"), str(scenes / "2020")]) == [
        str(scenes / "2020/T0.tif"), str(scenes / "2020/T1.tif"), str(scenes / "2025/T0.tif")]
    assert map_path(scenes / "2025/T1.tif", scenes, tmp_path / "o") == tmp_path / "o/2025/T1.landuse.tif"
    # band files: resolved against the list's folder, named by their common stem without the band
    listing.write_text("red=scenes/2020/T0.tif,green=scenes/2020/T1.tif,blue=scenes/2020/T0.tif\n"
                       "https://example.org/cogs/S2_B04.tif\n")
    url, bands = expand_scenes([f"@{listing}"])  # sorted
    assert bands == f"red={scenes}/2020/T0.tif,green={scenes}/2020/T1.tif,blue={scenes}/2020/T0.tif"
    assert url == "https://example.org/cogs/S2_B04.tif"
    assert map_path(bands, scenes, tmp_path / "o") == tmp_path / "o/2020/T.landuse.tif"
    assert map_path(url, Path("/"), tmp_path / "o") == tmp_path / "o/example.org/cogs/S2_B04.landuse.tif"
    for bad, message in ((str(scenes / "*.jp2"), "matches no file"), ("@nope.txt", "does not exist"),
                         (str(tmp_path / "missing.tif"), "does not exist")):
        with pytest.raises(LutError, match=message):
            expand_scenes([bad])


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_scene_exactly_once(count):
    scenes = [Path(f"/s/{i:03d}.tif") for i in range(23)]
    slices = [shard_of(scenes, (i, count)) for i in range(count)]
    covered = [s for part in slices for s in part]
    assert sorted(covered) == scenes and len(covered) == len(set(covered))
    assert max(map(len, slices)) - min(map(len, slices)) <= 1
    with pytest.raises(LutError, match="0 <= I < N"):
        parse_shard(f"{count}/{count}")


def test_local_run_maps_match_single_scene_and_records_resume(exported_bundle, scenes, tmp_path):
    out = tmp_path / "out"
    result, lines = run(exported_bundle, [scenes], out)
    assert result.exit_code == 0 and result.ok == 4
    assert lines[0].startswith("[1/4] ok 2020/T0.tif") and "patches" in lines[0]
    single = tmp_path / "single.tif"
    classify_scene(ClassifyConfig(scene=scenes / "2025/T1.tif", output=single, model=exported_bundle,
                                  progress=False))
    assert (out / "2025/T1.landuse.tif").read_bytes() == single.read_bytes()
    assert (out / "2020/T1.landuse.tif").read_bytes() != single.read_bytes()  # dates do not collide
    spec = json.loads((out / "run.json").read_text())
    assert spec["format"] == "lut-run/1" and len(spec["onnx_sha256"]) == 64 and spec["precision"] in ("int8", "fp32")
    first = rows(out)
    assert {r["status"] for r in first} == {"ok"} and all(r["patches"] > 0 and r["host"] for r in first)
    summary = json.loads((out / "summary.json").read_text())
    mosaic = summary["mosaics"][0]
    assert mosaic["vrt"] == "mosaic.vrt" and (out / "mosaic.png").stat().st_size > 1000
    with rasterio.open(out / "mosaic.vrt") as src:
        assert (src.width, src.height) == (96, 64) and src.colormap(1)[3][:3] == (40, 90, 220)
        later = src.read(1)
    from ..gdal_native import read_band_legend

    assert read_band_legend(out / "mosaic.vrt")["categories"][:6] == [
        "forest", "cropland", "urban", "water", "barren", "wetland"]
    with rasterio.open(out / "2025/T1.landuse.tif") as src:
        assert np.array_equal(later, src.read(1))  # the later map in path order wins on the overlap
    assert mosaic["classes"]["water"]["km2"] == pytest.approx((later == 3).sum() * 100 / 1e6)
    mtime = (out / "2020/T0.landuse.tif").stat().st_mtime_ns
    again, lines = run(exported_bundle, [scenes], out)
    assert again.skipped == 4 and again.rows == [] and "already done" in lines[0]
    assert (out / "2020/T0.landuse.tif").stat().st_mtime_ns == mtime
    assert [r["status"] for r in rows(out)][-4:] == ["skipped"] * 4


def test_a_corrupt_scene_fails_alone_and_a_rerun_retries_only_it(exported_bundle, scenes, tmp_path):
    (scenes / "2020" / "A_bad.tif").write_bytes(b"II*\x00 broken")
    out = tmp_path / "out"
    result, lines = run(exported_bundle, [scenes], out)
    assert result.exit_code == EXIT_PARTIAL and result.ok == 4 and result.failed == 1
    failed = [r for r in rows(out) if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["scene"].endswith("A_bad.tif") and "GDAL" in failed[0]["error"]
    assert not (out / "2020/A_bad.landuse.tif").exists()
    again, _ = run(exported_bundle, [scenes], out)
    assert again.skipped == 4 and [Path(r["scene"]).name for r in again.rows] == ["A_bad.tif"]
    assert json.loads((out / "summary.json").read_text())["scenes"] == {"total": 5, "mapped": 4, "failed": 1,
                                                                        "not_run": 0}
    capped, lines = run(exported_bundle, [scenes / "2020"], tmp_path / "capped", max_failures=1)
    assert capped.aborted and capped.exit_code == EXIT_PARTIAL and "aborted after 1" in lines[-1]


def test_another_configuration_is_refused_unless_overwrite(exported_bundle, scenes, tmp_path):
    out = tmp_path / "out"
    run(exported_bundle, [scenes / "2020"], out)
    template = ClassifyConfig(scene=Path("-"), output=out, model=exported_bundle, progress=False, stride=16)
    cfg = ManyConfig(scenes=[str(scenes / "2020")], output=out, template=template, progress="none")
    with pytest.raises(LutError, match="another configuration \\(stride differ\\)"):
        classify_many(cfg)
    result = classify_many(replace(cfg, overwrite=True))
    assert result.ok == 2 and {r["config"] for r in rows(out)} == {json.loads((out / "run.json").read_text())[
        "config_hash"]}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(LutError, match="holds no lut run"):
        run(exported_bundle, [scenes], tmp_path / "mine")
    with pytest.raises(LutError, match="inside the input folder"):
        run(exported_bundle, [scenes], scenes / "out")


def test_shards_write_their_own_records_and_together_map_everything(exported_bundle, scenes, tmp_path):
    out = tmp_path / "out"
    for i in range(3):
        result, _ = run(exported_bundle, [scenes], out, shard=(i, 3))
    assert sorted(p.name for p in out.glob("run*.jsonl")) == [f"run.shard-{i}-of-3.jsonl" for i in range(3)]
    assert json.loads((out / "summary.json").read_text())["scenes"]["mapped"] == 4


def test_cli_many_scenes_exit_codes_and_json_progress(exported_bundle, scenes, tmp_path):
    runner = CliRunner()
    (scenes / "2025" / "zz_bad.tif").write_bytes(b"broken")
    out = tmp_path / "out"
    result = runner.invoke(lut, ["classify", str(scenes / "2020"), str(scenes / "2025" / "*.tif"), "-o", str(out),
                                 "--model", str(exported_bundle), "--progress", "json"])
    assert result.exit_code == EXIT_PARTIAL, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["status"] for r in printed].count("ok") == 4 and printed[-1]["status"] == "failed"
    result = runner.invoke(lut, ["classify", str(scenes / "2020"), "-o", str(tmp_path / "x.tif"),
                                 "--model", str(exported_bundle)])
    assert result.exit_code == 2 and "need -o DIR" in result.output
    result = runner.invoke(lut, ["classify", str(scenes / "2020/T0.tif"), "-o", str(tmp_path / "y.tif"),
                                 "--model", str(exported_bundle), "--engine", "ray"])
    assert result.exit_code == 2 and "apply to runs with -o DIR" in result.output


def test_engine_ray_without_ray_installed_is_one_line(exported_bundle, scenes, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(LutError, match=r"pip install 'lut\[ray\]'"):
        run(exported_bundle, [scenes], tmp_path / "out", engine="ray")
    assert not (tmp_path / "out").exists()


def test_a_ray_address_nobody_answers_is_one_line_in_seconds(exported_bundle, scenes, tmp_path):
    import socket
    import time

    pytest.importorskip("ray")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    result = CliRunner().invoke(lut, ["classify", str(scenes), "-o", str(tmp_path / "out"), "--model",
                                      str(exported_bundle), "--engine", "ray", "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 1 and time.perf_counter() - start < 30  # ray.init retried for minutes
    assert result.output.strip().splitlines()[-1].startswith(f"error: no Ray cluster answers at 127.0.0.1:{port} (")
    assert "--address" in result.output


# -- Ray: only these tests need it installed (the ones above run without it) ---------------------------------
@pytest.fixture(scope="module")
def two_node_cluster():
    """A head and a worker node on this machine, one CPU each: two actors land on different nodes."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_ray_maps_match_local_and_spread_over_both_nodes(exported_bundle, scenes, tmp_path, two_node_cluster):
    local, _ = run(exported_bundle, [scenes], tmp_path / "local")
    remote, _ = run(exported_bundle, [scenes], tmp_path / "ray", engine="ray", ray=RayOptions(workers=2))
    assert remote.exit_code == 0 and remote.ok == 4
    for rel in ("2020/T0", "2020/T1", "2025/T0", "2025/T1"):
        assert (tmp_path / "ray" / f"{rel}.landuse.tif").read_bytes() == \
            (tmp_path / "local" / f"{rel}.landuse.tif").read_bytes()
    assert len({r["node"] for r in remote.rows}) == 2


def test_ray_maps_band_files_and_remote_scenes(exported_bundle, scenes, tmp_path, two_node_cluster):
    """Scene arguments other than files travel to Ray workers as they are: band files and an HTTP URL."""
    from ..range_server import serve

    with rasterio.open(scenes / "2020/T0.tif") as src:
        data, profile = src.read(), src.profile
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, name in enumerate(("B4", "B3", "B2")):
        with rasterio.open(parts / f"T0_{name}.tif", "w", **{**profile, "count": 1}) as dst:
            dst.write(data[i], 1)
    bands = ",".join(f"{c}={parts}/T0_{b}.tif" for c, b in (("red", "B4"), ("green", "B3"), ("blue", "B2")))
    with serve(scenes / "2025") as (url, _):
        result, _ = run(exported_bundle, [bands, f"{url}/T1.tif"], tmp_path / "ray", engine="ray",
                        ray=RayOptions(workers=2))
    assert result.exit_code == 0 and result.ok == 2, result.rows
    local, _ = run(exported_bundle, [str(scenes / "2020/T0.tif")], tmp_path / "local")
    maps = sorted((tmp_path / "ray").rglob("*.landuse.tif"), key=lambda p: p.name)
    assert maps[1].parent.name == "127.0.0.1"  # OUT/<host>/<path> for a URL
    assert [m.name for m in maps] == ["T0.landuse.tif", "T1.landuse.tif"]
    assert (tmp_path / "local" / "T0.landuse.tif").read_bytes() == next(
        m for m in maps if m.name == "T0.landuse.tif").read_bytes()


def test_a_worker_killed_mid_scene_gets_its_scene_retried(exported_bundle, scenes, tmp_path, two_node_cluster):
    marker = tmp_path / "killed-once"

    class DiesOnce(SceneWorker):
        """Exits the whole worker process once, while its first map's temporary file exists."""

        def run(self, job, attempt=1):
            if not marker.exists():
                marker.touch()

                def die_when_writing():
                    for _ in range(20000):
                        if list(Path(job.target).parent.glob(".*.tmp-*")):
                            os._exit(1)
                        threading.Event().wait(0.0005)

                threading.Thread(target=die_when_writing, daemon=True).start()
            return super().run(job, attempt)

    big = tmp_path / "big"
    big.mkdir()
    for i in range(3):
        write_scene(big / f"S{i}.tif", synthetic_scene(512, 512, class_index=i, seed=i))
    out = tmp_path / "out"
    result, _ = run(exported_bundle, [big], out, engine="ray", ray=RayOptions(workers=2, retries=2),
                    worker_cls=DiesOnce)
    assert marker.exists() and result.exit_code == 0 and result.ok == 3
    assert max(r["attempts"] for r in result.rows) == 2
    assert all((out / f"S{i}.landuse.tif").is_file() for i in range(3))
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_cog_mosaic_and_vrt_mosaic_stand_alone(exported_bundle, scenes, tmp_path):
    from rio_cogeo.cogeo import cog_validate

    result, _ = run(exported_bundle, [scenes], tmp_path / "cog", mosaic="cog")
    assert result.exit_code == 0 and result.summary["mosaics"][0]["cog"] == "mosaic.tif"
    assert cog_validate(str(tmp_path / "cog" / "mosaic.tif"), strict=True)[0]
    assert not (tmp_path / "cog" / "mosaic.vrt").exists() and (tmp_path / "cog" / "mosaic.qml").is_file()
    vrt_run, _ = run(exported_bundle, [scenes], tmp_path / "vrt")
    with rasterio.open(tmp_path / "cog" / "mosaic.tif") as cog, rasterio.open(tmp_path / "vrt" / "mosaic.vrt") as vrt:
        assert np.array_equal(cog.read(1), vrt.read(1)) and cog.tags()["class_names"].startswith("forest")
        assert len(vrt.colormap(1)) == 6  # the classes only: a legend of names, not 256 numbers
    from lut.tiling.mosaic import MapGrid, vrt_xml

    big = MapGrid(tmp_path / "vrt" / "2020/T0.landuse.tif", vrt.crs, from_origin(0, 4000, 1, 1), 3000, 2000)
    (tmp_path / "big.vrt").write_text(vrt_xml([big], tmp_path / "big.vrt", CLASSES6))
    with rasterio.open(tmp_path / "big.vrt") as src:
        assert src.overviews(1) == [2, 4, 8, 16]  # virtual overviews over the maps' own, for GIS pyramids
    assert "LUT_LEGEND" in (tmp_path / "vrt" / "mosaic.qml").read_text()
    collection = json.loads((tmp_path / "vrt" / "collection.json").read_text())
    links = sorted(link["href"] for link in collection["links"] if link["rel"] == "item")
    assert collection["type"] == "Collection" and links == [
        "2020/T0.landuse.stac.json", "2020/T1.landuse.stac.json", "2025/T0.landuse.stac.json",
        "2025/T1.landuse.stac.json"]
    home = str(tmp_path.resolve()).encode()
    for path in (tmp_path / "vrt").rglob("*"):  # run records and summaries: no machine paths
        if path.is_file():
            assert home not in path.read_bytes(), path


def test_scenes_that_would_write_one_map_are_refused_before_work(exported_bundle, tmp_path):
    coll = tmp_path / "coll"
    coll.mkdir()
    write_scene(coll / "x.tif", synthetic_scene(64, 64, 3))
    write_scene(coll / "x.tiff", synthetic_scene(64, 64, 0))
    with pytest.raises(LutError, match=r"x.tif and .*x.tiff would both be mapped to .*x.landuse.tif"):
        run(exported_bundle, [coll], tmp_path / "out")
    assert not list((tmp_path / "out").glob("**/*.tif"))


def test_a_damaged_map_in_a_finished_run_is_classified_again(exported_bundle, scenes, tmp_path):
    out = tmp_path / "out"
    first, _ = run(exported_bundle, [scenes], out)
    assert first.ok == 4
    damaged = out / "2020/T0.landuse.tif"
    good = damaged.read_bytes()
    damaged.write_bytes(good[: len(good) // 3])
    again, _ = run(exported_bundle, [scenes], out)
    assert again.exit_code == 0 and again.ok == 1 and again.skipped == 3
    assert damaged.read_bytes() == good


def test_a_scene_replaced_since_its_map_was_made_is_classified_again(exported_bundle, scenes, tmp_path):
    out = tmp_path / "out"
    run(exported_bundle, [scenes], out)
    before = (out / "2020/T0.landuse.tif").read_bytes()
    write_scene(scenes / "2020" / "T0.tif", synthetic_scene(64, 96, 3))  # another scene under the same name
    again, lines = run(exported_bundle, [scenes], out)
    assert again.ok == 1 and again.skipped == 3
    assert any("T0.tif changed since it was mapped: classifying it again" in line for line in lines)
    assert (out / "2020/T0.landuse.tif").read_bytes() != before


def test_a_full_disk_in_a_many_scene_run_names_the_map(exported_bundle, scenes, tmp_path, monkeypatch):
    import errno

    from lut.tiling import writer

    def full(self, y0, *args, **kwargs):
        temporary = tmp_path / "out" / "2020" / ".T0.landuse.tif.tmp-1-a"
        raise OSError(errno.ENOSPC, "No space left on device", str(temporary))

    monkeypatch.setattr(writer.ClassMapWriter, "write_rows", full)
    result, _ = run(exported_bundle, [scenes / "2020" / "T0.tif"], tmp_path / "out")
    assert result.failed == 1
    real = tmp_path / "out" / "2020" / "T0.landuse.tif"
    assert result.rows[0]["error"].startswith(f"the disk is full writing {real} (")


def test_a_second_run_on_one_folder_is_refused_while_the_first_holds_it(exported_bundle, scenes, tmp_path):
    from lut.tiling.run_records import run_lock

    out = tmp_path / "out"
    with run_lock(out):
        with pytest.raises(LutError, match=r"is being written by another lut run \(pid \d+ on "):
            run(exported_bundle, [scenes], out)
    assert not list(out.rglob("*.tif"))
    result, _ = run(exported_bundle, [scenes], out)  # the lock went with its holder
    assert result.ok == 4


def test_mosaics_are_inputs_of_change_and_vectorize(exported_bundle, scenes, tmp_path):
    from lut.toolkit.gis.change import ChangeConfig, compute_change
    from lut.toolkit.gis.vectorize import VectorizeConfig, vectorize

    run(exported_bundle, [scenes], tmp_path / "vrt")
    run(exported_bundle, [scenes], tmp_path / "cog", mosaic="cog")
    change = compute_change(ChangeConfig(tmp_path / "vrt" / "mosaic.vrt", tmp_path / "cog" / "mosaic.tif",
                                         tmp_path / "c.tif")).transitions
    assert change.changed_pixels() == 0 and change.total > 0  # the same run, as a VRT and as a COG
    assert vectorize(VectorizeConfig(tmp_path / "vrt" / "mosaic.vrt", tmp_path / "m.gpkg")).polygons > 0
