"""lut's errors and warnings, and the exit code of each: the one place that maps failures to the codes
the README documents.

Every error is a `LutError`, which the CLI prints as one `error:` line. The subclasses also subclass the
matching builtin, as `rasterio.errors` and `torchgeo.datasets.errors` do, so Python callers can catch
`ValueError` or `FileExistsError` without knowing lut. Messages name library parameters in backticks
(`` `stride` ``, `` `overwrite=True` ``); the CLI turns them into flags (`--stride`, `--overwrite`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

#: documented exit codes
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_HUB_UNREACHABLE = 3
EXIT_PARTIAL = 4  # a many-scene run in which some scenes failed
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class LutError(Exception):
    """A failure the user can act on; never shown as a traceback. `exit_code` overrides the class's code."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(LutError, ValueError):
    """A bad input or parameter value: a file that cannot be used as given, an option out of its range."""


class FormatError(LutError, ValueError):
    """A file that is not what lut expects here: another tool's output, a newer format version, a damaged file."""


class OwnershipError(LutError, FileExistsError):
    """An output exists and lut may not replace it (not written by lut, an input, or no `overwrite=True`)."""


class OutputFailed(LutError, OSError):
    """An output group that could not be put in place (a rename refused by the file system); every output
    was restored as it was."""


class RunFailed(LutError, RuntimeError):
    """A run that started and could not finish: a loss that became NaN, a rank that died."""


class HubUnreachable(LutError, ConnectionError):
    """The Hugging Face hub cannot be reached for a hub backbone."""

    exit_code = EXIT_HUB_UNREACHABLE


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (exit 130) or SIGTERM (exit 143), with what was kept or removed."""

    def __init__(self, message: str = "interrupted; nothing was written", exit_code: int = EXIT_INTERRUPTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LutWarning(UserWarning):
    """Something the user should know about a result that is still written (the CLI: one `warning:` line)."""


def warn(message: str, stacklevel: int = 2) -> None:
    """Issue `message` as a LutWarning from the caller's frame."""
    warnings.warn(message, LutWarning, stacklevel=stacklevel + 1)


@contextlib.contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Collect the LutWarnings raised inside (to record them in an output), then issue them again as usual."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LutWarning)
        yield messages
    for item in caught:
        if issubclass(item.category, LutWarning):
            messages.append(str(item.message))
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno, source=item.source)
