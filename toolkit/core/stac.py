"""STAC Items as scenes, read with pystac.

For each channel the model takes (red, green, blue by default) lut picks the asset whose `eo:bands` common
name (or band name) matches, else the asset of that key, else a Sentinel-2 or Landsat band name of that
colour (`B04`, `B4`: older catalogues such as Earth Search's sentinel-s2-l2a-cogs carry no eo:bands on their
assets). A mask asset (`SCL`, `qa_pixel`, `BQA`) is used as the scene's mask unless `use_mask=False`.

Scale and offset, first that applies: the asset's `raster:bands`; USGS Landsat Collection 2 Level-2's
documented scale (USGS items omit raster:bands); the Sentinel-2 processing baseline (offset -1000 from
04.00 unless `earthsearch:boa_offset_applied`).
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .masks import rule_for_name
from .provider_radiometry import Radiometry, landsat_c2_l2, sentinel2_l2a
from .sources import BandInput, HrefMap, SceneSource, gdal_path, is_remote, stack_source

#: band names of the two missions whose older catalogues lack common names on assets
BAND_NAMES = {
    "sentinel-2": {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "nir08": "B8A", "swir16": "B11",
                   "swir22": "B12", "coastal": "B01", "rededge": "B05"},
    "landsat": {"coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "nir08": "B5", "nir": "B5",
                "swir16": "B6", "swir22": "B7"},
}
ALIASES = {"nir": "nir08", "nir08": "nir"}


def is_stac(text: str) -> bool:
    """A JSON file or URL, or a STAC API item URL (`.../collections/C/items/ID`, which has no suffix)."""
    base = str(text).split("#", 1)[0].split("?", 1)[0].lower()
    return base.endswith((".json", ".geojson")) or (is_remote(base) and "/items/" in base)


def read_items(text: str) -> list:
    """The Items a JSON file or URL holds (one Item, or an ItemCollection); `#ID` picks one of them."""
    import pystac

    base, _, item_id = str(text).partition("#")
    remote = is_remote(base)
    if not remote and not Path(base).is_file():
        raise InputError(f"STAC item {base} does not exist")
    try:
        data = _stac_io(remote).read_json(base)
    except Exception as exc:  # noqa: BLE001 - pystac raises a bare Exception for an unreadable URL
        raise InputError(f"STAC item {base} cannot be read ({exc}): check the path or URL") from exc
    try:
        if data.get("type") == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
        elif data.get("type") == "Feature":
            items = [pystac.Item.from_dict(data, preserve_dict=False)]
        else:
            raise InputError(f"{base} is not a STAC Item or ItemCollection (its type is {data.get('type')!r})")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{base} is not a valid STAC Item ({exc})") from exc
    for item in items:  # relative asset hrefs resolve against where the item was read from
        item.set_self_href(base if remote else str(Path(base).resolve()))
    if item_id:
        items = [i for i in items if i.id == item_id]
        if not items:
            raise InputError(f"{base} holds no item with id {item_id}")
    return items


def _stac_io(remote: bool):
    """pystac's reader; for URLs one that retries what servers say is temporary (429, 502-504), as many times
    as GDAL does for the assets (GDAL_HTTP_MAX_RETRY)."""
    import os

    import pystac
    from pystac.stac_io import RetryStacIO
    from urllib3.util import Retry

    from .raster import REMOTE_OPTIONS

    if not remote:
        return pystac.StacIO.default()
    tries = int(os.environ.get("GDAL_HTTP_MAX_RETRY", REMOTE_OPTIONS["GDAL_HTTP_MAX_RETRY"]))
    delay = float(os.environ.get("GDAL_HTTP_RETRY_DELAY", REMOTE_OPTIONS["GDAL_HTTP_RETRY_DELAY"]))
    return RetryStacIO(retry=Retry(total=tries, backoff_factor=delay, status_forcelist=(429, 500, 502, 503, 504)))


def item_specs(text: str) -> list[str]:
    """One scene argument per item: the file itself for one Item, `file#ID` for each item of a collection."""
    items = read_items(text)
    if len(items) == 1 and "#" not in text:
        return [text]
    base = text.split("#", 1)[0]
    return [f"{base}#{item.id}" for item in items]


def stac_source(text: str, channels: tuple[str, ...], hrefs: HrefMap) -> SceneSource:
    items = read_items(text)
    if len(items) != 1:
        raise InputError(f"{text} holds {len(items)} items: map them with -o DIR, or pick one as {text}#ITEM_ID")
    item = items[0]
    mission = _mission(item.properties)
    inputs, missing = [], []
    for channel in channels:
        found = _asset_for(item, channel, mission)
        if found is None:
            missing.append(channel)
            continue
        key, band = found
        asset = item.assets[key]
        href = hrefs.apply(asset.get_absolute_href() or asset.href)
        inputs.append(BandInput(channel, gdal_path(href), band + 1, _radiometry(item, asset, band),
                                _nodata(asset, band)))
    if missing:
        have = ", ".join(sorted(item.assets))
        raise InputError(f"STAC item {text} has no asset for channel(s) {', '.join(missing)} (assets: {have}): "
                         "pass `channels` with the item's band names, or use an item with these bands")
    base = text.split("#", 1)[0]
    files = [Path(p) for p in [base, *(b.path for b in inputs)] if not is_remote(p)]
    source = stack_source(text, f"{text} ({item.id})", inputs, files)
    mask = _mask_asset(item)
    if mask is not None:
        source.mask_path = gdal_path(hrefs.apply(item.assets[mask].get_absolute_href() or item.assets[mask].href))
        source.mask_rule = rule_for_name(mask)
        if not is_remote(source.mask_path):
            source.files.append(Path(source.mask_path))
    return source


def _mission(properties: dict) -> str | None:
    platform = (str(properties.get("platform", "")) + str(properties.get("constellation", ""))).lower()
    if "sentinel" in platform:
        return "sentinel-2"
    if "landsat" in platform:
        return "landsat"
    return None


def _eo_bands(asset) -> list:
    from pystac.extensions.eo import EOExtension

    try:
        return list(EOExtension.ext(asset).bands or [])
    except Exception:  # noqa: BLE001 - an item that does not declare eo has no band names
        return []


def _asset_for(item, channel: str, mission: str | None) -> tuple[str, int] | None:
    """(asset key, 0-based band) for a channel: single-band assets first, then bands of multi-band ones."""
    wanted = {channel, ALIASES.get(channel, channel)}
    candidates = []
    for key, asset in item.assets.items():
        bands = _eo_bands(asset)
        for i, b in enumerate(bands):
            if (b.common_name or "").lower() in wanted or (b.name or "").lower() == channel:
                candidates.append((len(bands), (b.common_name or "").lower() != channel, key, i))
    if candidates:
        _, _, key, band = min(candidates)
        return key, band
    names = [channel, BAND_NAMES.get(mission or "", {}).get(channel, "")]
    for name in filter(None, names):
        for key in item.assets:
            if key.lower() == name.lower():
                return key, 0
    return None


def _raster_band(asset, band: int):
    from pystac.extensions.raster import RasterExtension

    try:
        bands = RasterExtension.ext(asset).bands or []
    except Exception:  # noqa: BLE001 - no raster extension declared
        return None
    return bands[band] if band < len(bands) else None


def _nodata(asset, band: int) -> float | None:
    info = _raster_band(asset, band)
    value = None if info is None else info.nodata
    return None if value is None else float(value)


def _radiometry(item, asset, band: int) -> Radiometry | None:
    info = _raster_band(asset, band)
    if info is not None and (info.scale is not None or info.offset is not None):
        scale = 1.0 if info.scale is None else float(info.scale)
        offset = 0.0 if info.offset is None else float(info.offset)
        return Radiometry(scale, offset, "STAC raster:bands scale/offset")
    return landsat_c2_l2(item.properties, item.collection_id) or sentinel2_l2a(item.properties)


def _mask_asset(item) -> str | None:
    for key in item.assets:
        if rule_for_name(key) is not None:
            return key
    return None
