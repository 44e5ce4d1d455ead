"""The bad-input and interrupt matrix: one case per row, run through the real CLI.

Each case asserts the exit code, that the output is one line starting `error:` naming the problem (or a
success), and the state of every input and output afterwards: inputs byte for byte unchanged, nothing
partial left behind, no temporary files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lut.toolkit.cli import lut
from lut.toolkit.data.synthetic import render

from .conftest import gpu_present, synthetic_scene, write_scene


@dataclass
class Case:
    args: list[str]
    code: int
    message: str = ""  # a piece of the one error line (or of the output, for exit 0)
    keep: list[Path] = field(default_factory=list)  # unchanged, byte for byte
    absent: list[Path] = field(default_factory=list)  # must not exist afterwards
    temps: set[str] = field(default_factory=set)  # temporary names expected to remain (planted ones)
    marker: Path | None = None  # a planted pickle would create it
    not_in_output: str = ""
    progress: bool = False  # pretrain --quiet prints one JSON line per finished epoch before the error


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


class Ctx:
    def __init__(self, tmp: Path, request):
        self.tmp, self.request = tmp, request

    def fixture(self, name):
        return self.request.getfixturevalue(name)

    def photos(self, name="data", classes=("a", "b"), n=5, size=32) -> Path:
        root = self.tmp / name
        for i, c in enumerate(classes):
            (root / c).mkdir(parents=True)
            for k in range(n):
                Image.fromarray(render(i, np.random.default_rng(k), size, size)).save(root / c / f"{k}.jpg")
        return root

    def scene(self, name="s.tif", **kw) -> Path:
        return write_scene(self.tmp / name, synthetic_scene(64, 64), **kw)

    def bundle(self, name="bundle") -> Path:
        target = self.tmp / name
        shutil.copytree(self.fixture("exported_bundle"), target)
        return target

    def pretrained_backbone(self, name="bb") -> Path:
        """A ViT checkpoint marked as `lut pretrain` output (kind backbone: no classes)."""
        backbone = self.tmp / name
        shutil.copytree(self.fixture("tiny_backbone"), backbone)
        (backbone / "lut.json").write_text(json.dumps({"format": "lut", "format_version": 2, "kind": "backbone",
                                                       "image_size": 32}))
        return backbone

    def evil_pickle(self, path: Path) -> Path:
        marker = self.tmp / "PWNED"

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        torch.save({"architecture": {}, "payload": Evil()}, path)
        return marker


TRAIN = ["--synthetic-images", "60", "--epochs", "1", "--quiet"]


# -- finetune: never destroy the user's data ------------------------------------------------------------
@case
def finetune_output_is_its_data_folder(c: Ctx):
    data = c.photos()
    return Case(["finetune", "--data", str(data), "-o", str(data), "--overwrite", "--backbone", "vit-tiny", *TRAIN],
                1, "is also an input", keep=[data])


@case
def finetune_overwrite_of_a_folder_lut_did_not_write(c: Ctx):
    precious = c.tmp / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    return Case(["finetune", "-o", str(precious), "--overwrite", "--backbone", "vit-tiny", *TRAIN], 1,
                "not written by lut", keep=[precious])


@case
def finetune_output_inside_its_data_folder(c: Ctx):
    data = c.photos()
    return Case(["finetune", "--data", str(data), "-o", str(data / "model"), "--backbone", "vit-tiny", *TRAIN], 1,
                "inside the input folder", keep=[data], absent=[data / "model"])


@case
def finetune_output_is_the_backbone_in_use(c: Ctx):
    backbone = c.tmp / "bb"
    shutil.copytree(c.fixture("tiny_backbone"), backbone)
    return Case(["finetune", "--backbone", str(backbone), "-o", str(backbone), "--overwrite", *TRAIN], 1,
                "also an input", keep=[backbone])


@case
def finetune_overwrite_of_a_pretrained_backbone(c: Ctx):
    backbone = c.pretrained_backbone("dino")
    return Case(["finetune", "-o", str(backbone), "--overwrite", "--backbone", "vit-tiny", *TRAIN], 1,
                "another kind of lut output", keep=[backbone])


@case
def finetune_output_is_a_file(c: Ctx):
    f = c.tmp / "notes.txt"
    f.write_text("mine")
    return Case(["finetune", "-o", str(f), "--overwrite", "--backbone", "vit-tiny", *TRAIN], 1, "not a lut output",
                keep=[f])


@case
def finetune_data_is_a_file(c: Ctx):
    f = c.tmp / "list.txt"
    f.write_text("a.jpg")
    return Case(["finetune", "--data", str(f), "--backbone", "vit-tiny", *TRAIN], 1, "is a file", keep=[f],
                not_in_output="does not exist")


@case
def finetune_truncated_jpeg_is_caught_before_training(c: Ctx):
    data = c.photos(n=6, size=64)
    broken = data / "b" / "5.jpg"
    broken.write_bytes(broken.read_bytes()[:300])
    return Case(["finetune", "--data", str(data), "--backbone", "vit-tiny", "--image-size", "32", *TRAIN], 1,
                "5.jpg", keep=[data], absent=[c.tmp / "models"])


@case
def finetune_empty_class_folder(c: Ctx):
    data = c.photos()
    (data / "c_empty").mkdir()
    return Case(["finetune", "--data", str(data), "--backbone", "vit-tiny", *TRAIN], 1, "c_empty", keep=[data])


@case
def finetune_class_with_too_few_images(c: Ctx):
    data = c.photos()
    c.photos("data/c_few", classes=("x",), n=2)
    return Case(["finetune", "--data", str(data), "--backbone", "vit-tiny", *TRAIN], 1, "c_few", keep=[data])


@case
def finetune_bands_on_photos(c: Ctx):
    data = c.photos()
    return Case(["finetune", "--data", str(data), "--bands", "3,2,1", "--backbone", "vit-tiny", *TRAIN], 1,
                "drop --bands", keep=[data])


@case
def finetune_image_size_zero(c: Ctx):
    return Case(["finetune", "--image-size", "0", "--backbone", "vit-tiny", *TRAIN], 2, "--image-size")


@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@case
def finetune_missing_path_like_backbone(c: Ctx):
    c.fixture("offline")
    return Case(["finetune", "--backbone", "mymodels/dino", *TRAIN], 1, "does not exist")


@case
def finetune_missing_dot_backbone(c: Ctx):
    return Case(["finetune", "--backbone", "./x", *TRAIN], 1, "does not exist")


@case
def finetune_missing_trailing_slash_backbone(c: Ctx):
    c.fixture("offline")
    return Case(["finetune", "--backbone", "nope_dir/", *TRAIN], 1, "does not exist")


@case
def finetune_default_hub_backbone_offline(c: Ctx):
    c.fixture("offline")
    return Case(["finetune", *TRAIN], 3, "Hugging Face hub", absent=[c.tmp / "models"])


@case
def finetune_backbone_with_pickled_weights(c: Ctx):
    backbone = c.tmp / "bb"
    shutil.copytree(c.fixture("tiny_backbone"), backbone)
    (backbone / "model.safetensors").unlink()
    marker = c.evil_pickle(backbone / "pytorch_model.bin")
    return Case(["finetune", "--backbone", str(backbone), *TRAIN], 1, "never unpickles", keep=[backbone],
                marker=marker)


@case
def finetune_backbone_with_remote_code_runs_none(c: Ctx):
    backbone = c.tmp / "bb"
    shutil.copytree(c.fixture("tiny_backbone"), backbone)
    marker = c.tmp / "PWNED"
    (backbone / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config = json.loads((backbone / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.Config", "AutoModel": "evil.Model",
                          "AutoModelForImageClassification": "evil.Model"}
    (backbone / "config.json").write_text(json.dumps(config))
    return Case(["finetune", "--backbone", str(backbone), "--strategy", "linear_probe", "-o", str(c.tmp / "out"),
                 *TRAIN], 0, "bundle:", keep=[backbone], marker=marker)


@case
def finetune_replaces_its_own_bundle_and_writes_no_progress_bars(c: Ctx):
    out = c.tmp / "out"
    args = ["finetune", "--backbone", str(c.fixture("tiny_backbone")), "--strategy", "linear_probe", "-o", str(out),
            "--synthetic-images", "60", "--epochs", "1"]
    assert CliRunner().invoke(lut, args).exit_code == 0
    (out / "mine.txt").write_text("lut's bundle, replaced whole")
    return Case([*args, "--overwrite"], 0, "bundle:", absent=[out / "mine.txt"], not_in_output="it/s")


@case
def finetune_unknown_option(c: Ctx):
    return Case(["finetune", "--frobnicate"], 2, "No such option")


# -- pretrain ----------------------------------------------------------------------------------------------
def pretrain_args(c: Ctx, data: Path, *extra: str) -> list[str]:
    return ["pretrain", "--data", str(data), "--backbone", str(c.fixture("tiny_backbone")), "--image-size", "32",
            "--local-size", "16", "--local-views", "2", "--epochs", "3", "--batch-size", "8", "--out-dim", "32",
            "--head-hidden", "16", "--bottleneck", "8", "--warmup-epochs", "1", "--all-images", "--quiet",
            "-o", str(c.tmp / "dino"), *extra]


@case
def pretrain_output_is_its_image_folder(c: Ctx):
    data = c.photos()
    return Case(["pretrain", "--data", str(data), "--backbone", "vit-tiny", "-o", str(data), "--overwrite"], 1,
                "also an input", keep=[data])


@case
def pretrain_resume_does_not_unpickle(c: Ctx):
    data = c.photos()
    (c.tmp / "dino.ckpt").mkdir()
    marker = c.evil_pickle(c.tmp / "dino.ckpt" / "checkpoint.pt")
    return Case(pretrain_args(c, data, "--resume"), 1, "cannot read checkpoint", keep=[data, c.tmp / "dino.ckpt"],
                marker=marker, absent=[c.tmp / "dino"])


@case
def pretrain_all_nodata_scene(c: Ctx):
    scene = write_scene(c.tmp / "s.tif", np.zeros((3, 64, 64), np.uint8), nodata=0)
    return Case(pretrain_args(c, scene), 1, "no valid pixels", keep=[scene], absent=[c.tmp / "dino"])


@case
def pretrain_one_band_scene(c: Ctx):
    scene = write_scene(c.tmp / "s.tif", np.random.default_rng(0).integers(1, 255, (1, 64, 64), dtype=np.uint8))
    return Case(pretrain_args(c, scene), 1, "--bands 1,1,1", keep=[scene])


def in_second_epoch(c: Ctx, action) -> None:
    """Run `action` as pretraining's second epoch starts (after one checkpoint was written)."""
    from lut.toolkit.selfsup import dino

    real = dino.train_epoch

    def patched(state, *a, **k):
        if state.epoch == 1:
            action()
        return real(state, *a, **k)

    c.fixture("monkeypatch").setattr(dino, "train_epoch", patched)


def _ctrl_c():
    raise KeyboardInterrupt


@case
def pretrain_interrupt_keeps_the_checkpoint(c: Ctx):
    data = c.photos(n=8)
    in_second_epoch(c, _ctrl_c)
    return Case(pretrain_args(c, data), 130, "--resume", keep=[data], absent=[c.tmp / "dino"], progress=True)


@case
def pretrain_sigterm_is_handled_like_ctrl_c(c: Ctx):
    data = c.photos(n=8)
    in_second_epoch(c, lambda: os.kill(os.getpid(), signal.SIGTERM))
    return Case(pretrain_args(c, data), 143, "terminated; the checkpoint of epoch 1", keep=[data],
                absent=[c.tmp / "dino"], progress=True)


# -- export ------------------------------------------------------------------------------------------------
@case
def export_a_pretrained_backbone(c: Ctx):
    backbone = c.pretrained_backbone()
    return Case(["export", str(backbone)], 1, "fine-tune it first", keep=[backbone], absent=[backbone / "onnx"],
                not_in_output="KeyError")


@case
def export_bundle_with_pickled_weights(c: Ctx):
    bundle = c.tmp / "bundle"
    shutil.copytree(c.fixture("trained_bundle"), bundle, ignore=shutil.ignore_patterns("onnx"))
    (bundle / "model.safetensors").unlink()
    marker = c.evil_pickle(bundle / "pytorch_model.bin")
    return Case(["export", str(bundle)], 1, "safetensors", keep=[bundle], marker=marker, absent=[bundle / "onnx"])


@case
def export_over_an_onnx_folder_lut_did_not_write(c: Ctx):
    bundle = c.tmp / "bundle"
    shutil.copytree(c.fixture("trained_bundle"), bundle, ignore=shutil.ignore_patterns("onnx"))
    (bundle / "onnx").mkdir()
    (bundle / "onnx" / "mine.onnx").write_text("someone's model")
    return Case(["export", str(bundle), "--overwrite"], 1, "not written by lut", keep=[bundle])


@case
def export_bundle_of_a_newer_format(c: Ctx):
    bundle = c.tmp / "bundle"
    shutil.copytree(c.fixture("trained_bundle"), bundle, ignore=shutil.ignore_patterns("onnx"))
    info = json.loads((bundle / "lut.json").read_text())
    info["format_version"] = 99
    (bundle / "lut.json").write_text(json.dumps(info))
    return Case(["export", str(bundle)], 1, "upgrade lut", keep=[bundle])


# -- classify ----------------------------------------------------------------------------------------------
def classify_args(c: Ctx, scene: Path, out: Path, *extra: str, model: Path | None = None) -> list[str]:
    return ["classify", str(scene), "-o", str(out), "--model", str(model or c.fixture("exported_bundle")), "--quiet",
            *extra]


@case
def classify_output_is_the_input_scene(c: Ctx):
    scene = c.scene()
    return Case(classify_args(c, scene, scene, "--overwrite"), 1, "also an input", keep=[scene])


@case
def classify_overwrite_of_a_raster_lut_did_not_write(c: Ctx):
    scene, other = c.scene(), c.scene("other.tif")
    return Case(classify_args(c, scene, other, "--overwrite"), 1, "not written by lut", keep=[scene, other])


@case
def classify_preview_in_a_missing_folder_changes_nothing(c: Ctx):
    scene = c.scene()
    out = c.tmp / "m.tif"
    assert CliRunner().invoke(lut, classify_args(c, scene, out)).exit_code == 0
    other = c.scene("other.tif")
    return Case(classify_args(c, other, out, "--overwrite", "--preview", str(c.tmp / "nope" / "p.png")), 1,
                "does not exist", keep=[scene, out, c.tmp / "m.summary.json"])


@case
def classify_unrelated_summary_without_overwrite(c: Ctx):
    scene = c.scene()
    summary = c.tmp / "m.summary.json"
    summary.write_text('{"mine": true}')
    return Case(classify_args(c, scene, c.tmp / "m.tif"), 1, "already exists", keep=[scene, summary],
                absent=[c.tmp / "m.tif"])


@case
def classify_unrelated_summary_with_overwrite(c: Ctx):
    scene = c.scene()
    summary = c.tmp / "m.summary.json"
    summary.write_text('{"mine": true}')
    return Case(classify_args(c, scene, c.tmp / "m.tif", "--overwrite"), 1, "not written by lut",
                keep=[scene, summary], absent=[c.tmp / "m.tif"])


@case
def classify_replaces_map_summary_and_preview_together(c: Ctx):
    scene = c.scene()
    out, png = c.tmp / "m.tif", c.tmp / "m.png"
    assert CliRunner().invoke(lut, classify_args(c, scene, out, "--preview", str(png))).exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in (out, png, c.tmp / "m.summary.json")}
    c.before = before
    return Case(classify_args(c, c.scene("b.tif"), out, "--preview", str(png), "--overwrite"), 0, "map:",
                keep=[scene])


@case
def classify_truncated_geotiff(c: Ctx):
    scene = write_scene(c.tmp / "s.tif", synthetic_scene(300, 300))
    scene.write_bytes(scene.read_bytes()[: scene.stat().st_size * 2 // 3])
    return Case(classify_args(c, scene, c.tmp / "m.tif"), 1, "damaged", keep=[scene], absent=[c.tmp / "m.tif"],
                not_in_output="previous exception")


@case
def classify_with_a_backbone_as_model(c: Ctx):
    backbone = c.pretrained_backbone()
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", model=backbone), 1, "fine-tune it first",
                keep=[backbone], not_in_output="lut export")


@case
def classify_nodata_outside_the_pixel_type(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", "--nodata", "300"), 1, "cannot occur",
                absent=[c.tmp / "m.tif"])


@case
def classify_output_folder_missing(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "no" / "m.tif"), 1, "does not exist")


@case
def classify_output_is_a_directory_lut_did_not_write(c: Ctx):
    (c.tmp / "maps").mkdir()
    (c.tmp / "maps" / "notes.txt").write_text("mine")
    return Case(classify_args(c, c.scene(), c.tmp / "maps", "--overwrite"), 1, "holds no lut run",
                keep=[c.tmp / "maps"])


@case
def classify_output_is_a_symlink_to_the_scene(c: Ctx):
    scene = c.scene()
    (c.tmp / "link.tif").symlink_to(scene)
    return Case(classify_args(c, scene, c.tmp / "link.tif", "--overwrite"), 1, "also an input", keep=[scene])


@case
def classify_band_beyond_the_scene(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", "--bands", "4,3,2"), 1, "band 4",
                absent=[c.tmp / "m.tif"])


@case
def classify_stride_larger_than_the_window(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", "--stride", "64"), 1, "--stride 64",
                absent=[c.tmp / "m.tif"])


@case
def classify_model_bundle_without_export(c: Ctx):
    bundle = c.tmp / "bundle"
    shutil.copytree(c.fixture("trained_bundle"), bundle, ignore=shutil.ignore_patterns("onnx"))
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", model=bundle), 1, "run lut export", keep=[bundle])


@case
def export_the_onnx_folder_itself(c: Ctx):
    bundle = c.bundle()
    return Case(["export", str(bundle / "onnx")], 1, "pass the model bundle", keep=[bundle])


WITHOUT_GPU = {"classify_cuda_without_a_gpu"}


@case
def classify_cuda_without_a_gpu(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", "--device", "cuda", "--precision", "int8"), 1,
                "CPU only", absent=[c.tmp / "m.tif"])


@case
def classify_removes_only_its_own_stale_temps(c: Ctx):
    dead = c.tmp / ".m.tif.tmp-999999-abc.tif"
    dead.write_text("left by kill -9")
    other = c.tmp / ".other.tif.tmp-999999-abc.tif"
    other.write_text("another output's")
    mine = c.tmp / ".m.tif.not-a-temp"
    mine.write_text("the user's")
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif"), 0, "map:", keep=[other, mine], absent=[dead],
                temps={other.name})


@case
def classify_stride_that_multiplies_work_warns(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", "--stride", "4"), 0, "about 64x the work")


@case
def classify_sigterm_leaves_nothing(c: Ctx):
    from lut.tiling import deployed

    def terminated(self, *args):
        os.kill(os.getpid(), signal.SIGTERM)
        return np.zeros((1, 6), np.float32)

    c.fixture("monkeypatch").setattr(deployed.DeployedModel, "logits", terminated)
    c.fixture("monkeypatch").setattr(deployed.DeployedModel, "logits_uint8", terminated)
    scene = c.scene()
    return Case(classify_args(c, scene, c.tmp / "m.tif", "--batch-size", "1"), 143, "terminated", keep=[scene],
                absent=[c.tmp / "m.tif", c.tmp / "m.summary.json"])


@case
def classify_missing_output_option(c: Ctx):
    return Case(["classify", str(c.scene())], 2, "Missing option")


@case
def classify_bad_precision_choice(c: Ctx):
    return Case(["classify", str(c.scene()), "-o", "m.tif", "--precision", "int4"], 2, "--precision")


# -- imagery as users get it (STAC items, band files, remote files, masks, clipping) ------------------------
def _stac_item(c: Ctx, assets: dict) -> Path:
    """A STAC Item whose assets are local files; `assets`: key -> (common name or None, path)."""
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "t", "geometry": None, "properties":
            {"datetime": "2024-01-01T00:00:00Z"}, "links": [],
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json"],
            "assets": {key: {"href": str(path), **({"eo:bands": [{"name": key, "common_name": name}]} if name else {})}
                       for key, (name, path) in assets.items()}}
    path = c.tmp / "item.json"
    path.write_text(json.dumps(item))
    return path


@case
def classify_stac_item_without_the_bands(c: Ctx):
    scene = c.scene()
    item = _stac_item(c, {"B8": ("nir", scene), "B11": ("swir16", scene)})
    return Case(classify_args(c, item, c.tmp / "m.tif"), 1, "no asset for channel(s) red, green, blue",
                keep=[item, scene], absent=[c.tmp / "m.tif"])


@case
def classify_unreachable_href(c: Ctx):
    return Case(classify_args(c, "http://127.0.0.1:9/scene.tif", c.tmp / "m.tif"), 1, "cannot be fetched",
                absent=[c.tmp / "m.tif"])


@case
def classify_unreachable_asset_of_a_stac_item(c: Ctx):
    scene = c.scene()
    item = _stac_item(c, {"red": ("red", "http://127.0.0.1:9/B4.tif"), "green": ("green", scene),
                          "blue": ("blue", scene)})
    return Case(classify_args(c, item, c.tmp / "m.tif"), 1, "cannot be fetched", keep=[item, scene],
                absent=[c.tmp / "m.tif"])


@case
def classify_missing_band_file(c: Ctx):
    scene = c.scene()
    bands = f"red={scene},green={scene},blue={c.tmp / 'gone.tif'}"
    return Case(classify_args(c, bands, c.tmp / "m.tif"), 1, "gone.tif (channel blue) does not exist",
                keep=[scene])


@case
def classify_mask_that_does_not_overlap(c: Ctx):
    from rasterio.transform import from_origin

    scene = c.scene()
    mask = write_scene(c.tmp / "SCL.tif", np.full((1, 8, 8), 9, np.uint8),
                       transform=from_origin(900000.0, 4000000.0, 20.0, 20.0))
    return Case(classify_args(c, scene, c.tmp / "m.tif", "--mask", str(mask)), 1, "does not overlap scene",
                keep=[scene, mask], absent=[c.tmp / "m.tif"])


@case
def classify_unknown_mask_rule(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", "--mask-rule", "clouds"), 2, "--mask-rule")


@case
def classify_href_map_without_equals(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "m.tif", "--href-map", "s3://bucket"), 2, "--href-map")


@case
def classify_scene_whose_scaling_clips(c: Ctx):
    dn = np.random.default_rng(0).integers(6000, 9000, (3, 64, 64)).astype(np.uint16)
    scene = write_scene(c.tmp / "dn.tif", dn)
    return Case(classify_args(c, scene, c.tmp / "m.tif"), 1, "clips 100% of the valid pixels (more than "
                "--max-clipped 20%)", keep=[scene], absent=[c.tmp / "m.tif", c.tmp / "m.summary.json"])


@case
def composite_of_one_date(c: Ctx):
    return Case(["composite", str(c.scene()), "-o", str(c.tmp / "y.tif")], 1, "at least two dates",
                absent=[c.tmp / "y.tif"])


# -- assess -----------------------------------------------------------------------------------------------
def _sampled_map(c: Ctx, labels: str | None = "forest", crs="EPSG:32633") -> tuple[Path, Path]:
    """A lut map and a labelled sample CSV of it (every point labelled `labels`; None drops the column)."""
    import csv

    from lut.toolkit.assess.design import DesignConfig, design

    from .conftest import write_lut_map

    classes = np.repeat(np.arange(6, dtype=np.uint8), 16)[None].repeat(40, 0)
    path = write_lut_map(c.tmp / "map.tif", classes, crs=crs)
    design(DesignConfig(path, c.tmp / "s.gpkg", n=30, min_per_stratum=5))
    rows = list(csv.DictReader(open(c.tmp / "s.csv")))
    fields = [f for f in rows[0] if labels is not None or f != "reference"]
    with open(c.tmp / "s.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "reference": labels})
    return path, c.tmp / "s.csv"


def _assess(c: Ctx, map_path: Path, sample: Path) -> list[str]:
    return ["assess", "estimate", str(map_path), str(sample), "-o", str(c.tmp / "out")]


@case
def assess_sample_of_a_map_in_another_crs(c: Ctx):
    from .conftest import write_lut_map

    _, sample = _sampled_map(c)
    other = write_lut_map(c.tmp / "other.tif", np.zeros((40, 96), np.uint8), crs="EPSG:32634")
    return Case(_assess(c, other, sample), 1, "sample of another map", keep=[sample], absent=[c.tmp / "out"])


@case
def assess_sample_of_a_map_elsewhere(c: Ctx):
    from rasterio.transform import from_origin

    from .conftest import write_lut_map

    _, sample = _sampled_map(c)
    other = write_lut_map(c.tmp / "other.tif", np.zeros((40, 96), np.uint8),
                          transform=from_origin(900000.0, 4000000.0, 10.0, 10.0))
    return Case(_assess(c, other, sample), 1, "no point of", keep=[sample], absent=[c.tmp / "out"])


@case
def assess_sample_without_reference_column(c: Ctx):
    path, sample = _sampled_map(c, labels=None)
    return Case(_assess(c, path, sample), 1, "no column 'reference' of reference labels", keep=[sample],
                absent=[c.tmp / "out"])


@case
def assess_label_not_in_the_legend(c: Ctx):
    path, sample = _sampled_map(c, labels="savanna")
    return Case(_assess(c, path, sample), 1, "labelled 'savanna', which is not in", keep=[sample],
                absent=[c.tmp / "out"])


@case
def assess_sample_that_does_not_parse(c: Ctx):
    path, _ = _sampled_map(c)
    broken = c.tmp / "s.gpkg"
    broken.write_bytes(b"not a geopackage at all")
    return Case(_assess(c, path, broken), 1, "does not parse", keep=[broken], absent=[c.tmp / "out"])


@case
def assess_design_of_a_raster_lut_did_not_write(c: Ctx):
    scene = c.scene()
    return Case(["assess", "design", str(scene), "-o", str(c.tmp / "s.gpkg")], 1, "not a land-use map",
                keep=[scene], absent=[c.tmp / "s.gpkg", c.tmp / "s.csv"])


@case
def assess_design_bad_allocation(c: Ctx):
    return Case(["assess", "design", "m.tif", "-o", "s.gpkg", "--allocation", "neyman"], 2, "--allocation")


@case
def classify_many_to_an_image_file_name(c: Ctx):
    return Case(classify_args(c, c.scene(), c.tmp / "typo.png"), 2, "-o", absent=[c.tmp / "typo.png"])


@case
def classify_on_a_full_disk(c: Ctx):
    import errno

    from lut.tiling import writer

    def full(self, y0, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(c.tmp / ".m.tif.tmp-1-abc.tif"))

    c.fixture("monkeypatch").setattr(writer.ClassMapWriter, "write_rows", full)
    scene = c.scene()
    return Case(classify_args(c, scene, c.tmp / "m.tif"), 1, f"the disk is full writing {c.tmp / 'm.tif'} (",
                keep=[scene], absent=[c.tmp / "m.tif", c.tmp / "m.summary.json"])


# -- compare -----------------------------------------------------------------------------------------------
COMPARE = ["compare", "--backbones", "vit-tiny", "--strategies", "linear_probe", "--synthetic-images", "60",
           "--epochs", "1", "--quiet"]


@case
def compare_failed_run_does_not_lock_its_folder(c: Ctx):
    out = c.tmp / "res"
    first = CliRunner().invoke(lut, [*COMPARE, "--image-size", "20", "-o", str(out)])
    assert first.exit_code == 1 and "multiple of the patch size" in first.output
    return Case([*COMPARE, "--image-size", "32", "-o", str(out)], 0, "results:")


@case
def compare_into_a_folder_lut_did_not_write(c: Ctx):
    out = c.tmp / "res"
    out.mkdir()
    (out / "paper.tex").write_text("draft")
    return Case([*COMPARE, "--image-size", "32", "-o", str(out)], 1, "not a lut compare", keep=[out])


# -- change and vectorize ---------------------------------------------------------------------------------
def _maps(c: Ctx) -> tuple[Path, Path]:
    from .conftest import write_lut_map

    before = np.zeros((40, 40), np.uint8)
    after = before.copy()
    after[:20] = 2
    return write_lut_map(c.tmp / "b.tif", before), write_lut_map(c.tmp / "a.tif", after)


@case
def change_of_a_missing_map(c: Ctx):
    before, _ = _maps(c)
    return Case(["change", str(before), str(c.tmp / "nope.tif"), "-o", str(c.tmp / "c.tif")], 1,
                "nope.tif does not exist", keep=[before], absent=[c.tmp / "c.tif"])


@case
def change_of_a_scene_without_model(c: Ctx):
    before, _ = _maps(c)
    scene = c.scene()
    return Case(["change", str(before), str(scene), "-o", str(c.tmp / "c.tif")], 1, "add --model BUNDLE",
                keep=[before, scene], absent=[c.tmp / "c.tif", c.tmp / "c.json"])


@case
def change_output_is_its_input(c: Ctx):
    before, after = _maps(c)
    return Case(["change", str(before), str(after), "-o", str(after), "--overwrite"], 1, "is also an input",
                keep=[before, after, c.tmp / "a.tif.aux.xml"])


@case
def change_overwrite_of_a_csv_lut_did_not_write(c: Ctx):
    before, after = _maps(c)
    mine = c.tmp / "c.matrix.csv"
    mine.write_text("my,own,table\n")
    return Case(["change", str(before), str(after), "-o", str(c.tmp / "c.tif"), "--overwrite"], 1,
                "not written by lut", keep=[mine, before, after], absent=[c.tmp / "c.tif", c.tmp / "c.json"])


@case
def change_min_confidence_without_confidence_band(c: Ctx):
    before, after = _maps(c)
    return Case(["change", str(before), str(after), "-o", str(c.tmp / "c.tif"), "--min-confidence", "50"], 1,
                "classify it with --confidence", keep=[before, after], absent=[c.tmp / "c.tif"])


@case
def vectorize_a_scene(c: Ctx):
    scene = c.scene()
    return Case(["vectorize", str(scene), "-o", str(c.tmp / "v.gpkg")], 1, "not a land-use map written by lut",
                keep=[scene], absent=[c.tmp / "v.gpkg"])


@case
def vectorize_over_a_geopackage_lut_did_not_write(c: Ctx):
    before, _ = _maps(c)
    mine = c.tmp / "roads.gpkg"
    mine.write_bytes(b"SQLite format 3\x00 roads")
    return Case(["vectorize", str(before), "-o", str(mine), "--overwrite"], 1, "not written by lut",
                keep=[mine, before])


@case
def classify_vector_min_area_in_a_degree_crs(c: Ctx):
    scene = c.scene(crs="EPSG:4326", transform=rasterio_degrees())
    return Case(["classify", str(scene), "-o", str(c.tmp / "m.tif"), "--model", str(c.bundle()), "--vector",
                 str(c.tmp / "m.gpkg"), "--vector-min-area", "1"], 1, "lut vectorize --min-pixels",
                keep=[scene], absent=[c.tmp / "m.tif", c.tmp / "m.gpkg", c.tmp / "m.qml"])


def rasterio_degrees():
    from rasterio.transform import from_origin

    return from_origin(10.0, 0.01, 0.0001, 0.0001)


def snapshot(paths: list[Path]) -> dict:
    state = {}
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                state[str(f)] = f.read_bytes() if f.is_file() else "dir"
        elif p.exists():
            state[str(p)] = p.read_bytes()
        else:
            state[str(p)] = None
    return state


def temporaries(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    if name in WITHOUT_GPU and gpu_present():
        pytest.skip("asserts the refusal of a machine without a usable GPU")
    c = Ctx(tmp_path, request)
    spec = CASES[name](c)
    before = snapshot(spec.keep)
    result = CliRunner().invoke(lut, spec.args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    if spec.progress:
        lines = [line for line in lines if not line.startswith('{"epoch"')]
    assert result.exit_code == spec.code, result.output
    if spec.code != 0:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert spec.message in lines[0], result.output
        assert "Traceback" not in result.output and "Error:" not in result.output
    else:
        assert spec.message in result.output, result.output
    if spec.not_in_output:
        assert spec.not_in_output not in result.output, result.output
    assert snapshot(spec.keep) == before
    for path in spec.absent:
        assert not path.exists(), path
    if spec.marker is not None:
        assert not spec.marker.exists(), "a pickle or remote code was executed"
    assert temporaries(tmp_path) == spec.temps
    if name == "classify_replaces_map_summary_and_preview_together":
        for path, mtime in c.before.items():
            assert path.stat().st_mtime_ns != mtime  # all three replaced
        summary = json.loads((tmp_path / "m.summary.json").read_text())
        assert summary["scene"].endswith("b.tif") and summary["format"] == "lut-summary/1"
