"""The one exception type the CLI turns into a single line and an exit code."""


class LutError(Exception):
    """A failure the user can act on; never shown as a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
