"""Ground resolution: windows that cover the same ground as the training chips did.

A bundle records its chips' native side (pixels) and ground sampling distance (metres). A chip covered
`size_px * gsd_m` metres and was resized to the model's input, so a scene window must cover the same
metres: `size_px * gsd_m / scene_gsd` scene pixels, resized to the model's input on the fly. Within
`GSD_TOLERANCE` of the model's own input size, windows are read at the model's size unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from lut.toolkit.core.bundle import ChipInfo
from lut.toolkit.core.errors import InputError, warn

#: relative size difference under which a window is not resampled (resampling by < 10% changes little)
GSD_TOLERANCE = 0.10
#: enlarging scene windows by more than this factor invents detail the model never saw: refused
MAX_UPSAMPLE = 4.0


@dataclass(frozen=True)
class Footprint:
    window_px: int  # scene pixels per window side
    model_px: int  # what each window is resized to
    scene_gsd_m: float | None
    chip_gsd_m: float | None
    reason: str

    @property
    def resampled(self) -> bool:
        return self.window_px != self.model_px

    def to_dict(self) -> dict:
        return {"window_px": self.window_px, "model_px": self.model_px, "scene_gsd_m": self.scene_gsd_m,
                "chip_gsd_m": self.chip_gsd_m, "resampled": self.resampled, "reason": self.reason}


def plan_footprint(model_px: int, chip: ChipInfo | None, gsd: float | None, resample: bool,
                   scene: str = "the scene") -> Footprint:
    """How many scene pixels a window spans. `gsd`: the scene's (from its CRS, or --gsd)."""
    chip_gsd = chip.gsd_m if chip else None
    if not resample:
        return Footprint(model_px, model_px, gsd, chip_gsd, "--no-resample")
    if chip is None or not chip.size_px:
        warn("the bundle records no training chip size or ground resolution (an older lut made it); "
             "windows are not resampled")
        return Footprint(model_px, model_px, gsd, chip_gsd, "bundle without chip record")
    if chip_gsd is None or gsd is None:
        unknown = ("the bundle's training ground resolution is unknown (finetune --gsd records it for photo "
                   "folders)") if chip_gsd is None else f"{scene}'s ground resolution is unknown (pass --gsd)"
        warn(f"{unknown}; windows span the training chips' {chip.size_px} px, assuming the same resolution")
        window = chip.size_px
        reason = "unknown GSD: same pixel scale as the training chips"
    else:
        window = max(2, int(round(chip.size_px * chip_gsd / gsd)))
        reason = f"{chip.size_px} px x {chip_gsd:g} m chips on {gsd:g} m pixels"
        if model_px / window > MAX_UPSAMPLE:
            raise InputError(f"{scene} has {gsd:g} m pixels, much coarser than the training chips' {chip_gsd:g} m: "
                           f"a window covering their ground would be {window} px, enlarged "
                           f"{model_px / window:.0f}x. Classify imagery nearer {chip_gsd:g} m, or pass "
                           "`resample=False` to apply the model to windows of its own input size anyway")
    if abs(window / model_px - 1.0) <= GSD_TOLERANCE:
        return Footprint(model_px, model_px, gsd, chip_gsd, reason + f" (within {GSD_TOLERANCE:.0%}: not resampled)")
    return Footprint(window, model_px, gsd, chip_gsd, reason)
