"""How many sample units, and how they are shared among strata (Olofsson et al. 2014, section 5.1)."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from lut.toolkit.core.errors import InputError

Allocation = Literal["compromise", "proportional", "equal"]
ALLOCATIONS: tuple[str, ...] = get_args(Allocation)


def cochran_n(weights: np.ndarray, expected_ua: np.ndarray, target_se: float) -> int:
    """Olofsson et al. (2014) eq. 13: n = (sum_i W_i S_i / S(O))^2 with S_i = sqrt(U_i (1 - U_i)), the total
    sample size for a target standard error S(O) of overall accuracy under stratified random sampling."""
    if not 0 < target_se < 1:
        raise InputError(f"`target_se` is a standard error of overall accuracy between 0 and 1, got {target_se}")
    if np.any((expected_ua <= 0) | (expected_ua >= 1)):
        raise InputError("`expected_ua` must be user's accuracies strictly between 0 and 1")
    spread = float(np.sum(weights * np.sqrt(expected_ua * (1 - expected_ua))))
    return int(np.ceil((spread / target_se) ** 2))


def allocate(n: int, sizes: np.ndarray, rule: str, minimum: int) -> np.ndarray:
    """Units per stratum (strata of size 0 get none; no stratum gets more units than it has pixels).

    proportional: n_h ~ N_h. equal: n / H each. compromise (the default, Olofsson's advice): every stratum
    gets at least `minimum` units so rare classes (where change usually is) get usable user's accuracies,
    and the rest is shared in proportion to area, which keeps overall accuracy and area estimates precise.
    """
    if rule not in ALLOCATIONS:
        raise InputError(f"`allocation` must be one of {', '.join(ALLOCATIONS)}, got {rule!r}")
    present = sizes > 0
    if not present.any():
        raise InputError("the map has no pixels in any stratum: nothing to sample")
    strata = int(present.sum())
    floor = minimum if rule == "compromise" else 0
    if floor * strata > n:
        raise InputError(f"`n` {n} cannot give {strata} strata `min_per_stratum` {minimum} units each: raise `n` "
                         f"to at least {floor * strata} or lower `min_per_stratum`")
    if rule == "equal":
        out = np.where(present, n // strata, 0) + _remainder(n - (n // strata) * strata, present)
    else:
        out = _proportional_with_floor(n, sizes, floor)
    return np.minimum(out, sizes).astype(np.int64)


def _remainder(extra: int, present: np.ndarray) -> np.ndarray:
    out = np.zeros(len(present), np.int64)
    out[np.flatnonzero(present)[:extra]] = 1
    return out


def _proportional_with_floor(n: int, sizes: np.ndarray, floor: int) -> np.ndarray:
    """Proportional to size; strata whose share is under `floor` (or their size) get that, and the rest is
    re-shared among the others until no share is under its floor. Largest remainders round to n."""
    need = np.minimum(np.where(sizes > 0, floor, 0), sizes).astype(np.float64)
    fixed = np.zeros(len(sizes), bool)
    while True:
        free = (sizes > 0) & ~fixed
        budget = n - need[fixed].sum()
        share = np.where(free, sizes / max(sizes[free].sum(), 1) * budget, 0.0)
        low = free & (share < need)
        if not low.any():
            break
        fixed |= low
    exact = np.where(fixed, need, share)
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out))
    out[order[: int(round(exact.sum())) - int(out.sum())]] += 1
    return out
