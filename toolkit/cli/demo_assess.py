"""The demo's last step: publishable areas. A stratified sample of the demo map, labelled from the scene's
ground truth (where a real study would label in QGIS), and the estimated areas with 95% confidence
intervals set beside the true areas."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from lut.toolkit.assess.design import DesignConfig, design
from lut.toolkit.assess.estimate import EstimateConfig, estimate_areas
from lut.toolkit.assess.sample_files import fill_references

SAMPLE_SIZE = 300
MIN_PER_STRATUM = 20

log = logging.getLogger("lut.toolkit.cli.demo")


def label_from_raster(sample_csv: Path, truth: Path, names: list[str]) -> None:
    """Each point's reference label is the class of the truth raster under it ('' on its nodata)."""
    import rasterio

    with rasterio.open(truth) as src:
        data = src.read(1)
        rows = list(csv.DictReader(open(sample_csv, newline="")))
        cells = [src.index(float(r["x"]), float(r["y"])) for r in rows]
    labels = [names[v] if v < len(names) else "" for v in (int(data[r, c]) for r, c in cells)]
    fill_references(sample_csv, labels)


def assess_demo_map(out: Path, landuse: Path, truth: Path, names: list[str], seed: int, overwrite: bool) -> list[dict]:
    """Design, label from the truth, estimate; one row per class: mapped, estimated ± CI and true km²."""
    import rasterio

    design(DesignConfig(landuse, out / "sample.gpkg", n=SAMPLE_SIZE, min_per_stratum=MIN_PER_STRATUM, seed=seed,
                        overwrite=overwrite))
    label_from_raster(out / "sample.csv", truth, names)
    record = estimate_areas(EstimateConfig(landuse, out / "sample.csv", out / "assessment", overwrite=overwrite))
    with rasterio.open(truth) as src:
        data = src.read(1)
        km2 = abs(src.transform.a * src.transform.e) / 1e6
    true = np.bincount(data[data < len(names)], minlength=len(names)) * km2
    rows = []
    for i, name in enumerate(names):
        estimated, ci = record["area_km2"][name], record["area_km2_ci95"][name]
        rows.append({"class": name, "mapped_km2": record["mapped_area_km2"][name], "estimated_km2": estimated,
                     "ci95_km2": ci, "true_km2": float(true[i]),
                     "covered": estimated is not None and abs(estimated - true[i]) <= ci})
    return rows


def format_assessment(rows: list[dict]) -> str:
    lines = [f"      {'class':<10} {'mapped km2':>10} {'estimated km2 (95% CI)':>24} {'true km2':>9}  in CI"]
    lines += [f"      {r['class']:<10} {r['mapped_km2']:>10.3f} {r['estimated_km2']:>14.3f} ± {r['ci95_km2']:<7.3f} "
              f"{r['true_km2']:>9.3f}  {'yes' if r['covered'] else 'no'}" for r in rows]
    return "\n".join(lines)


def assessment_step(out: Path, landuse: Path, truth: Path, names: list[str], seed: int, overwrite: bool) -> list[dict]:
    """The demo's step 6, logged like the others."""
    log.info(f"[6/6] publishable areas: a stratified sample of {SAMPLE_SIZE} points of the first map, labelled "
             "from the truth, areas estimated with 95% confidence intervals (lut assess)")
    rows = assess_demo_map(out, landuse, truth, names, seed, overwrite)
    log.info(format_assessment(rows))
    return rows
