"""The local model store: where bundles go by default and which one is LATEST."""

from __future__ import annotations

from pathlib import Path

from .atomic import write_text_atomic
from .bundle import BUNDLE_FILE
from .errors import InputError

DEFAULT_STORE = Path("models")


def latest_path(store: Path = DEFAULT_STORE) -> Path:
    return Path(store) / "LATEST"


def set_latest(bundle: Path, store: Path = DEFAULT_STORE) -> None:
    write_text_atomic(latest_path(store), str(Path(bundle).resolve()) + "\n")


def resolve_bundle(model_dir: str | Path | None, store: Path = DEFAULT_STORE) -> Path:
    """The bundle directory a command should use: the given one, or the one LATEST names."""
    origin = ""
    if model_dir is None:
        latest = latest_path(store)
        if not latest.is_file():
            raise InputError(f"no model given and {latest} does not exist: run lut finetune first, or name a bundle "
                             "(--model BUNDLE; lut export BUNDLE)")
        model_dir = latest.read_text().strip()
        origin = f" (named by {latest}: name another bundle, or fine-tune again to renew it)"
    path = Path(model_dir)
    if not path.exists():
        raise InputError(f"model directory {path} does not exist{origin}")
    if not path.is_dir():
        raise InputError(f"{path} is a file{origin}; pass the model bundle directory that holds lut.json")
    if not (path / BUNDLE_FILE).is_file():
        raise InputError(f"{path} is not a lut model bundle (no {BUNDLE_FILE}){origin}")
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file, read in 4 MB chunks: which model or map exactly a record refers to."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
