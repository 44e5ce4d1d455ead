"""Scale and offset from what providers publish beside the pixels: Landsat MTL files, Sentinel-2 processing
baselines, and the documented scale of products whose catalogues omit it.

Each finder returns a `Radiometry` (physical = raw * scale + offset) with the source that decided it, or
None when its metadata says nothing; `sources.py` asks them in the README's decision order.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

#: Sentinel-2 L2A from processing baseline 04.00 (25 January 2022): reflectance = (DN - 1000) / 10000
S2_OFFSET_BASELINE = 4.0
S2_BOA_OFFSET_DN = -1000.0
S2_SCALE = 1e-4
#: USGS Landsat Collection 2 Level-2 surface reflectance (Landsat C2 L2 product guide, all SR bands)
LANDSAT_C2_L2_SCALE, LANDSAT_C2_L2_OFFSET = 2.75e-05, -0.2


@dataclass(frozen=True)
class Radiometry:
    scale: float
    offset: float
    source: str


def s2_baseline(properties: dict) -> float | None:
    """The processing baseline of a Sentinel-2 item: `s2:processing_baseline`, else the `_Nxxyy_` part of
    its product name (Earth Search's `sentinel:product_id`, the Planetary Computer's `s2:product_uri`)."""
    value = properties.get("s2:processing_baseline")
    if value is not None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    for key in ("s2:product_uri", "sentinel:product_id", "s2:product_id"):
        match = re.search(r"_N(\d{2})(\d{2})_", str(properties.get(key, "")))
        if match:
            return int(match.group(1)) + int(match.group(2)) / 100
    return None


def sentinel2_l2a(properties: dict) -> Radiometry | None:
    """(DN + offset) / 10000, the -1000 offset from baseline 04.00 unless the provider already applied it."""
    platform = str(properties.get("platform", "")).lower() + str(properties.get("constellation", "")).lower()
    if "sentinel-2" not in platform.replace(" ", "-"):
        return None
    baseline = s2_baseline(properties)
    if baseline is None:
        return None
    applied = bool(properties.get("earthsearch:boa_offset_applied", False))
    if baseline >= S2_OFFSET_BASELINE and not applied:
        return Radiometry(S2_SCALE, S2_BOA_OFFSET_DN * S2_SCALE,
                          f"Sentinel-2 processing baseline {baseline:05.2f}: BOA_ADD_OFFSET {S2_BOA_OFFSET_DN:g}")
    note = "offset already applied by the provider" if applied else "no offset before 04.00"
    return Radiometry(S2_SCALE, 0.0, f"Sentinel-2 processing baseline {baseline:05.2f}: {note}")


def landsat_c2_l2(properties: dict, collection: str | None) -> Radiometry | None:
    """USGS Collection 2 Level-2 surface reflectance, whose items (USGS's own) omit raster:bands."""
    level2 = str(properties.get("landsat:correction", "")).upper().startswith("L2")
    c2 = str(properties.get("landsat:collection_number", "")) == "02" or "c2-l2" in str(collection or "")
    if level2 and c2:
        return Radiometry(LANDSAT_C2_L2_SCALE, LANDSAT_C2_L2_OFFSET,
                          "USGS Landsat Collection 2 Level-2 surface reflectance scale (product guide)")
    return None


def parse_mtl(text: str) -> dict[str, dict[str, str]]:
    """A Landsat MTL text file as {group: {key: value}} (innermost group), or an MTL.json flattened alike."""
    if text.lstrip().startswith("{"):
        groups: dict[str, dict[str, str]] = {}

        def walk(node: dict, name: str) -> None:
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(value, key)
                else:
                    groups.setdefault(name, {})[key] = str(value)

        walk(json.loads(text), "")
        return groups
    groups, stack = {}, [""]
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "GROUP":
            stack.append(value)
        elif key == "END_GROUP":
            stack.pop() if len(stack) > 1 else None
        elif value:
            groups.setdefault(stack[-1], {})[key] = value.strip('"')
    return groups


def find_mtl(band_file: Path) -> Path | None:
    """An `*_MTL.txt` (or `.json`) in the folder of a band file, if exactly one is there."""
    folder = Path(band_file).parent
    found = sorted(folder.glob("*_MTL.txt")) or sorted(folder.glob("*_MTL.json"))
    return found[0] if len(found) == 1 else None


def landsat_mtl(band_file: Path) -> Radiometry | None:
    """REFLECTANCE_MULT/ADD_BAND_n of the MTL beside `band_file` (n from `_Bn.` in its name): Level-2
    surface reflectance for `_SR_Bn` files, else Level-1 top-of-atmosphere reflectance corrected for the
    sun elevation (USGS: rho = (M * Q + A) / sin(sun elevation))."""
    mtl = find_mtl(band_file)
    match = re.search(r"_B(\d+)\.", Path(band_file).name, re.IGNORECASE)
    if mtl is None or match is None:
        return None
    n, groups = match.group(1), parse_mtl(mtl.read_text(errors="replace"))
    surface = "_SR_B" in Path(band_file).name.upper()
    wanted = ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",) if surface else (
        "LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
    for group in wanted:
        values = groups.get(group, {})
        mult, add = values.get(f"REFLECTANCE_MULT_BAND_{n}"), values.get(f"REFLECTANCE_ADD_BAND_{n}")
        if mult is None or add is None:
            continue
        scale, offset = float(mult), float(add)
        if surface:
            return Radiometry(scale, offset, f"Landsat MTL {mtl.name}: surface reflectance band {n}")
        elevation = next((float(g["SUN_ELEVATION"]) for g in groups.values() if "SUN_ELEVATION" in g), None)
        if elevation is None or elevation <= 0:
            return Radiometry(scale, offset, f"Landsat MTL {mtl.name}: TOA reflectance band {n}, no sun correction")
        sine = math.sin(math.radians(elevation))
        return Radiometry(scale / sine, offset / sine,
                          f"Landsat MTL {mtl.name}: TOA reflectance band {n} / sin(sun elevation {elevation:g})")
    return None
