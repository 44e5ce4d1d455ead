"""What a scene argument names, and how lut opens it as one raster.

A scene is any of:

- a raster file GDAL reads (GeoTIFF, COG, VRT, ...), local or remote: `https://...`, `s3://bucket/key`,
  `gs://...`, `az://...` and GDAL's own `/vsi...` paths are read through GDAL's virtual file systems, window
  by window with HTTP range requests;
- band files of one scene: `red=B4.tif,green=B3.tif,blue=B2.tif` (channel=file, comma-separated; an
  optional `mask=QA.tif` names its quality band);
- a STAC Item (a JSON file or URL), or one item of an ItemCollection as `items.json#ITEM_ID` (see `stac.py`).

Band files and STAC assets are stacked as a GDAL VRT (kept in memory, never written) on the grid of the
finest band, holding exactly the model's channels in order, with the scale and offset their metadata gives
as each band's scale/offset. Every href goes through the `HrefMap` first, so items can point at mirrors,
requester-pays buckets or local copies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from .errors import FormatError, InputError
from .provider_radiometry import Radiometry, landsat_mtl
from .raster import NAME_TAG

REMOTE_SCHEMES = {"http://": "/vsicurl/", "https://": "/vsicurl/", "s3://": "/vsis3/", "gs://": "/vsigs/",
                  "az://": "/vsiaz/"}
DEFAULT_CHANNELS = ("red", "green", "blue")
_BAND_SPEC = re.compile(r"^[A-Za-z][A-Za-z0-9_]*=")


def is_remote(text: str) -> bool:
    return str(text).startswith(("/vsi", *REMOTE_SCHEMES))


def gdal_path(href: str) -> str:
    """A GDAL path for an href: URLs through /vsicurl/, /vsis3/, /vsigs/, /vsiaz/; local paths unchanged."""
    for scheme, prefix in REMOTE_SCHEMES.items():
        if href.startswith(scheme):
            return prefix + (href if prefix == "/vsicurl/" else href[len(scheme):])
    return href[len("file://"):] if href.startswith("file://") else href


@dataclass(frozen=True)
class HrefMap:
    """Prefix rewrites applied to every href before it is read: `OLD=NEW`, the longest matching OLD wins."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, items) -> HrefMap:
        rules = []
        for item in items or ():
            old, sep, new = str(item).partition("=")
            if not sep or not old:
                raise InputError(f"`href_map` takes OLD=NEW (an href prefix and its replacement), got {item!r}")
            rules.append((old, new))
        return cls(tuple(rules))

    def apply(self, href: str) -> str:
        matches = [(old, new) for old, new in self.rules if href.startswith(old)]
        if not matches:
            return href
        old, new = max(matches, key=lambda rule: len(rule[0]))
        return new + href[len(old):]


@dataclass(frozen=True)
class BandInput:
    """One channel of a stacked scene: band `band` of the raster at `path` (a GDAL path)."""

    channel: str
    path: str
    band: int = 1
    radiometry: Radiometry | None = None
    nodata: float | None = None


@dataclass
class SceneSource:
    """A scene ready to open: `path` is a GDAL path or VRT text; `files` the local inputs lut must never
    overwrite; `mask` the quality raster that comes with it (a STAC mask asset or `mask=`), if any."""

    spec: str
    name: str
    path: str
    files: list[Path] = field(default_factory=list)
    channels: tuple[str, ...] | None = None  # the stack's bands, in order; None for a single raster file
    mask_path: str | None = None
    mask_rule: str | None = None
    radiometry_source: str | None = None  # who gave the stack's scale/offset

    def open(self):
        from .scene import open_path

        return open_path(self.path, self.name)


def is_band_spec(text: str) -> bool:
    return bool(_BAND_SPEC.match(str(text))) and not Path(text).exists()


def parse_band_spec(text: str) -> dict[str, str]:
    """`red=a.tif,green=b.tif,...` -> {channel: file}; InputError naming the syntax otherwise."""
    out: dict[str, str] = {}
    for part in str(text).split(","):
        channel, sep, path = part.partition("=")
        if not sep or not channel.strip() or not path.strip():
            raise InputError(f"band files {text!r}: write channel=FILE pairs separated by commas, e.g. "
                             "red=B4.tif,green=B3.tif,blue=B2.tif")
        key = channel.strip().lower()
        if key in out:
            raise InputError(f"band files {text!r} name channel {key} twice")
        out[key] = path.strip()
    return out


def band_files_source(text: str, channels: tuple[str, ...], hrefs: HrefMap) -> SceneSource:
    files = parse_band_spec(text)
    missing = [c for c in channels if c not in files]
    if missing:
        raise InputError(f"band files {text!r} lack channel(s) {', '.join(missing)}: the model takes "
                         f"{','.join(channels)}; add them as channel=FILE (or pass `channels`)")
    inputs = []
    for channel in channels:
        href = hrefs.apply(files[channel])
        local = not is_remote(href)
        if local and not Path(href).is_file():
            raise InputError(f"band file {href} (channel {channel}) does not exist")
        radiometry = landsat_mtl(Path(href)) if local else None
        inputs.append(BandInput(channel, gdal_path(href), 1, radiometry))
    mask = files.get("mask")
    mask_path = None if mask is None else gdal_path(hrefs.apply(mask))
    paths = [p for p in [*(b.path for b in inputs), mask_path] if p is not None and not is_remote(p)]
    source = stack_source(text, text, inputs, [Path(p) for p in paths])
    source.mask_path = mask_path
    return source


def stack_source(spec: str, name: str, inputs: list[BandInput], files: list[Path]) -> SceneSource:
    """A VRT stacking `inputs` on the finest band's grid, with their scale/offset and nodata."""
    grids = [_band_grid(b, name) for b in inputs]
    crs = {g["crs"] for g in grids}
    if len(crs) > 1:
        raise InputError(f"the bands of {name} are in different CRSs ({', '.join(sorted(map(str, crs)))}); "
                         "reproject them to one CRS first")
    dtypes = {g["dtype"] for g in grids}
    if len(dtypes) > 1:
        raise InputError(f"the bands of {name} have different pixel types ({', '.join(sorted(dtypes))})")
    radiometry = {b.radiometry for b in inputs}
    if len(radiometry) > 1 and None in radiometry:
        raise InputError(f"only some bands of {name} have a scale and offset in their metadata")
    if len({(r.scale, r.offset) for r in radiometry if r is not None}) > 1:
        raise InputError(f"the bands of {name} have different scales or offsets; lut applies one to all")
    finest = min(grids, key=lambda g: abs(g["transform"].a))
    bands = [_vrt_band(i + 1, b, g, finest) for i, (b, g) in enumerate(zip(inputs, grids))]
    t = finest["transform"]
    xml = (f'<VRTDataset rasterXSize="{finest["width"]}" rasterYSize="{finest["height"]}">'
           f'<Metadata><MDI key="{NAME_TAG}">{escape(name)}</MDI></Metadata>'
           f'<SRS>{escape(finest["wkt"])}</SRS><GeoTransform>{", ".join(repr(v) for v in t.to_gdal())}'
           f'</GeoTransform>{"".join(bands)}</VRTDataset>')
    known = next(iter(radiometry))
    return SceneSource(spec, name, xml, files, tuple(b.channel for b in inputs),
                       radiometry_source=None if known is None else known.source)


def _band_grid(band: BandInput, name: str) -> dict:
    from .scene import open_path

    if not band.path.startswith("/vsi") and not Path(band.path).is_file():
        raise InputError(f"{name}: the file of channel {band.channel}, {band.path}, does not exist; point the "
                         "href at a copy with `href_map` OLD=NEW")
    with open_path(band.path, f"{name} (channel {band.channel})") as src:
        if band.band > src.count:
            raise InputError(f"{band.path} has {src.count} band(s); channel {band.channel} was to be band {band.band}")
        t = src.transform
        if t.b != 0 or t.d != 0:
            raise InputError(f"{band.path} is rotated; lut stacks north-up band files only")
        nodata = band.nodata if band.nodata is not None else src.nodatavals[band.band - 1]
        return {"transform": t, "width": src.width, "height": src.height, "crs": src.crs.to_string() if src.crs else "",
                "wkt": src.crs.to_wkt() if src.crs else "", "dtype": src.dtypes[band.band - 1], "nodata": nodata}


_GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
               "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def _vrt_band(index: int, band: BandInput, grid: dict, finest: dict) -> str:
    t, f = grid["transform"], finest["transform"]
    x = (t.c - f.c) / f.a
    y = (t.f - f.f) / f.e
    w, h = grid["width"] * t.a / f.a, grid["height"] * t.e / f.e
    nodata = "" if grid["nodata"] is None else f"<NoDataValue>{grid['nodata']!r}</NoDataValue>"
    r = band.radiometry
    scaling = "" if r is None else f"<Offset>{r.offset!r}</Offset><Scale>{r.scale!r}</Scale>"
    source_nodata = "" if grid["nodata"] is None else f"<NODATA>{grid['nodata']!r}</NODATA>"
    kind = "ComplexSource" if source_nodata else "SimpleSource"
    dtype = _GDAL_TYPES.get(grid["dtype"])
    if dtype is None:
        raise FormatError(f"{band.path} holds {grid['dtype']} pixels, which lut cannot stack")
    return (f'<VRTRasterBand dataType="{dtype}" band="{index}">{nodata}{scaling}'
            f"<Description>{escape(band.channel)}</Description><{kind}>"
            f'<SourceFilename relativeToVRT="0">{escape(band.path)}</SourceFilename>'
            f"<SourceBand>{band.band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{grid["width"]}" ySize="{grid["height"]}"/>'
            f'<DstRect xOff="{x!r}" yOff="{y!r}" xSize="{w!r}" ySize="{h!r}"/>{source_nodata}</{kind}>'
            "</VRTRasterBand>")
