"""Whether stderr is a terminal, as it was before the CLI put a filter on file descriptor 2
(`lut.toolkit.cli.stderr_filter`): progress bars and live progress lines are for terminals only."""

from __future__ import annotations

import sys

_remembered: list[bool] = []


def remember(isatty: bool) -> None:
    """Called by the filter before fd 2 becomes its pipe; `forget` when it is restored."""
    _remembered.append(isatty)


def forget() -> None:
    if _remembered:
        _remembered.pop()


def stderr_is_terminal() -> bool:
    if _remembered:
        return _remembered[-1]
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
