"""Lines that C libraries and child processes print straight to file descriptor 2, below Python, and that
lut reports itself or that a user cannot act on.

libtiff prints `_tiffWriteProc: No space left on device.` (and the like) to stderr from C when a write
fails; neither GDAL's error handler nor Python sees it. The failure itself reaches lut as an exception
and becomes its one `error:` line. Ray's C++ client prints a retry line every few seconds while it waits
for a cluster, and multiprocessing's resource tracker a note on leaked semaphores at exit. These lines
are dropped here: while a command runs, fd 2 is a pipe
that a thread copies to the real stderr, byte for byte, except complete lines that match NOISE. Partial
lines (progress bars redraw with `\\r`) go through at once unless they could be the start of such a line.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

from lut.toolkit.core import terminal

#: libtiff's own report of a failed write or seek for want of space (lut says it in its error line); Ray's
#: C++ retry notes while it waits for a cluster (lut checks the address first and says it in one line);
#: multiprocessing's leaked-semaphore note at exit (nothing a user can act on)
NOISE = re.compile(rb"^(?:(?:_tiff\w+Proc|TIFF\w+): .*(?:No space left on device|Disk quota exceeded)\.?"
                   rb"|\[\d{4}-\d\d-\d\d [\d:,]+ [IW] \d+ \d+\] (?:rpc_client\.h|gcs_\w+\.(?:cc|h)):\d+: .*"
                   rb"|.*resource_tracker\.py:\d+: UserWarning: resource_tracker: There appear to be .*"
                   rb"|\s+warnings\.warn\('resource_tracker: .*)$")
#: a partial line that may become a NOISE line: held back until its end arrives
_PREFIX = re.compile(rb"^(?:_tiff|TIFF)\w*$|^(?:_tiff\w+Proc|TIFF\w+): |^\[\d{4}-|^\[\d{0,3}$"
                     rb"|.*resource_track|^\s+warn")


def _keep(line: bytes) -> bool:
    return NOISE.match(line.rstrip(b"\r\n")) is None


_SEGMENT = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")


def _copy(source: int, target: int) -> None:
    """Copy `source` to `target` until its end, dropping NOISE lines; a segment ends at \\n or \\r."""
    pending = b""
    while True:
        try:
            chunk = os.read(source, 65536)
        except OSError:
            break
        if not chunk:
            break
        data = pending + chunk
        segments = _SEGMENT.findall(data)
        pending = data[sum(map(len, segments)):]
        out = b"".join(segment for segment in segments if _keep(segment))
        if pending and not _PREFIX.match(pending):
            out, pending = out + pending, b""
        if out:
            _write_all(target, out)
    if pending and _keep(pending):
        _write_all(target, pending)


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data):]


def _real_stderr() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a test runner's captured stream
        return False


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with fd 2 filtered (when it is this process's real stderr; LUT_RAW_STDERR=1 turns the
    filter off)."""
    if os.environ.get("LUT_RAW_STDERR") or not _real_stderr():
        yield
        return
    terminal.remember(os.isatty(2))
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    copier = threading.Thread(target=_copy, args=(read_end, saved), daemon=True, name="lut-stderr")
    copier.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end in this process closes: the copier sees its end
        terminal.forget()
        copier.join(timeout=2.0)  # a child still holding the pipe (a DDP rank, a Ray daemon) keeps it open
        os.close(saved)
        if not copier.is_alive():
            os.close(read_end)
