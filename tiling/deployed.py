"""The exported model a scene is classified with: which ONNX file, its classes, size and normalisation."""

from __future__ import annotations

import functools
import threading

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lut.export.runtime import SessionOptions, gpu_usable, open_session, session_device
from lut.export.uint8_input import FLOAT_INPUT, MODEL_INPUT, U8_INPUT, rule_inputs
from lut.toolkit.core.bundle import Bundle, ChipInfo
from lut.toolkit.core.errors import InputError
from lut.toolkit.core.formats import MAP_PRECISIONS
from lut.export.mlm import read_mlm
from lut.toolkit.core.radiometry import BandRule
from lut.toolkit.core.hash_cache import cached_sha256
from lut.toolkit.core.store import DEFAULT_STORE, resolve_bundle

from .uint8_file import open_uint8_session



@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return cached_sha256(Path(path))


@dataclass
class DeployedModel:
    """An exported model ready to map with: its classes, input size and normalisation, and the one ONNX
    Runtime session a scene needs, built by `prepare` before the scene's first window is read."""

    path: Path  # the model file (float input)
    precision: str
    classes: list[str]
    image_size: int
    mean: np.ndarray
    std: np.ndarray
    rule: BandRule | None
    chip: ChipInfo | None = None
    why: str = ""  # why this precision was picked
    open_device: str = "auto"
    options: SessionOptions = field(default_factory=SessionOptions)
    uint8_path: Path | None = None  # the uint8-input variant lut export wrote (None: built when first needed)
    mlm: dict | None = None  # the export's STAC MLM Item (onnx/mlm.json), None for exports made before it
    _session: object | None = None
    _kind: str | None = None  # what the open session takes: "float" or "uint8"
    _hash: object | None = None  # Future of the ONNX file's SHA-256
    _rules: dict = field(default_factory=dict)  # band rule -> its graph inputs

    @property
    def device(self) -> str:
        if self._session is not None:
            return session_device(self._session)
        return "cuda" if self.open_device != "cpu" and gpu_usable() else "cpu"

    @property
    def sha256(self) -> str:
        """The ONNX file's SHA-256, which identifies the model in outputs (once per process and file)."""
        return self.hash_in_background().result()

    def hash_in_background(self):
        """Start hashing the ONNX file on a thread (it overlaps the run instead of adding to it); a Future."""
        from concurrent.futures import Future

        if self._hash is None:
            self._hash = Future()
            stat = self.path.stat()

            def run(future=self._hash) -> None:
                try:
                    future.set_result(_file_sha256(str(self.path), stat.st_size, stat.st_mtime_ns))
                except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the hash
                    future.set_exception(exc)

            threading.Thread(target=run, daemon=True, name="lut-hash").start()
        return self._hash

    def prepare(self, uint8: bool) -> None:
        """Build the session a scene needs: the uint8-input variant for uint8 windows at the model's size,
        else the float model. One session, so the weights are in memory once; kept for the next scene
        that needs the same."""
        kind = "uint8" if uint8 else "float"
        if self._kind == kind:
            return
        self._session = self._kind = None  # the old session's weights go before the new ones load

        def opener(path: Path):
            return open_session(path, self.open_device, self.options)

        if uint8:
            self.hash_in_background()
            self._session = open_uint8_session(self.path, self.uint8_path, self.mean, self.std,
                                               lambda: self.sha256, opener)
        else:
            self._session = opener(self.path)
        self._kind = kind
        outputs = self._session.get_outputs()[0].shape[-1]
        if isinstance(outputs, int) and outputs != len(self.classes):
            raise InputError(f"{self.path.name} predicts {outputs} classes but its lut.json names "
                             f"{len(self.classes)}; re-export the bundle")

    def logits(self, batch: np.ndarray) -> np.ndarray:
        self.prepare(uint8=False)
        return self._session.run(None, {MODEL_INPUT: batch})[0]

    def logits_uint8(self, rule: BandRule, pixels: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Logits of uint8 windows (and float-prepared ones after them) with `rule` applied in the graph."""
        self.prepare(uint8=True)
        key = json.dumps(rule.to_dict(), sort_keys=True)
        if key not in self._rules:
            self._rules[key] = rule_inputs(rule)
        return self._session.run(None, {U8_INPUT: pixels[0], FLOAT_INPUT: pixels[1], **self._rules[key]})[0]


def onnx_dir_of(model: str | Path | None, store: Path = DEFAULT_STORE) -> Path:
    """Accept an onnx/ folder or a bundle that holds one; default: the bundle models/LATEST names."""
    if model is not None and (Path(model) / "model.onnx").is_file():
        return Path(model)
    bundle = resolve_bundle(model, store)
    Bundle.load(bundle, ("model", "onnx"))  # a backbone is refused here, with the advice to fine-tune it
    onnx_dir = bundle / "onnx"
    if not (onnx_dir / "model.onnx").is_file():
        raise InputError(f"{bundle} has no ONNX export; run lut export {bundle} first")
    return onnx_dir


def _gate_note(bundle: Bundle, variant: str) -> tuple[bool, str]:
    gate = bundle.gates.get(variant)
    if gate is None:
        return False, f"{variant} was not measured at export (re-export to gate it)"
    verdict = ">=" if gate.passed else "<"
    return gate.passed, f"{variant} {gate.measure} {gate.value:.3f} {verdict} {gate.goal:g} at export"


def pick_file(onnx_dir: Path, bundle: Bundle, precision: str, gpu: bool) -> tuple[str, Path, str]:
    """The variant to run and why. `--precision auto` never picks a variant whose export gate failed."""
    files = bundle.onnx or {"fp32": "model.onnx"}
    if precision not in MAP_PRECISIONS:
        raise InputError(f"`precision` must be one of {', '.join(MAP_PRECISIONS)}")
    if precision == "auto":
        wanted = "fp16" if gpu else "int8"
        if wanted not in files:
            precision, why = "fp32", f"no {wanted} export"
        else:
            passed, note = _gate_note(bundle, wanted)
            precision, why = (wanted, note) if passed else ("fp32", note)
        why = f"auto on {'GPU' if gpu else 'CPU'}: {why}"
    elif precision in files:
        passed, note = _gate_note(bundle, precision) if precision != "fp32" else (True, "asked for")
        why = note if passed else f"asked for, although {note}"
    if precision not in files:
        raise InputError(f"{onnx_dir} has no {precision} model (it has {', '.join(sorted(files))}); "
                       f"export it with lut export `quantize` / `fp16`")
    return precision, onnx_dir / files[precision], why


def load_deployed(model: str | Path | None, precision: str = "auto", device: str = "auto",
                  store: Path = DEFAULT_STORE, options: SessionOptions | None = None) -> DeployedModel:
    """Open an exported model for mapping, once for many scenes. No session is built yet: `prepare` builds
    the one a scene needs (float or uint8 input) before its first window is read.

    Args:
        model: a bundle or its onnx/ folder; None takes the one `store/LATEST` names.
        precision: auto, fp32, int8 or fp16 (auto: FP16 on a GPU, INT8 on a CPU when it passed its gate).
        device: auto, cpu or cuda (cuda without a usable GPU is an error, never a silent CPU run).
        store: the model store that LATEST lives in.
        options: ONNX Runtime's threads, spinning and graph optimisation (SessionOptions' defaults).

    Returns:
        The model's file, classes, input size, band rule and why this precision was chosen.

    Raises:
        InputError: no export, an unknown precision or device, or a variant that cannot run here.
        FormatError: a folder that is not a lut export.
    """
    options = options or SessionOptions()
    options.check()
    onnx_dir = onnx_dir_of(model, store)
    bundle = Bundle.load(onnx_dir, ("onnx",))
    try:
        pre = json.loads((onnx_dir / "preprocessor_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{onnx_dir} is not a complete lut export: {exc}") from exc
    if precision == "int8" and device == "cuda":
        raise InputError("INT8 models run on the CPU only; on CUDA use `precision` fp16 (or fp32), or drop "
                       "`device` cuda")
    gpu = device != "cpu" and gpu_usable()
    if device == "cuda" and not gpu:
        raise InputError("`device` cuda was asked for but ONNX Runtime sees no usable CUDA GPU here; "
                       "use `device` cpu or auto")
    precision, path, why = pick_file(onnx_dir, bundle, precision, gpu)
    if not path.is_file():
        raise InputError(f"ONNX model {path} does not exist; export the bundle again with lut export")
    variant = bundle.uint8_input.get(precision)
    return DeployedModel(
        path=path, precision=precision, classes=list(bundle.classes), image_size=int(bundle.image_size),
        mean=np.asarray(pre.get("image_mean", [0.5] * 3), np.float32)[:, None, None],
        std=np.asarray(pre.get("image_std", [0.5] * 3), np.float32)[:, None, None],
        rule=bundle.band_rule, chip=bundle.chip, why=why, open_device="cpu" if precision == "int8" else device,
        options=options, uint8_path=None if variant is None else onnx_dir / variant, mlm=read_mlm(onnx_dir),
    )
