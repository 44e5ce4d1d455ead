import errno
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lut.export import exporter as exporter_module
from lut.export.exporter import ExportConfig, export_model
from lut.export.runtime import SessionOptions, open_session, session_device
from lut.export.variants import cpu_preset
from lut.toolkit.cli import lut
from lut.toolkit.core.errors import LutError


@pytest.fixture(scope="module")
def exported(trained_bundle, tmp_path_factory):
    """A copy of the trained bundle exported with INT8 and FP16 variants."""
    bundle = tmp_path_factory.mktemp("exp") / "bundle"
    shutil.copytree(trained_bundle, bundle)
    result = export_model(ExportConfig(model_dir=bundle, quantize=True, fp16=True, samples=96, min_seconds=0.2))
    return bundle, result


def copy_bundle(trained_bundle, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(trained_bundle, target, ignore=shutil.ignore_patterns("onnx"))
    return target


def test_export_writes_a_self_contained_deployable_folder(exported):
    bundle, result = exported
    onnx_dir = bundle / "onnx"
    assert result.onnx_dir == onnx_dir
    names = {p.name for p in onnx_dir.iterdir()}
    assert {"model.onnx", "model_int8.onnx", "model_fp16.onnx", "config.json", "preprocessor_config.json",
            "lut.json", "export_report.json"} <= names
    assert not [n for n in names if "tmp" in n]
    info = json.loads((onnx_dir / "lut.json").read_text())
    assert info["classes"][3] == "water" and info["image_size"] == 32 and info["band_rule"]["quantity"] == "dn"
    assert info["format"] == "lut" and info["kind"] == "onnx"
    assert info["onnx"] == {"fp32": "model.onnx", "int8": "model_int8.onnx", "fp16": "model_fp16.onnx"}
    assert json.loads((onnx_dir / "config.json").read_text())["id2label"]["5"] == "wetland"


def test_parity_is_measured_for_every_variant(exported):
    bundle, result = exported
    report = json.loads((bundle / "onnx" / "export_report.json").read_text())
    rows = report["variants"]
    assert set(rows) == {"pytorch", "fp32", "int8", "fp16"}
    assert rows["fp32"]["max_abs_logit_diff"] <= 1e-4 and rows["fp32"]["top1_agreement"] == 1.0
    assert rows["int8"]["top1_agreement"] >= 0.99 and report["int8_meets_agreement_goal"]
    assert rows["fp16"]["max_abs_logit_diff"] < 0.05
    assert rows["int8"]["size_mb"] < rows["fp32"]["size_mb"]
    assert all(r["images_per_s"] > 0 for r in rows.values())
    assert rows["pytorch"]["accuracy"] > 0.5  # a trained model on its own validation images
    assert report["sample"]["images"] == 72 and report["details"]["int8"]["mode"] == "dynamic"
    # the sample covers every class, seeded: 72 validation images of 6 classes, 12 each
    six = ["forest", "cropland", "urban", "water", "barren", "wetland"]
    assert report["sample"]["stratified"] and report["sample"]["per_class"] == {c: 12 for c in six}
    assert report["gates"]["int8"]["goal"] == 0.99 and report["gates"]["int8"]["passed"]
    assert report["details"]["int8"]["preset"] == cpu_preset()
    assert "max|dlogit|" in result.table()


def test_every_variant_gets_a_gated_uint8_input_file(exported):
    bundle, result = exported
    report = json.loads((bundle / "onnx" / "export_report.json").read_text())["uint8_input"]
    files = {"fp32": "model_uint8_input.onnx", "int8": "model_int8_uint8_input.onnx",
             "fp16": "model_fp16_uint8_input.onnx"}
    assert json.loads((bundle / "onnx" / "lut.json").read_text())["uint8_input"] == files
    for name, row in report.items():
        assert row["file"] == files[name] and (bundle / "onnx" / files[name]).is_file()
        assert row["max_abs_logit_diff"] <= 1e-4 and row["top1_agreement"] == 1.0
    session = open_session(bundle / "onnx" / files["fp32"], "cpu")
    assert [i.name for i in session.get_inputs()] == ["pixels_uint8", "pixels_float", "lut_k", "lut_c"]
    assert session.get_inputs()[0].type == "tensor(uint8)"


def test_a_uint8_input_file_that_disagrees_fails_the_export(trained_bundle, tmp_path, monkeypatch):
    bundle = copy_bundle(trained_bundle, tmp_path)
    real = exporter_module.measure_uint8_inputs

    def off(*args, **kwargs):
        rows = real(*args, **kwargs)
        rows["fp32"]["max_abs_logit_diff"] = 0.5
        return rows

    monkeypatch.setattr(exporter_module, "measure_uint8_inputs", off)
    result = CliRunner().invoke(lut, ["export", str(bundle), "--samples", "8"])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "error: the uint8-input fp32 model disagrees with the float one: max |logit diff| 5.00e-01 > 0.0001; "
        "nothing was written"]
    assert not (bundle / "onnx").exists() and not [p for p in bundle.iterdir() if ".tmp-" in p.name]


def test_optimum_can_load_the_export(exported):
    from optimum.onnxruntime import ORTModelForImageClassification
    import torch

    bundle, _ = exported
    for name in ("model.onnx", "model_int8.onnx"):
        model = ORTModelForImageClassification.from_pretrained(bundle / "onnx", file_name=name)
        logits = model(pixel_values=torch.zeros(3, 3, 32, 32)).logits
        assert tuple(logits.shape) == (3, 6)


def test_session_is_cpu_here_with_a_dynamic_batch(exported):
    bundle, _ = exported
    session = open_session(bundle / "onnx" / "model.onnx", "auto", SessionOptions(threads=1))
    assert session_device(session) == "cpu"
    for n in (1, 5):
        assert session.run(None, {"pixel_values": np.zeros((n, 3, 32, 32), np.float32)})[0].shape == (n, 6)
    with pytest.raises(LutError):
        open_session(bundle / "onnx" / "absent.onnx")


def test_cli_export_chains_from_latest_and_refuses_to_overwrite(trained_bundle, in_tmp):
    bundle = copy_bundle(trained_bundle, in_tmp)
    (in_tmp / "models").mkdir()
    (in_tmp / "models" / "LATEST").write_text(str(bundle) + "\n")
    runner = CliRunner()
    first = runner.invoke(lut, ["export", "--samples", "16"])
    assert first.exit_code == 0, first.output
    assert "fp32" in first.output and (bundle / "onnx" / "model.onnx").is_file()
    stamp = (bundle / "onnx" / "model.onnx").stat().st_mtime_ns
    second = runner.invoke(lut, ["export", str(bundle)])
    assert second.exit_code == 1 and "--overwrite" in second.output
    assert (bundle / "onnx" / "model.onnx").stat().st_mtime_ns == stamp
    third = runner.invoke(lut, ["export", str(bundle), "--overwrite", "--samples", "8"])
    assert third.exit_code == 0, third.output


def test_static_int8_from_calibration_folder(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    from lut.toolkit.data.synthetic import render

    for i in range(24):
        (calib / f"c{i % 6}").mkdir(exist_ok=True)
        Image.fromarray(render(i % 6, np.random.default_rng(i), 32, 32)).save(calib / f"c{i % 6}" / f"{i}.png")
    result = export_model(ExportConfig(model_dir=bundle, calibration_data=calib, calibration_images=12, samples=48,
                                       min_seconds=0.1))
    assert result.report["details"]["int8"]["mode"] == "static"
    assert result.report["details"]["int8"]["calibration_images"] == 12
    # a labelled calibration folder is sampled over every class, never its first class alone
    assert result.report["details"]["int8"]["calibration_per_class"] == {f"c{k}": 2 for k in range(6)}
    assert result.report["variants"]["int8"]["top1_agreement"] >= 0.95
    assert result.report["details"]["int8"]["float_nodes"]  # attention MatMuls stay in float


@pytest.mark.parametrize("case", ["missing", "not_bundle", "corrupt", "empty_calibration", "disk_full"])
def test_bad_input_leaves_no_onnx_dir(trained_bundle, tmp_path, monkeypatch, case):
    bundle = copy_bundle(trained_bundle, tmp_path)
    args = ["export", str(bundle), "--samples", "8"]
    if case == "missing":
        args[1] = str(tmp_path / "absent")
    elif case == "not_bundle":
        (bundle / "lut.json").unlink()
    elif case == "corrupt":
        (bundle / "model.safetensors").write_bytes(b"\x00" * 64)
    elif case == "empty_calibration":
        (tmp_path / "calib").mkdir()
        args += ["--calibration-data", str(tmp_path / "calib")]
    elif case == "disk_full":
        def full(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(exporter_module, "quantize_int8", full)
        args += ["--quantize"]
    result = CliRunner().invoke(lut, args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    if bundle.exists():
        assert not [p.name for p in bundle.iterdir() if p.name == "onnx" or ".tmp-" in p.name]
