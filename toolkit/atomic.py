"""Write-then-rename helpers, so an interrupted command never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import LutError


def refuse_existing(target: Path, overwrite: bool, what: str = "output") -> None:
    if target.exists() and not overwrite:
        raise LutError(f"{what} {target} already exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_directory(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory that becomes `target` only if the block succeeds."""
    target = Path(target)
    refuse_existing(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: Path, overwrite: bool = False, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path that replaces `target` only if the block succeeds."""
    target = Path(target)
    refuse_existing(target, overwrite)
    if not target.parent.exists():
        raise LutError(f"output directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise LutError(f"output directory {target.parent} is not writable")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(target: Path, text: str) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(name, target)
