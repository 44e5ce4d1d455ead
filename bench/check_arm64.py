"""lut's mapping runtime on emulated ARM64: an aarch64 Python and aarch64 wheels under qemu-user, mapping a
real scene, the map compared byte for byte with this machine's.

    sudo apt-get install qemu-user-static          # and, once: sudo dpkg --add-architecture arm64 && apt-get update
    make demo && python bench/check_arm64.py [--root /tmp/lut-arm64]

1. Debian's arm64 python3.11 and the libraries it links, from their .deb files (`apt-get download`,
   `dpkg -x`): no chroot, no root.
2. aarch64 wheels of the runtime requirements (`pip install --platform manylinux_2_28_aarch64
   --only-binary=:all: --target`), and lut itself (pure Python) beside them.
3. `lut classify` of RGB.byte.tif (the real Landsat scene in ../shared/data) with the demo model, INT8 and
   fp32, under `qemu-aarch64-static`; each map must be byte-identical to the x86-64 map.

onnxruntime is pinned to 1.19.2 here: newer releases (1.32) segfault at import under Debian 12's qemu 7.2,
a limit of the emulator (their aarch64 wheels run on real ARM hardware). Skips cleanly without qemu.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / ".." / "shared" / "data" / "scenes" / "RGB.byte.tif"
MODEL = ROOT / "models" / "demo-progressive"
QEMU = "qemu-aarch64-static"
DEBS = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libexpat1", "zlib1g",
        "libffi8", "libssl3", "libsqlite3-0", "libbz2-1.0", "liblzma5", "libgcc-s1", "libstdc++6", "libuuid1",
        "libncursesw6", "libtinfo6", "libreadline8", "libdb5.3", "libgdbm6", "libnsl2", "libtirpc3", "libcrypt1",
        "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0", "libcom-err2", "libkeyutils1"]
ORT_UNDER_QEMU = "onnxruntime==1.19.2"


def runtime_requirements() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.test_install import requirements

    import tomllib

    from packaging.requirements import Requirement

    names = requirements("linux-aarch64")
    texts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = [str(Requirement(t)).split(";")[0] for t in texts if Requirement(t).name.lower() in names]
    return [ORT_UNDER_QEMU if r.startswith("onnxruntime") else r for r in reqs]


def assemble(root: Path) -> tuple[Path, Path, Path]:
    debs, system, site, lut = root / "debs", root / "system", root / "site", root / "lut"
    debs.mkdir(parents=True, exist_ok=True)
    for name in DEBS:
        subprocess.run(["apt-get", "download", f"{name}:arm64"], cwd=debs, check=True, capture_output=True)
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(system)], check=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--target", str(site), "--platform", "manylinux_2_28_aarch64", "--platform",
                    "manylinux2014_aarch64", "--only-binary=:all:", "--python-version", "3.11", "--implementation",
                    "cp", *runtime_requirements()], check=True)
    subprocess.run([*pip, "--no-deps", "--target", str(lut), str(ROOT)], check=True)
    return system, site, lut


def classify_under_qemu(system: Path, paths: list[Path], out: Path, precision: str) -> float:
    code = (f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}; "
            f"sys.argv = ['lut', 'classify', {str(SCENE)!r}, '-o', {str(out)!r}, '--model', {str(MODEL)!r}, "
            f"'--no-resample', '--precision', {precision!r}, '--quiet', '--overwrite']; "
            "from lut.toolkit.cli import main; main()")
    start = time.perf_counter()
    subprocess.run([QEMU, "-L", str(system), str(system / "usr" / "bin" / "python3.11"), "-c", code], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/lut-arm64"))
    args = parser.parse_args()
    if shutil.which(QEMU) is None or shutil.which("apt-get") is None:
        print(f"skipped: {QEMU} (apt-get install qemu-user-static) or apt-get is not available")
        return
    if not SCENE.is_file() or not (MODEL / "onnx").is_dir():
        sys.exit("needs ../shared/data/scenes and the demo model (run `make demo` first)")
    shutil.rmtree(args.root, ignore_errors=True)
    system, site, lut = assemble(args.root)
    print(f"aarch64 runtime: {sum(f.stat().st_size for f in site.rglob('*') if f.is_file()) / 1e6:.0f} MB of wheels "
          f"({ORT_UNDER_QEMU})")
    failed = False
    for precision in ("int8", "fp32"):
        here = args.root / f"x86_64-{precision}.tif"
        subprocess.run([str(ROOT / ".venv" / "bin" / "lut"), "classify", str(SCENE), "-o", str(here), "--model",
                        str(MODEL), "--no-resample", "--precision", precision, "--quiet", "--overwrite"],
                       check=True, capture_output=True)
        arm = args.root / f"aarch64-{precision}.tif"
        seconds = classify_under_qemu(system, [lut, site], arm, precision)
        same = arm.read_bytes() == here.read_bytes()
        failed |= not same
        print(f"{precision}: aarch64 map under qemu in {seconds:.1f} s, byte-identical to x86-64: {same}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
