"""The one exception type the CLI turns into a single line and an exit code."""


class LutError(Exception):
    """A failure the user can act on; never shown as a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (exit 130) or SIGTERM (exit 143), with what was kept or removed."""

    def __init__(self, message: str = "interrupted; nothing was written", exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: documented exit codes
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_HUB_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_PARTIAL = 4  # a many-scene run in which some scenes failed
