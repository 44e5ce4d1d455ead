"""The files of an assessment: JSON, CSV tables, a markdown report and a plot of mapped against estimated
area with 95% confidence intervals; written together, all or nothing."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from lut.toolkit.core.atomic import atomic_files, check_writable_dir
from lut.toolkit.core.errors import InputError
from lut.toolkit.core.formats import ASSESSMENT_FORMAT
from lut.toolkit.core.ownership import check_output_file, is_lut_preview

from .strata import MapLegend

REFERENCES = ("Olofsson, P., Foody, G.M., Herold, M., Stehman, S.V., Woodcock, C.E., Wulder, M.A. (2014). Good "
              "practices for estimating area and assessing accuracy of land change. Remote Sensing of Environment "
              "148, 42-57.",
              "Stehman, S.V. (2014). Estimating area and map accuracy for stratified random sampling when the strata "
              "are different from the map classes. International Journal of Remote Sensing 35(13), 4923-4939.")
FILES = ("assessment.json", "classes.csv", "error_matrix_counts.csv", "error_matrix_area.csv", "assessment.md",
         "areas.png")
MARK = f"<!-- {ASSESSMENT_FORMAT} -->"


def _ours(path: Path) -> bool:
    try:
        if path.suffix == ".png":
            return is_lut_preview(path)
        text = path.read_text(errors="replace")
        if path.suffix == ".json":
            return json.loads(text).get("format") == ASSESSMENT_FORMAT
        return text.startswith(("class,", "map \\ reference,", MARK))
    except (OSError, ValueError):
        return False


def write_assessment(out: Path, record: dict, legend: MapLegend, overwrite: bool, inputs: list) -> None:
    paths = [out / name for name in FILES]
    if out.exists() and not out.is_dir():
        raise InputError(f"`output` {out} is a file; it names a directory for the assessment's files")
    if out.is_dir():
        for path in paths:
            check_output_file(path, overwrite, _ours, inputs, "output")
    else:
        check_writable_dir(out.parent)
    out.mkdir(parents=True, exist_ok=True)
    record = {"format": ASSESSMENT_FORMAT, **record}
    with atomic_files(paths, overwrite) as (t_json, t_classes, t_counts, t_area, t_md, t_png):
        t_json.write_text(json.dumps(record, indent=2, ensure_ascii=False))
        t_classes.write_text(classes_csv(record))
        t_counts.write_text(matrix_csv(record["error_matrix_counts"], "counts"))
        t_area.write_text(matrix_csv(record["error_matrix_area_proportions"], "proportions"))
        t_md.write_text(markdown(record))
        area_plot(record, t_png)


def _present(record: dict) -> list[str]:
    """Classes in the map or the reference sample (a change raster has K² transitions, most of them empty)."""
    counts = record["error_matrix_counts"]
    names = counts["rows_map"]
    seen = [any(row[i] for row in counts["counts"]) or any(counts["counts"][i]) for i in range(len(names))]
    return [n for n, s in zip(names, seen) if s or (record["mapped_area_km2"].get(n) or 0) > 0]


def classes_csv(record: dict) -> str:
    keys = ["mapped_area_km2", "area_km2", "area_km2_ci95", "area_proportion", "area_proportion_se", "users_accuracy",
            "users_accuracy_se", "producers_accuracy", "producers_accuracy_se"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", *keys])
    for name in _present(record):
        writer.writerow([name, *("" if record[k][name] is None else record[k][name] for k in keys)])
    return buffer.getvalue()


def matrix_csv(matrix: dict, key: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["map \\ reference", *matrix["columns_reference"]])
    for name, row in zip(matrix["rows_map"], matrix[key]):
        writer.writerow([name, *row])
    return buffer.getvalue()


def _pm(value, half, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")


def markdown(record: dict) -> str:
    z = 1.959963984540054
    design = record["design"]
    lines = [MARK, f"# Accuracy and area of {Path(record['map']).name}", "",
             f"Stratified random sample of {design['n']} points ({design['allocation']} allocation, seed "
             f"{design['seed']}), {record['labelled_points']} labelled and used; strata: "
             f"{'map classes' if design['kind'] == 'classes' else 'change transitions'} of {Path(design['map']).name}.",
             "Areas are estimated from the reference labels (Stehman 2014 estimators; Olofsson et al. 2014 good "
             "practice), with 95% confidence intervals (± 1.96 standard errors). Mapped areas are pixel counts "
             "and are biased by the map's errors: report the estimates.", "",
             f"Overall accuracy: {_pm(record['overall_accuracy'], z * (record['overall_accuracy_se'] or 0))}", "",
             "| class | mapped km² | estimated km² (95% CI) | user's accuracy (95% CI) | "
             "producer's accuracy (95% CI) |",
             "|---|---:|---:|---:|---:|"]
    for name in _present(record):
        ua, pa = record["users_accuracy"][name], record["producers_accuracy"][name]
        ua_ci = None if record["users_accuracy_se"][name] is None else z * record["users_accuracy_se"][name]
        pa_ci = None if record["producers_accuracy_se"][name] is None else z * record["producers_accuracy_se"][name]
        lines.append(f"| {name} | {_pm(record['mapped_area_km2'][name], None)} | "
                     f"{_pm(record['area_km2'][name], record['area_km2_ci95'][name])} | {_pm(ua, ua_ci)} | "
                     f"{_pm(pa, pa_ci)} |")
    if record["excluded_points"]:
        lines += ["", f"Left out: {len(record['excluded_points'])} point(s): " + ", ".join(
            f"{e['id']} ({e['why']})" for e in record["excluded_points"][:50])]
    lines += ["", "References:", "", *(f"- {r}" for r in REFERENCES), ""]
    return "\n".join(lines)


def area_plot(record: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from lut.toolkit.core.formats import PREVIEW_SOFTWARE

    names = _present(record)
    mapped = [record["mapped_area_km2"][n] or 0.0 for n in names]
    estimated = [record["area_km2"][n] or 0.0 for n in names]
    ci = [record["area_km2_ci95"][n] or 0.0 for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2), 4.5))
    ax.bar(x - 0.2, mapped, 0.4, label="mapped (pixel count)", color="#bbbbbb")
    ax.bar(x + 0.2, estimated, 0.4, yerr=ci, capsize=4, label="estimated, 95% CI", color="#4477aa")
    ax.set_xticks(x, names, rotation=30 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("km²")
    ax.set_title("Mapped vs estimated area")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(png, dpi=100, format="png", metadata={"Software": PREVIEW_SOFTWARE})
    plt.close(fig)
