"""Write-then-rename helpers, so an interrupted command never leaves a half-written output.

Temporary names are `.NAME.tmp-<pid>-<random>` beside the target: a later run on the same output removes
those whose process is gone (a kill -9 leftover), and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError, OutputFailed, OwnershipError

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-")


def temp_prefix(target: Path, kind: str = "tmp") -> str:
    return f".{Path(target).name}.{kind}-{os.getpid()}-"


def target_name(name: str) -> str:
    """The name a temporary (`.NAME.tmp-<pid>-xxx`) stands for; any other name as it is."""
    match = _TEMP.match(name)
    return match.group("name") if match else name


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove lut's own leftovers for `target` (temp files/dirs of processes that no longer run)."""
    return remove_stale_temps_for([target])


def remove_stale_temps_for(targets: list[Path]) -> list[Path]:
    """The same for many targets, listing each of their directories once."""
    by_dir: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        by_dir.setdefault(target.parent, set()).add(target.name)
    removed = []
    for directory, names in by_dir.items():
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            match = _TEMP.match(entry.name)
            if not match or match.group("name") not in names or _alive(int(match.group("pid"))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry)
    return removed


def refuse_existing(target: Path, overwrite: bool, what: str = "output") -> None:
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise OwnershipError(f"{what} {target} already exists; pass `overwrite=True` to replace it")


def check_writable_dir(directory: Path, create: bool = False) -> None:
    """The directory an output goes into exists (or can be made) and is writable."""
    directory = Path(directory)
    probe = directory
    while not probe.exists():
        if not create:
            raise InputError(f"output directory {directory} does not exist")
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{probe} is a file, so {directory} cannot be an output directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"output directory {probe} is not writable")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def normal_permissions(path: Path) -> None:
    """mkstemp/mkdtemp make 0600/0700; outputs get what the umask gives any new file or directory."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_umask())


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a group of renames runs, so outputs change together or not at all."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # not the main thread, or no such call here
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def atomic_directory(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory that becomes `target` only if the block succeeds.

    Callers check with `lut.toolkit.core.ownership` that an existing `target` is lut's before calling this."""
    target = Path(target)
    refuse_existing(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), dir=target.parent))
    try:
        yield tmp
        for path in (tmp, *tmp.rglob("*")):  # the folder and what libraries wrote into it (safetensors: 0600)
            if not path.is_symlink():
                normal_permissions(path)
        with deferred_signals():
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=temp_prefix(target, "old"), dir=target.parent))
                os.replace(target, old / target.name)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def new_temp_file(target: Path, suffix: str | None = None) -> Path:
    target = Path(target)
    check_writable_dir(target.parent)
    remove_stale_temps(target)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(target), suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_files(targets: list[Path], overwrite: bool = False) -> Iterator[list[Path]]:
    """Temporary siblings for several files that replace their targets together once the block succeeds
    (a map and its sidecars); on any failure every temporary is removed and no target changes."""
    targets = [Path(t) for t in targets]
    for target in targets:
        refuse_existing(target, overwrite)
    temps: list[Path] = []
    try:
        temps = [new_temp_file(t) for t in targets]
        yield temps
        for tmp in temps:
            normal_permissions(tmp)
        with deferred_signals():
            swap_group(temps, targets)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def swap_group(temps: list[Path], targets: list[Path]) -> None:
    """Replace every target by its temporary, all or nothing: the existing targets are first moved aside,
    then the new files moved in; a failed rename at any step puts every old file back (and removes the
    new ones placed so far) and raises naming the real file, never a temporary name."""
    aside: list[tuple[Path, Path]] = []  # (old file moved aside, its target)
    placed: list[Path] = []
    current = targets[0] if targets else Path()
    try:
        for target in targets:
            current = target
            if target.exists() or target.is_symlink():
                old = target.with_name(f"{temp_prefix(target, 'old')}{uuid.uuid4().hex[:8]}")
                os.replace(target, old)
                aside.append((old, target))
        for tmp, target in zip(temps, targets):
            current = target
            os.replace(tmp, target)
            placed.append(target)
    except OSError as exc:
        for target in placed:
            with contextlib.suppress(OSError):
                target.unlink()
        for old, target in aside:
            with contextlib.suppress(OSError):
                os.replace(old, target)
        raise OutputFailed(f"{current} could not be replaced ({exc.strerror or exc}); nothing changed: every "
                           "output of the group is as it was") from exc
    for old, _ in aside:
        with contextlib.suppress(OSError):
            old.unlink()


@contextlib.contextmanager
def atomic_file(target: Path, overwrite: bool = False, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path that replaces `target` only if the block succeeds."""
    target = Path(target)
    refuse_existing(target, overwrite)
    tmp = new_temp_file(target, suffix)
    try:
        yield tmp
        normal_permissions(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(target: Path, text: str) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target, overwrite=True) as tmp:
        tmp.write_text(text)
