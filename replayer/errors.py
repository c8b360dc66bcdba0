"""Errors a user can fix: the CLI prints them on one line and exits with code 2."""
from __future__ import annotations

import sys
from typing import Callable


class InputError(Exception):
    """Bad input: the message names the file (or option), the place, and the fix."""


class RunError(Exception):
    """A run that could not complete (a worker died, the output became unwritable)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_of(command: Callable[[], int | None]) -> int:
    """Run a command as the CLI does: its exit code; an InputError printed on one line (exit
    2), a RunError with its own code, Ctrl-C exit 130. The one place these map to codes (the
    CLI and a node of a distributed run both use it)."""
    try:
        return int(command() or 0)
    except InputError as exc:
        print(f"replayer: error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"replayer: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("replayer: interrupted", file=sys.stderr)
        return 130
