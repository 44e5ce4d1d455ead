"""Does `pip install lut` (the mapping runtime) resolve to wheels on every platform the README claims?

    python bench/check_platforms.py [--extras gpu]

For each platform, the runtime requirements of pyproject.toml (markers evaluated for that platform, as
tests/test_install.py does) are resolved against the package index with `pip install --dry-run
--only-binary=:all: --platform ... --python-version 3.11`: no build, no install. A requirement without a
wheel there fails that platform. Needs the package index (network); takes about half a minute a platform.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_install import PLATFORMS, requirements  # noqa: E402

TAGS = {"linux-x86_64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"],
        "linux-aarch64": ["manylinux_2_28_aarch64", "manylinux2014_aarch64"],
        "macos-arm64": ["macosx_14_0_arm64", "macosx_11_0_arm64"], "windows-x64": ["win_amd64"]}


def pinned(platform: str, extras: tuple[str, ...]) -> list[str]:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"]) + [t for e in extras for t in project["optional-dependencies"][e]]
    names = requirements(platform, extras)
    return [str(Requirement(t)).split(";")[0] for t in texts if Requirement(t).name.lower() in names]


def resolve(platform: str, extras: tuple[str, ...]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
               "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--report", str(report),
               *[a for tag in TAGS[platform] for a in ("--platform", tag)], *pinned(platform, extras)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            return False, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pip failed"
        installs = json.loads(report.read_text())["install"]
        names = sorted(i["metadata"]["name"].lower() for i in installs)
        both = {"onnxruntime", "onnxruntime-gpu"} <= set(names)
        runtime = next(n for n in names if n.startswith("onnxruntime"))
        return not both, f"{len(names)} wheels, {runtime}" + ("; onnxruntime AND onnxruntime-gpu" if both else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extras", nargs="*", default=[])
    args = parser.parse_args()
    failed = 0
    for platform in PLATFORMS:
        ok, detail = resolve(platform, tuple(args.extras))
        failed += not ok
        print(f"{platform:<14} {'ok' if ok else 'FAILED'}  {detail}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
