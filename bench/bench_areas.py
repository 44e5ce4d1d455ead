"""Which area lut reports, against the ellipsoidal area QGIS measures, on the shared real scenes.

    python bench/bench_areas.py

lut's km² in a projected CRS are pixel counts times the grid's pixel area (the projected plane). QGIS's
ellipsoidal measure is GeographicLib's geodesic area on WGS84 (pyproj's `Geod`, the same library), here of
each scene's footprint with its edges densified to 100 vertices each (the grid's edges are straight lines
in the projection, not geodesics). The ratio is the projection's area scale over the scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCENES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "scenes"


def main() -> None:
    import rasterio
    from pyproj import Geod
    from rasterio.warp import transform

    print(f"{'scene':<36} {'CRS':<11} {'lut km2 (grid)':>15} {'ellipsoid km2':>14} {'difference':>11}")
    for path in sorted(SCENES.glob("*.tif")):
        with rasterio.open(path) as src:
            t, w, h = src.transform, src.width, src.height
            grid_km2 = abs(t.a * t.e) * w * h / 1e6
            steps = np.linspace(0, 1, 100, endpoint=False)
            cols = np.concatenate([steps * w, np.full(100, w), (1 - steps) * w, np.zeros(100)])
            rows = np.concatenate([np.zeros(100), steps * h, np.full(100, h), (1 - steps) * h])
            xs, ys = t.c + cols * t.a, t.f + rows * t.e
            lon, lat = transform(src.crs, "EPSG:4326", xs.tolist(), ys.tolist())
            crs = src.crs.to_string()
        area, _ = Geod(ellps="WGS84").polygon_area_perimeter(lon, lat)
        ellipsoid_km2 = abs(area) / 1e6
        print(f"{path.name:<36} {crs:<11} {grid_km2:>15.3f} {ellipsoid_km2:>14.3f} "
              f"{100 * (grid_km2 / ellipsoid_km2 - 1):>+10.3f}%")


if __name__ == "__main__":
    main()
