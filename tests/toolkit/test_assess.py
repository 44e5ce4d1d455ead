"""lut assess: Stehman's published example, Olofsson's equations by hand, the sample design, estimates from
files, and the coverage of the 95% intervals."""

import csv
import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio

from lut.toolkit.assess.allocation import allocate, cochran_n
from lut.toolkit.assess.design import DesignConfig, design, draw
from lut.toolkit.assess.estimate import EstimateConfig, estimate_areas
from lut.toolkit.assess.estimators import Z95, Sample, estimate
from lut.toolkit.assess.sample_files import fill_references
from lut.toolkit.assess.strata import count_values, read_legend
from lut.toolkit.core.errors import InputError, LutWarning

from ..conftest import CLASSES6, write_lut_map

ASSESS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "assess"
needs_assess = pytest.mark.skipif(not ASSESS.is_dir(), reason="../shared/data/assess is absent")


@needs_assess
def test_stehman_2014_published_example():
    rows = list(csv.DictReader(open(ASSESS / "stehman2014_samples.csv")))
    column = {k: np.array([int(r[k]) - 1 for r in rows]) for k in ("stratum", "map_class", "ref_class")}
    e = estimate(Sample(column["stratum"], column["map_class"], column["ref_class"],
                        np.array([40000, 30000, 20000, 10000]), 4))
    assert [u for u, _ in e.users] == pytest.approx([0.7419355, 0.5744681, 0.5, 0.7], abs=5e-8)
    assert [p for p, _ in e.producers] == pytest.approx([0.6571429, 0.7941176, 0.3, 0.6363636], abs=5e-8)
    assert [a for a, _ in e.area_proportion] == pytest.approx([0.35, 0.34, 0.20, 0.11], abs=5e-12)
    assert e.overall[0] == pytest.approx(0.63, abs=5e-12) and e.overall[1] == pytest.approx(0.085, abs=5e-4)
    assert e.users[1][1] == pytest.approx(0.125, abs=5e-4) and e.producers[1][1] == pytest.approx(0.117, abs=5e-4)
    assert e.users[0][1] == pytest.approx(0.1645627, abs=5e-8) and e.users[2][1] == pytest.approx(0.2151657, abs=5e-8)
    assert e.matrix_proportions.sum() == pytest.approx(1.0)
    assert e.matrix_proportions.sum(axis=0) == pytest.approx([0.35, 0.34, 0.20, 0.11])


def olofsson_by_hand(counts: np.ndarray, weights: np.ndarray) -> dict:
    """Olofsson et al. (2014) eq. 4-10 written out for strata = map classes (rows), no library code."""
    n_i = counts.sum(axis=1)
    p = weights[:, None] * counts / n_i[:, None]  # eq. 4
    users = np.diag(p) / p.sum(axis=1)
    producers = np.diag(p) / p.sum(axis=0)
    overall = np.trace(p)
    var_o = np.sum(weights ** 2 * users * (1 - users) / (n_i - 1))  # eq. 5
    var_u = users * (1 - users) / (n_i - 1)  # eq. 6
    k = len(weights)
    n_j_hat = p.sum(axis=0)  # estimated reference proportions (N_.j / N)
    var_p = np.zeros(k)
    for j in range(k):  # eq. 7
        first = weights[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / (n_i[j] - 1)
        second = producers[j] ** 2 * sum(weights[i] ** 2 * counts[i, j] / n_i[i] * (1 - counts[i, j] / n_i[i])
                                         / (n_i[i] - 1) for i in range(k) if i != j)
        var_p[j] = (first + second) / n_j_hat[j] ** 2
    se_area = np.sqrt([sum(weights[i] ** 2 * (counts[i, j] / n_i[i]) * (1 - counts[i, j] / n_i[i]) / (n_i[i] - 1)
                           for i in range(k)) for j in range(k)])  # eq. 10
    return {"users": users, "producers": producers, "overall": overall, "se_o": np.sqrt(var_o),
            "se_u": np.sqrt(var_u), "se_p": np.sqrt(var_p), "area": n_j_hat, "se_area": se_area}


def test_strata_equal_to_map_classes_reduce_to_olofssons_equations():
    counts = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])  # Olofsson's Table 8
    pixels = np.array([200000, 150000, 3200000, 6450000])
    stratum = np.repeat(np.arange(4), counts.sum(axis=1))
    ref = np.concatenate([np.repeat(np.arange(4), row) for row in counts])
    e = estimate(Sample(stratum, stratum, ref, pixels, 4))
    hand = olofsson_by_hand(counts, pixels / pixels.sum())
    assert [u for u, _ in e.users] == pytest.approx(hand["users"], rel=1e-12)
    assert [p for p, _ in e.producers] == pytest.approx(hand["producers"], rel=1e-12)
    assert e.overall == pytest.approx((hand["overall"], hand["se_o"]), rel=1e-12)
    assert [s for _, s in e.users] == pytest.approx(hand["se_u"], rel=1e-12)
    assert [s for _, s in e.producers] == pytest.approx(hand["se_p"], rel=1e-9)
    assert [a for a, _ in e.area_proportion] == pytest.approx(hand["area"], rel=1e-12)
    assert [s for _, s in e.area_proportion] == pytest.approx(hand["se_area"], rel=1e-12)
    assert hand["area"][0] * pixels.sum() * 0.09 == pytest.approx(21158, abs=1)  # Olofsson: 21,158 ha deforestation


def test_sample_size_and_allocation():
    weights = np.array([0.02, 0.015, 0.32, 0.645])  # Olofsson et al. (2014), section 5.1.1: n = 641
    assert cochran_n(weights, np.array([0.7, 0.6, 0.9, 0.95]), 0.01) == 641
    sizes = np.array([1000, 50, 20000, 0, 78950])
    assert allocate(100, sizes, "proportional", 50).tolist() == [1, 0, 20, 0, 79]
    assert allocate(100, sizes, "equal", 50).tolist() == [25, 25, 25, 0, 25]
    compromise = allocate(200, sizes, "compromise", 30)
    assert compromise.tolist() == [30, 30, 30, 0, 110] and compromise.sum() == 200
    assert allocate(100, np.array([10, 100000]), "compromise", 20).tolist() == [10, 90]  # never above N_h
    with pytest.raises(InputError, match="raise `n` to at least 120"):
        allocate(100, sizes, "compromise", 30)


@pytest.fixture()
def mapped(tmp_path):
    """A 200 x 300 lut map of 20 px parcels (6 classes, a nodata band) and its truth: the map with a tenth
    of the parcels labelled wrongly."""
    rng = np.random.default_rng(0)
    parcels = rng.integers(0, 6, (10, 15))
    truth = np.kron(parcels, np.ones((20, 20), np.uint8)).astype(np.uint8)
    wrong = rng.random(parcels.shape) < 0.1
    classes = np.kron(np.where(wrong, (parcels + 1) % 6, parcels), np.ones((20, 20))).astype(np.uint8)
    classes[:, :10] = 255
    truth[:, :10] = 255
    return write_lut_map(tmp_path / "map.tif", classes), truth


def test_design_draws_pixel_centres_of_each_stratum_reproducibly(mapped, tmp_path):
    path, _ = mapped
    record = design(DesignConfig(path, tmp_path / "s.gpkg", n=120, min_per_stratum=10, seed=3))
    with rasterio.open(path) as src:
        classes = src.read(1)
        rows = list(csv.DictReader(open(tmp_path / "s.csv")))
        for row in rows:
            r, c = src.index(float(row["x"]), float(row["y"]))
            assert classes[r, c] == int(row["stratum_id"]) != 255  # nodata is never sampled
            x, y = src.xy(r, c)  # the pixel's centre
            assert (float(row["x"]), float(row["y"])) == (x, y) and row["reference"] == ""
    counts = np.bincount(classes[classes != 255], minlength=6)
    assert [s["pixels"] for s in record["strata"]] == counts.tolist() and record["n"] == len(rows) == 120
    assert {int(r["stratum_id"]): float(r["inclusion_probability"]) for r in rows} == pytest.approx(
        {s["id"]: s["n"] / s["pixels"] for s in record["strata"]})
    meta, _, geometry, fields = pyogrio.raw.read(tmp_path / "s.gpkg")
    assert len(geometry) == 120 and "reference" in list(meta["fields"]) and meta["crs"] == "EPSG:32633"
    assert json.loads(pyogrio.read_info(tmp_path / "s.gpkg")["layer_metadata"]["lut_design"])["seed"] == 3
    assert "categorizedSymbol" in (tmp_path / "s.qml").read_text()
    assert float(rows[0]["lon"]) == pytest.approx(12.8, abs=0.1)  # UTM 33N: 200 km west of 15°E at 36°N
    again = design(DesignConfig(path, tmp_path / "t.gpkg", n=120, min_per_stratum=10, seed=3))
    assert again["strata"] == record["strata"]
    assert (tmp_path / "t.csv").read_text().split("\n", 1)[1] == (tmp_path / "s.csv").read_text().split("\n", 1)[1]


def label_from_truth(sample_csv: Path, truth: np.ndarray, map_path: Path) -> None:
    with rasterio.open(map_path) as src:
        rows = list(csv.DictReader(open(sample_csv)))
        labels = [CLASSES6[truth[src.index(float(r["x"]), float(r["y"]))]] for r in rows]
    fill_references(sample_csv, labels)


def test_estimate_from_a_labelled_csv_and_its_files(mapped, tmp_path):
    path, truth = mapped
    design(DesignConfig(path, tmp_path / "s.gpkg", n=300, min_per_stratum=20, seed=1))
    label_from_truth(tmp_path / "s.csv", truth, path)
    record = estimate_areas(EstimateConfig(path, tmp_path / "s.csv", tmp_path / "out"))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["areas.png", "assessment.json", "assessment.md", "classes.csv", "error_matrix_area.csv",
                     "error_matrix_counts.csv"]
    saved = json.loads((tmp_path / "out" / "assessment.json").read_text())
    for key in ("overall_accuracy", "overall_accuracy_se", "users_accuracy", "users_accuracy_se",
                "producers_accuracy", "producers_accuracy_se", "area_proportion", "area_proportion_se", "area_km2",
                "area_km2_ci95", "mapped_area_km2", "error_matrix_counts", "error_matrix_area_proportions", "design"):
        assert key in saved
    true_km2 = np.bincount(truth[truth != 255], minlength=6) * 100 / 1e6
    assert sum(saved["area_km2"].values()) == pytest.approx(true_km2.sum())  # areas add up to the mapped extent
    assert sum(record["mapped_area_km2"].values()) == pytest.approx(true_km2.sum())
    assert np.sum(saved["error_matrix_counts"]["counts"]) == 300
    assert "± " in (tmp_path / "out" / "assessment.md").read_text()


def test_an_old_sample_assesses_a_new_map_with_stehmans_estimators(mapped, tmp_path):
    """Strata from the old map, map classes from the new one: the estimates equal the estimators applied
    to (old stratum, new map class, reference) directly."""
    path, truth = mapped
    design(DesignConfig(path, tmp_path / "s.gpkg", n=200, min_per_stratum=20, seed=2))
    label_from_truth(tmp_path / "s.csv", truth, path)
    new = write_lut_map(tmp_path / "new.tif", np.where(truth == 255, 255, truth).astype(np.uint8))  # a perfect map
    record = estimate_areas(EstimateConfig(new, tmp_path / "s.csv", tmp_path / "out"))
    assert record["overall_accuracy"] == 1.0 and record["users_accuracy_se"]["forest"] == 0.0
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    stratum = np.array([int(r["stratum_id"]) for r in rows])
    ref = np.array([CLASSES6.index(r["reference"]) for r in rows])
    sizes = np.array([s["pixels"] for s in record["design"]["strata"]])
    direct = estimate(Sample(stratum, ref, ref, sizes, 6))
    assert [record["area_proportion"][c] for c in CLASSES6] == pytest.approx([a for a, _ in direct.area_proportion])
    assert record["mapped_area_km2"] != json.loads(json.dumps(
        estimate_areas(EstimateConfig(path, tmp_path / "s.csv", tmp_path / "old"))["mapped_area_km2"]))


def test_unlabelled_points_are_left_out_with_a_warning_and_few_labels_are_an_error(mapped, tmp_path):
    path, truth = mapped
    design(DesignConfig(path, tmp_path / "s.gpkg", n=60, min_per_stratum=10, seed=0))
    label_from_truth(tmp_path / "s.csv", truth, path)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    labels = [r["reference"] for r in rows]
    labels[0], labels[1] = "", "unknown"
    fill_references(tmp_path / "s.csv", labels)
    with pytest.warns(LutWarning, match="2 point"):
        record = estimate_areas(EstimateConfig(path, tmp_path / "s.csv", tmp_path / "out"))
    assert [e["id"] for e in record["excluded_points"]] == [rows[0]["id"], rows[1]["id"]]
    stratum = rows[5]["stratum"]
    fill_references(tmp_path / "s.csv", ["" if r["stratum"] == stratum else r["reference"] for r in rows])
    with pytest.raises(InputError, match=f"stratum {stratum} has 0 labelled point"):
        estimate_areas(EstimateConfig(path, tmp_path / "s.csv", tmp_path / "out2"))
    assert not (tmp_path / "out2").exists()


def test_95_percent_intervals_cover_the_true_areas_over_200_samples(mapped):
    """Tolerance: with 200 independent samples a 95% interval's coverage has a binomial standard deviation
    of 1.5 points; the test accepts 90-99% per class (about 3 standard deviations), which a correct
    estimator passes and one whose standard errors are off by a quarter (coverage ~86%) fails."""
    path, truth = mapped
    legend = read_legend(path)
    counts = count_values(legend)
    sizes = allocate(300, counts, "compromise", 20)
    with rasterio.open(path) as src:
        classes = src.read(1)
    true_p = np.bincount(truth[truth != 255], minlength=6) / counts.sum()
    covered = np.zeros(6)
    for seed in range(200):
        values, rows, cols = draw(legend, counts, sizes, seed)
        e = estimate(Sample(values, classes[rows, cols], truth[rows, cols], counts.astype(float), 6))
        covered += [abs(p - t) <= Z95 * se for (p, se), t in zip(e.area_proportion, true_p)]
    coverage = covered / 200
    assert ((coverage >= 0.90) & (coverage <= 0.99)).all(), coverage


def test_the_demo_step_labels_from_the_truth_raster_and_sets_estimates_beside_true_areas(mapped, tmp_path):
    from lut.toolkit.cli.demo_assess import assess_demo_map, format_assessment

    path, truth = mapped
    truth_tif = write_lut_map(tmp_path / "truth.tif", truth)
    rows = assess_demo_map(tmp_path, path, truth_tif, CLASSES6, seed=0, overwrite=False)
    true_km2 = np.bincount(truth[truth != 255], minlength=6) * 100 / 1e6
    assert [r["true_km2"] for r in rows] == pytest.approx(true_km2.tolist())
    assert sum(r["covered"] for r in rows) >= 5 and "in CI" in format_assessment(rows)
    labels = [r["reference"] for r in csv.DictReader(open(tmp_path / "sample.csv"))]
    assert set(labels) <= set(CLASSES6) and len(labels) == 300
    again = assess_demo_map(tmp_path, path, truth_tif, CLASSES6, seed=0, overwrite=True)  # lut's own files
    assert again == rows


def test_a_change_raster_is_assessed_per_transition(mapped, tmp_path):
    from lut.toolkit.gis.change import ChangeConfig, compute_change

    path, truth = mapped
    with rasterio.open(path) as src:
        before = src.read(1)
    after = before.copy()
    after[:100, 100:200] = np.where(after[:100, 100:200] == 255, 255, 2)  # a block becomes urban
    later = write_lut_map(tmp_path / "after.tif", after)
    compute_change(ChangeConfig(path, later, tmp_path / "change.tif"))
    record = design(DesignConfig(tmp_path / "change.tif", tmp_path / "s.gpkg", n=100, min_per_stratum=5, seed=0))
    assert record["kind"] == "transitions" and all("→" in s["name"] for s in record["strata"])
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    fill_references(tmp_path / "s.csv", [r["map_class"].replace("→", "->") for r in rows])  # a perfect map
    result = estimate_areas(EstimateConfig(tmp_path / "change.tif", tmp_path / "s.csv", tmp_path / "out"))
    changed = [s for s in record["strata"] if s["name"].endswith("→urban") and not s["name"].startswith("urban")]
    for s in changed:
        assert result["area_km2"][s["name"]] == pytest.approx(s["km2"]) and result["area_km2_ci95"][s["name"]] == 0
    assert result["overall_accuracy"] == 1.0
