"""`lut assess design MAP -o sample.gpkg`: a stratified random sample of a map's pixels for accuracy and area
estimation (Olofsson et al. 2014).

The strata are the map's classes, or the transitions of a lut change raster. Sample sizes come from `n`, or
from a target standard error of overall accuracy (eq. 13), shared among strata by an allocation rule
(`allocation.py`). Points are pixel centres drawn without replacement: for each stratum, `n_h` ranks among
its `N_h` pixels are drawn first (from the counts alone), then one streaming pass over the map finds the
pixels of those ranks, so memory does not grow with the map. Nodata is never a stratum.

Outputs, all or nothing: the GeoPackage (points in the map's CRS: `id`, `stratum`, `stratum_id`,
`map_class`, `x`, `y`, `lon`, `lat`, `inclusion_probability` and an empty `reference` to fill in), the same
as CSV, the design (`NAME.design.json`, also in the GeoPackage's layer metadata) and a QGIS style
(`NAME.qml`) drawing the points by stratum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lut.toolkit.core.atomic import atomic_files
from lut.toolkit.core.errors import InputError
from lut.toolkit.core.formats import DESIGN_FORMAT

from .allocation import ALLOCATIONS, allocate, cochran_n
from .sample_files import SampleTable, check_outputs, design_path_of, embedded_design, write_sample
from lut.toolkit.core.paths import recorded
from lut.toolkit.core.store import sha256_file

from lut.toolkit.core.areas import area_method

from .strata import MapLegend, read_legend, strips, tally

#: Olofsson et al. (2014): 50-100 units in each rare stratum; and their example's target SE of overall accuracy
MIN_PER_STRATUM = 50
TARGET_SE = 0.01
EXPECTED_UA = 0.8


@dataclass
class DesignConfig:
    map: Path
    output: Path  # .gpkg (a .csv is written beside it)
    n: int | None = None  # total sample size; default: from target_se and expected_ua
    target_se: float = TARGET_SE
    expected_ua: str = str(EXPECTED_UA)  # one value for every stratum, or name=value,... (others: EXPECTED_UA)
    allocation: str = "compromise"
    min_per_stratum: int = MIN_PER_STRATUM
    seed: int = 0
    overwrite: bool = False

    def check(self) -> None:
        if self.allocation not in ALLOCATIONS:
            raise InputError(f"`allocation` must be one of {', '.join(ALLOCATIONS)}, got {self.allocation!r}")
        if self.n is not None and self.n < 2:
            raise InputError(f"`n` must be at least 2, got {self.n}")
        if self.min_per_stratum < 2:
            raise InputError(f"`min_per_stratum` must be at least 2 (a standard error needs 2 units), got "
                             f"{self.min_per_stratum}")
        if Path(self.output).suffix.lower() != ".gpkg":
            raise InputError(f"`output` {self.output} must be a .gpkg (the CSV is written beside it)")


def expected_accuracies(text: str, legend: MapLegend) -> np.ndarray:
    """'0.8' for every stratum, or 'forest=0.9,urban=0.7' (the others get EXPECTED_UA)."""
    values = np.full(len(legend.names), EXPECTED_UA)
    try:
        for part in filter(None, (p.strip() for p in str(text).split(","))):
            name, sep, value = part.rpartition("=")
            if not sep:
                values[:] = float(value)
                continue
            index = legend.index(name)
            if index is None:
                raise InputError(f"`expected_ua` names {name!r}, which is not in {legend.path}'s legend "
                                 f"({', '.join(legend.names)})")
            values[index] = float(value)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"`expected_ua` takes 0.8 or name=0.8,..., got {text!r}") from exc
    return values


def draw(legend: MapLegend, counts: np.ndarray, sizes: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """(stratum value, row, col) of each unit: ranks drawn per stratum from the counts, then located in one
    streaming pass over the map."""
    rng = np.random.default_rng(seed)
    ranks = {v: np.sort(rng.choice(int(counts[v]), int(sizes[v]), replace=False))
             for v in range(len(counts)) if sizes[v] > 0}
    seen = np.zeros(len(counts), np.int64)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for y0, data in strips(legend):
        flat = data.ravel()
        in_strip = np.bincount(flat, minlength=len(counts))[: len(counts)]
        for v, r in ranks.items():
            lo, hi = np.searchsorted(r, [seen[v], seen[v] + in_strip[v]])
            if hi > lo:
                pos = np.flatnonzero(flat == v)[r[lo:hi] - seen[v]]
                found.append((np.full(hi - lo, v), y0 + pos // legend.width, pos % legend.width))
        seen += in_strip
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    values, rows, cols = (np.concatenate(parts) for parts in zip(*found))
    return values, rows, cols


def design(cfg: DesignConfig) -> dict:
    """Draw the sample and write it with its design. Returns the design record."""
    cfg.check()
    legend = read_legend(cfg.map)
    outputs = check_outputs(Path(cfg.output), cfg.overwrite, [cfg.map])
    counts, areas = tally(legend)
    weights = counts / max(counts.sum(), 1)
    n = cfg.n if cfg.n is not None else cochran_n(weights[counts > 0], expected_accuracies(cfg.expected_ua,
                                                                                            legend)[counts > 0],
                                                  cfg.target_se)
    sizes = allocate(n, counts, cfg.allocation, cfg.min_per_stratum)
    values, rows, cols = draw(legend, counts, sizes, cfg.seed)
    record = {
        "format": DESIGN_FORMAT, "map": recorded(cfg.map, Path(cfg.output).parent), "map_sha256": sha256_file(cfg.map),
        "kind": legend.kind, "crs": legend.crs.to_wkt() if legend.crs else None,
        "transform": list(legend.transform)[:6], "width": legend.width, "height": legend.height,
        "pixel_area_m2": legend.pixel_area_m2, "area_method": area_method(legend.crs), "n": int(sizes.sum()),
        "n_requested": int(n),
        "n_from": "n" if cfg.n is not None else f"target SE {cfg.target_se} of overall accuracy (Olofsson eq. 13)",
        "allocation": cfg.allocation, "min_per_stratum": cfg.min_per_stratum, "seed": cfg.seed,
        "strata": [{"id": v, "name": legend.names[v], "pixels": int(counts[v]),
                    "km2": None if areas is None else float(areas[v]) / 1e6,
                    "n": int(sizes[v])} for v in range(len(counts)) if counts[v] > 0],
    }
    table = SampleTable.of(legend, values, rows, cols, sizes, counts)
    with atomic_files(outputs, cfg.overwrite) as temps:
        write_sample(temps, table, legend, record)
    return record


def load_design(sample: Path) -> dict:
    """The design of a sample, which estimation needs for the stratum sizes: a GeoPackage's layer metadata,
    else NAME.design.json beside the sample."""
    path = design_path_of(sample)
    if Path(sample).suffix.lower() == ".gpkg" and not path.is_file():
        embedded = embedded_design(Path(sample))
        if embedded is not None:
            return embedded
    if not path.is_file():
        raise InputError(f"{sample} has no design beside it ({path.name}): keep the files `lut assess design` "
                         "wrote together")
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path} does not parse as JSON: write the design again with lut assess design") from exc
    if record.get("format") != DESIGN_FORMAT:
        raise InputError(f"{path} is not a lut sample design")
    return record
