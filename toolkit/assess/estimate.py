"""`lut assess estimate MAP sample.gpkg -o DIR`: accuracy and area with 95% confidence intervals from a
labelled sample (Stehman 2014; Olofsson et al. 2014).

The strata and their sizes come from the sample's design; the map classes at the points are read from MAP,
so the same sample can assess another map of the same place (an old sample, a new map: Stehman's case),
and a change raster with its transitions as classes. Reference labels are class names (any case; `a->b` for
a transition `a→b`) or their values. Points without a label, labelled `unknown`, or outside MAP (or on its
nodata) are listed in the report and left out with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lut.toolkit.core.errors import InputError, warn
from lut.toolkit.core.raster import gdal_env

from .design import load_design
from .estimators import Z95, Sample, estimate
from .report import write_assessment
from .sample_files import read_sample
from .strata import MapLegend, read_legend, tally

UNKNOWN_LABELS = {"unknown", "?", "unsure", "na", "n/a", "none", "no data", "nodata"}


@dataclass
class EstimateConfig:
    map: Path
    sample: Path  # .gpkg or .csv, with the design beside it
    output: Path  # a directory
    reference: str = "reference"  # the column holding the reference labels
    overwrite: bool = False


@dataclass
class Labelled:
    stratum: list[int] = field(default_factory=list)
    map_class: list[int] = field(default_factory=list)
    ref_class: list[int] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)  # {"id", "why"}


def _check_same_place(legend: MapLegend, design: dict, sample_crs: str | None, sample: Path) -> None:
    from rasterio.crs import CRS

    for what, crs in (("the sample", sample_crs), ("the sample's design", design.get("crs"))):
        if crs and legend.crs is not None and CRS.from_user_input(crs) != legend.crs:
            raise InputError(f"{sample} is a sample of another map: {what} is in another CRS than "
                             f"{legend.path} ({legend.crs.to_string()}); assess the map it was drawn from")


def label_points(legend: MapLegend, rows: list[dict], reference: str, sample: Path, strata: dict) -> Labelled:
    """Each labelled point's stratum index, map class (read from MAP) and reference class."""
    import rasterio

    if reference not in rows[0]:
        raise InputError(f"{sample} has no column {reference!r} of reference labels (columns: {', '.join(rows[0])}): "
                         "label the points in it, or name the column with `reference`")
    out = Labelled()
    with gdal_env(), rasterio.open(legend.path) as src:
        for i, row in enumerate(rows):
            uid = row.get("id") or str(i + 1)
            label = (row.get(reference) or "").strip()
            if not label or label.lower() in UNKNOWN_LABELS:
                out.excluded.append({"id": uid, "why": "no reference label" if not label else f"labelled {label!r}"})
                continue
            ref = legend.index(label)
            if ref is None:
                raise InputError(f"{sample}: point {uid} is labelled {label!r}, which is not in {legend.path}'s "
                                 f"legend ({', '.join(legend.names[:12])}{', ...' if len(legend.names) > 12 else ''})")
            try:
                x, y = float(row["x"]), float(row["y"])
                stratum = strata[int(float(row["stratum_id"]))]
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{sample}: point {uid} lacks a valid x, y or stratum_id: keep the columns "
                                 "lut assess design wrote") from exc
            r, c = src.index(x, y)
            if not (0 <= r < legend.height and 0 <= c < legend.width):
                out.excluded.append({"id": uid, "why": "outside the map"})
                continue
            value = int(src.read(1, window=((r, r + 1), (c, c + 1)))[0, 0])
            if value >= len(legend.names):
                out.excluded.append({"id": uid, "why": "on the map's nodata"})
                continue
            out.stratum.append(stratum)
            out.map_class.append(value)
            out.ref_class.append(ref)
    return out


def estimate_areas(cfg: EstimateConfig) -> dict:
    """Estimate accuracy and areas; write DIR/assessment.json, CSV tables, a report and a plot. Returns the
    assessment record."""
    legend = read_legend(cfg.map)
    design = load_design(cfg.sample)
    read = read_sample(cfg.sample)
    _check_same_place(legend, design, read.crs, Path(cfg.sample))
    strata = {s["id"]: i for i, s in enumerate(design["strata"])}
    labelled = label_points(legend, read.rows, cfg.reference, Path(cfg.sample), strata)
    if not labelled.stratum and any(e["why"] == "outside the map" for e in labelled.excluded):
        raise InputError(f"no point of {cfg.sample} lies on {cfg.map}: it is a sample of another map (extent)")
    sizes = np.array([s["pixels"] for s in design["strata"]], np.float64)
    n = np.bincount(np.asarray(labelled.stratum, np.int64), minlength=len(sizes))
    for i, s in enumerate(design["strata"]):
        if n[i] < 2:
            raise InputError(f"stratum {s['name']} has {n[i]} labelled point(s): its standard error needs at least "
                             "2; label more of its points")
    if labelled.excluded:
        warn(f"{len(labelled.excluded)} point(s) of {cfg.sample} left out (unlabelled, unknown or off the map): "
             "listed in the report")
    sample = Sample(np.asarray(labelled.stratum), np.asarray(labelled.map_class), np.asarray(labelled.ref_class),
                    sizes, len(legend.names))
    record = assessment_record(estimate(sample), legend, design, tally(legend)[1], labelled)
    write_assessment(Path(cfg.output), record, legend, cfg.overwrite, [cfg.map, cfg.sample])
    return record


def _num(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def assessment_record(e, legend: MapLegend, design: dict, mapped_m2: np.ndarray | None, labelled: Labelled) -> dict:
    """The assessment's numbers by class name. Areas: the area proportions times the strata's total area
    (their km² as the design counted them: `lut.toolkit.core.areas`)."""
    names = legend.names
    strata_km2 = [s.get("km2") for s in design["strata"]]
    total_km2 = None if any(k is None for k in strata_km2) else float(sum(strata_km2))

    def by_class(pairs, index):
        return {name: _num(pair[index]) for name, pair in zip(names, pairs)}

    areas = {name: None if total_km2 is None else _num(p * total_km2) for name, (p, _) in zip(names, e.area_proportion)}
    ci = {name: None if total_km2 is None else _num(Z95 * se * total_km2) for name, (_, se) in zip(names,
                                                                                                  e.area_proportion)}
    return {
        "overall_accuracy": _num(e.overall[0]), "overall_accuracy_se": _num(e.overall[1]),
        "users_accuracy": by_class(e.users, 0), "users_accuracy_se": by_class(e.users, 1),
        "producers_accuracy": by_class(e.producers, 0), "producers_accuracy_se": by_class(e.producers, 1),
        "area_proportion": by_class(e.area_proportion, 0), "area_proportion_se": by_class(e.area_proportion, 1),
        "area_km2": areas, "area_km2_ci95": ci,
        "mapped_area_km2": {name: None if mapped_m2 is None else float(mapped_m2[i]) / 1e6
                            for i, name in enumerate(names)},
        "error_matrix_counts": {"rows_map": names, "columns_reference": names,
                                "counts": e.matrix_counts.tolist()},
        "error_matrix_area_proportions": {"rows_map": names, "columns_reference": names,
                                          "proportions": np.round(e.matrix_proportions, 10).tolist()},
        "labelled_points": len(labelled.stratum), "excluded_points": labelled.excluded,
        "total_area_km2": total_km2, "kind": legend.kind, "map": Path(legend.path).name,
        "design": design,
    }
