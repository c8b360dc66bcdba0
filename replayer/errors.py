"""Errors a user can fix: the CLI prints them on one line and exits with code 2."""


class InputError(Exception):
    """Bad input: the message names the file (or option), the place, and the fix."""


class RunError(Exception):
    """A run that could not complete (a worker died, the output became unwritable)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
