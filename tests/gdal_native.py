"""Read a raster the way GDAL's own tools (gdalinfo, QGIS) do: through the GDAL C API, PAM sidecars included.

rasterio exposes colour tables and colour interpretation but not category names or attribute tables, so
the tests call the libgdal that rasterio already loaded (the same library, so no second GDAL) with ctypes.
"""

from __future__ import annotations

import ctypes
import glob
from pathlib import Path

import rasterio

_LIB = None


def _gdal() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        libs = Path(rasterio.__file__).parent.parent / "rasterio.libs"
        candidates = sorted(glob.glob(str(libs / "libgdal*.so*"))) or ["libgdal.so"]  # wheel, else system GDAL
        lib = ctypes.CDLL(candidates[0])  # already loaded by rasterio: dlopen hands back the same library
        lib.GDALAllRegister()
        lib.GDALOpen.restype = ctypes.c_void_p
        lib.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.GDALClose.argtypes = [ctypes.c_void_p]
        lib.GDALGetRasterBand.restype = ctypes.c_void_p
        lib.GDALGetRasterBand.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p)
        lib.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
        lib.GDALGetRasterColorInterpretation.argtypes = [ctypes.c_void_p]
        lib.GDALGetDefaultRAT.restype = ctypes.c_void_p
        lib.GDALGetDefaultRAT.argtypes = [ctypes.c_void_p]
        lib.GDALRATGetRowCount.argtypes = [ctypes.c_void_p]
        lib.GDALRATGetColumnCount.argtypes = [ctypes.c_void_p]
        lib.GDALRATGetNameOfCol.restype = ctypes.c_char_p
        lib.GDALRATGetNameOfCol.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.GDALRATGetValueAsString.restype = ctypes.c_char_p
        lib.GDALRATGetValueAsString.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.GDALGetDescription.restype = ctypes.c_char_p
        lib.GDALGetDescription.argtypes = [ctypes.c_void_p]
        _LIB = lib
    return _LIB


# gdal.h GDALColorInterp
COLOR_INTERP = {0: "undefined", 1: "gray", 2: "palette", 6: "alpha"}


def read_band_legend(path: Path, band: int = 1) -> dict:
    """Category names, attribute table (column -> values), colour interpretation and description of a band."""
    lib = _gdal()
    ds = lib.GDALOpen(str(path).encode(), 0)
    assert ds, f"GDAL cannot open {path}"
    try:
        b = lib.GDALGetRasterBand(ds, band)
        # first: the GTiff driver loads the .aux.xml lazily, on calls such as this one
        interp = COLOR_INTERP.get(lib.GDALGetRasterColorInterpretation(b), "other")
        names_ptr = lib.GDALGetRasterCategoryNames(b)
        names = []
        if names_ptr:
            i = 0
            while names_ptr[i] is not None:
                names.append(names_ptr[i].decode())
                i += 1
        table: dict[str, list[str]] = {}
        rat = lib.GDALGetDefaultRAT(b)
        if rat:
            for col in range(lib.GDALRATGetColumnCount(rat)):
                name = lib.GDALRATGetNameOfCol(rat, col).decode()
                table[name] = [lib.GDALRATGetValueAsString(rat, row, col).decode()
                               for row in range(lib.GDALRATGetRowCount(rat))]
        description = (lib.GDALGetDescription(b) or b"").decode()
        return {"categories": names, "rat": table, "colorinterp": interp, "description": description}
    finally:
        lib.GDALClose(ds)
