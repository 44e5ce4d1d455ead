"""`lut.json`: the one typed, versioned record of what lut wrote into a directory.

Three kinds of directory carry it: a fine-tuned **model** bundle (`lut finetune`), a pretrained
**backbone** (`lut pretrain`) and an **onnx** export (`lut export`, inside a model bundle). Every reader
goes through `Bundle.load`, which checks the format and version, so a file from another tool or another
lut version is refused with one line instead of a KeyError deep inside a command.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import FormatError, LutError
from .radiometry import BandRule
from .formats import BUNDLE_FILE, BUNDLE_FORMAT as FORMAT

VERSION = 2
KINDS = ("model", "backbone", "onnx")
#: version-1 files named their kind in the format string
LEGACY_FORMATS = {"lut-bundle/1": "model", "lut-backbone/1": "backbone"}


@dataclass
class ChipInfo:
    """The training chips' native side in pixels and ground sampling distance in metres (None: unknown)."""

    size_px: int | None = None
    gsd_m: float | None = None
    source: str = "unknown"  # where gsd_m came from: "geotiff", "--gsd", "synthetic", "unknown"

    @classmethod
    def from_dict(cls, data: dict | None) -> ChipInfo | None:
        if not data:
            return None
        return cls(size_px=data.get("size_px"), gsd_m=data.get("gsd_m"), source=str(data.get("source", "unknown")))


@dataclass
class Gate:
    """An export quality gate: a variant's measured agreement with PyTorch against its goal."""

    passed: bool
    measure: str
    value: float
    goal: float

    @classmethod
    def from_dict(cls, data: dict) -> Gate:
        return cls(bool(data["passed"]), str(data["measure"]), float(data["value"]), float(data["goal"]))


@dataclass
class Bundle:
    kind: str
    image_size: int
    classes: list[str] = field(default_factory=list)
    band_rule: BandRule | None = None
    chip: ChipInfo | None = None
    backbone: dict = field(default_factory=dict)
    strategy: dict = field(default_factory=dict)
    data: str | None = None
    data_source: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    onnx: dict[str, str] = field(default_factory=dict)  # variant -> file name
    gates: dict[str, Gate] = field(default_factory=dict)  # variant -> its export gate
    uint8_input: dict[str, str] = field(default_factory=dict)  # variant -> its uint8-input file (lut export)
    pretrain: dict = field(default_factory=dict)  # backbones: method, sources, split guard, config, history

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FormatError(f"unknown lut.json kind {self.kind!r}")

    # -- reading and writing -------------------------------------------------------------------
    def to_dict(self) -> dict:
        out: dict = {"format": FORMAT, "format_version": VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "band_rule":
                value = value.to_dict() if value is not None else None
            elif f.name == "chip":
                value = asdict(value) if value is not None else None
            elif f.name == "gates":
                value = {k: asdict(g) for k, g in value.items()}
            out[f.name] = value
        return out

    def save(self, directory: Path) -> Path:
        path = Path(directory) / BUNDLE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def from_dict(cls, data: dict, where: str = BUNDLE_FILE) -> Bundle:
        kind = _kind_of(data, where)
        try:
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            values["kind"] = kind
            if kind == "backbone" and "pretrain" not in data:  # version 1 kept these at the top level
                values["pretrain"] = {k: data[k] for k in ("method", "precision", "local_size", "sources",
                                                           "split_guard", "config", "history") if k in data}
            if kind == "onnx" and not values.get("onnx"):
                values["onnx"] = {"fp32": "model.onnx"}
            values["band_rule"] = BandRule.from_dict(data["band_rule"]) if data.get("band_rule") else None
            values["chip"] = ChipInfo.from_dict(data.get("chip"))
            values["gates"] = {k: Gate.from_dict(g) for k, g in (data.get("gates") or {}).items()}
            values["image_size"] = int(data["image_size"])
            values["classes"] = [str(c) for c in data.get("classes") or []]
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{where} is incomplete or damaged ({type(exc).__name__}: {exc}); "
                           "write it again with the lut command that made it") from exc

    @classmethod
    def load(cls, directory: Path, kinds: tuple[str, ...] = KINDS) -> Bundle:
        """Read DIR/lut.json; refuse another format, another version or an unexpected kind."""
        directory = Path(directory)
        path = directory / BUNDLE_FILE
        if not directory.is_dir():
            raise FormatError(f"{directory} is not a directory" if directory.exists()
                           else f"directory {directory} does not exist")
        if not path.is_file():
            raise FormatError(f"{directory} is not a lut bundle (no {BUNDLE_FILE})")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise FormatError(f"{path} is not a lut bundle file")
        bundle = cls.from_dict(data, str(path))
        if bundle.kind not in kinds:
            raise FormatError(wrong_kind_message(directory, bundle.kind, kinds))
        return bundle


def _kind_of(data: dict, where: str) -> str:
    fmt = data.get("format")
    if fmt in LEGACY_FORMATS:
        legacy = LEGACY_FORMATS[fmt]
        return "onnx" if legacy == "model" and "onnx" in data else legacy
    if fmt != FORMAT:
        raise FormatError(f"{where} was not written by lut (format {fmt!r})" if fmt is not None
                       else f"{where} has no format field: it was not written by lut")
    version = data.get("format_version")
    if not isinstance(version, int) or version > VERSION:
        raise FormatError(f"{where} is lut bundle format version {version}, newer than this lut reads "
                       f"({VERSION}); upgrade lut")
    kind: str | None = data.get("kind")
    if kind not in KINDS:
        raise FormatError(f"{where} has an unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    return kind


def wrong_kind_message(directory: Path, kind: str, wanted: tuple[str, ...]) -> str:
    if kind == "backbone":
        return (f"{directory} is a pretrained backbone: it has no classes yet; fine-tune it first "
                f"(lut finetune --backbone {directory})")
    if kind == "model" and "onnx" in wanted:
        return f"{directory} has no ONNX export; run lut export {directory} first"
    if kind == "onnx":
        return f"{directory} is an ONNX export; pass the model bundle that holds it ({directory.parent})"
    return f"{directory} is a lut {kind} directory, not a {' or '.join(wanted)}"


def is_lut_directory(directory: Path, kinds: tuple[str, ...] = KINDS) -> bool:
    """Whether DIR holds a lut.json of one of `kinds` (any version lut reads)."""
    try:
        Bundle.load(directory, kinds)
    except LutError:
        return False
    return True
