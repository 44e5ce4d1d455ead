"""The install layout: `pip install lut` is the mapping runtime on every claimed platform, the extras hold the
rest, and ONNX Runtime's two packages (one module) never end up installed together. Evaluated from
pyproject.toml's requirement markers for each platform; `bench/check_platforms.py` resolves the same sets
against the package index (wheels only) and `bench/check_runtime_install.py` installs and runs the runtime."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_machine": "x86_64", "platform_system": "Linux"},
    "linux-aarch64": {"sys_platform": "linux", "platform_machine": "aarch64", "platform_system": "Linux"},
    "macos-arm64": {"sys_platform": "darwin", "platform_machine": "arm64", "platform_system": "Darwin"},
    "windows-x64": {"sys_platform": "win32", "platform_machine": "AMD64", "platform_system": "Windows"},
}
HEAVY = {"torch", "torchvision", "transformers", "optimum", "optimum-onnx", "lightly", "scikit-learn", "ray"}


def requirements(platform: str, extras: tuple[str, ...] = ()) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {"python_version": "3.11", "python_full_version": "3.11.2", "os_name": "nt" if "windows" in platform
           else "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
           **PLATFORMS[platform], "extra": ""}
    found = set()
    for group in ("", *extras):
        texts = project["dependencies"] if not group else project["optional-dependencies"][group]
        for text in texts:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({**env, "extra": group}):
                found.add(req.name.lower())
    return found


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("extras", [(), ("gpu",), ("train", "gpu", "ray", "dev")])
def test_exactly_one_onnxruntime_package_everywhere(platform, extras):
    found = requirements(platform, extras)
    assert len(found & {"onnxruntime", "onnxruntime-gpu"}) == 1, found


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_runtime_install_has_no_training_stack(platform):
    found = requirements(platform)
    assert not found & HEAVY, found & HEAVY
    assert {"rasterio", "numpy", "click", "pyogrio", "shapely", "pystac"} <= found


def test_the_extras_bring_the_training_stack_and_ray():
    assert {"torch", "transformers", "optimum-onnx", "lightly", "scikit-learn"} <= requirements(
        "linux-x86_64", ("train",))
    assert "ray" in requirements("linux-aarch64", ("ray",))
