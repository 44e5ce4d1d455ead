"""Accuracy and area estimators for stratified random samples, numpy only (Stehman 2014; Olofsson et al. 2014).

Stehman, S.V. (2014). Estimating area and map accuracy for stratified random sampling when the strata are
different from the map classes. International Journal of Remote Sensing 35(13), 4923-4939.
Olofsson, P. et al. (2014). Good practices for estimating area and assessing accuracy of land change.
Remote Sensing of Environment 148, 42-57.

Every quantity is a proportion of area or a ratio of two such proportions, estimated from per-unit
indicators y_u (and x_u) within each stratum h of N_h pixels with n_h sample units:

    total       Y^ = sum_h N_h ybar_h                                   (Stehman eq. 2-3)
    var(Y^)        = sum_h N_h^2 (1 - f_h) s2_yh / n_h                   (eq. 25; f_h = n_h / N_h)
    ratio       R^ = Y^ / X^
    var(R^)        = 1/X^2 sum_h N_h^2 (1 - f_h) (s2_yh + R^2 s2_xh - 2 R^ s_xyh) / n_h        (eq. 28)

with sample variances and covariances s (ddof 1). Overall accuracy and the area proportion of a class are
totals over N; user's accuracy is the ratio y = [map = k and ref = k] over x = [map = k]; producer's
accuracy the same y over x = [ref = k]. When the strata are the map classes these reduce to Olofsson's
equations (p_ij = W_i n_ij / n_i., standard errors of eq. 5, 7 and 10). The finite population correction
(1 - f_h) is off by default, as in Olofsson's equations and the published values of Stehman's example
(which `fpc=True` misses in the 4th digit); for maps of millions of pixels it changes nothing. A 95%
confidence interval is +-1.96 standard errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lut.toolkit.core.errors import InputError

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Sample:
    """Labelled units: their stratum (0..H-1), map class and reference class (0..K-1), and N_h per stratum."""

    stratum: np.ndarray
    map_class: np.ndarray
    ref_class: np.ndarray
    stratum_sizes: np.ndarray  # N_h, pixels
    classes: int  # K

    def __post_init__(self) -> None:
        n = np.bincount(self.stratum, minlength=len(self.stratum_sizes))
        short = [h for h in range(len(self.stratum_sizes)) if self.stratum_sizes[h] > 0 and n[h] < 2]
        if short:
            raise InputError(f"strata {short} have fewer than 2 labelled units: their variance is undefined")


def _by_stratum(sample: Sample, values: np.ndarray):
    for h, size in enumerate(sample.stratum_sizes):
        if size > 0:
            yield float(size), values[:, sample.stratum == h]


def total(sample: Sample, y: np.ndarray, fpc: bool = False) -> tuple[float, float]:
    """Estimated total of indicator `y` (units,) and its variance."""
    est = var = 0.0
    for size, (yh,) in _by_stratum(sample, y[None].astype(np.float64)):
        n = yh.size
        est += size * yh.mean()
        var += size ** 2 * (1 - n / size if fpc else 1.0) * yh.var(ddof=1) / n
    return est, var


def ratio(sample: Sample, y: np.ndarray, x: np.ndarray, fpc: bool = False) -> tuple[float, float]:
    """Estimated ratio of totals Y/X and its standard error; NaN when X^ is 0 (nothing to divide by)."""
    y_total, _ = total(sample, y, fpc)
    x_total, _ = total(sample, x, fpc)
    if x_total == 0:
        return float("nan"), float("nan")
    r = y_total / x_total
    var = 0.0
    for size, (yh, xh) in _by_stratum(sample, np.stack([y, x]).astype(np.float64)):
        n = yh.size
        cov = np.cov(yh, xh, ddof=1)
        var += size ** 2 * (1 - n / size if fpc else 1.0) * (cov[0, 0] + r * r * cov[1, 1] - 2 * r * cov[0, 1]) / n
    return r, float(np.sqrt(max(var, 0.0)) / x_total)


def proportion(sample: Sample, y: np.ndarray, fpc: bool = False) -> tuple[float, float]:
    """Estimated proportion of the area where `y` holds, and its standard error."""
    n_total = float(sample.stratum_sizes.sum())
    est, var = total(sample, y, fpc)
    return est / n_total, float(np.sqrt(var)) / n_total


@dataclass
class Estimates:
    """Accuracy and area estimates by class (index 0..K-1), each with its standard error."""

    overall: tuple[float, float]
    users: list[tuple[float, float]]
    producers: list[tuple[float, float]]
    area_proportion: list[tuple[float, float]]
    matrix_proportions: np.ndarray  # (K, K): row = map class, column = reference class
    matrix_counts: np.ndarray  # (K, K) labelled units


def estimate(sample: Sample, fpc: bool = False) -> Estimates:
    """Overall, user's and producer's accuracy, area proportions and the error matrix in area proportions."""
    m, r, k = sample.map_class, sample.ref_class, sample.classes
    right = m == r
    users = [ratio(sample, right & (m == c), m == c, fpc) for c in range(k)]
    producers = [ratio(sample, right & (r == c), r == c, fpc) for c in range(k)]
    areas = [proportion(sample, r == c, fpc) for c in range(k)]
    matrix = np.array([[proportion(sample, (m == i) & (r == j), fpc)[0] for j in range(k)] for i in range(k)])
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (m, r), 1)
    return Estimates(proportion(sample, right, fpc), users, producers, areas, matrix, counts)
