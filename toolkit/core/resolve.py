"""A scene argument resolved into a `SceneSource`: band files, a STAC item, a URL or a local raster file."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .sources import DEFAULT_CHANNELS, HrefMap, SceneSource, band_files_source, gdal_path, is_band_spec, is_remote
from .stac import is_stac, stac_source


def scene_source(spec, channels: tuple[str, ...] | None = None, hrefs: HrefMap = HrefMap()) -> SceneSource:
    """Resolve a scene argument into something to open. `channels`: the names the model's input bands have
    in band files and STAC items (default red, green, blue)."""
    text = str(spec)
    if is_band_spec(text):
        return band_files_source(text, channels or DEFAULT_CHANNELS, hrefs)
    if is_stac(text):
        return stac_source(text, channels or DEFAULT_CHANNELS, hrefs)
    href = hrefs.apply(text)
    if is_remote(href):
        return SceneSource(text, text, gdal_path(href))
    path = Path(href)
    if not path.exists():
        raise InputError(f"scene {text} does not exist")
    if path.is_dir():
        raise InputError(f"scene {text} is a directory, not a raster file")
    return SceneSource(text, text, str(path), files=[path])
