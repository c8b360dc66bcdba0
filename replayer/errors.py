"""Errors a user can fix: the CLI prints them on one line and exits with code 2."""
from __future__ import annotations

import sys
from pathlib import Path
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


def check_writable(path: Path, option: str, fix: str, name_directory: bool = False) -> None:
    """Before a run: `path` can be written (its directory made if missing), else an InputError
    `OPTION: cannot write PATH (why); FIX` (`cannot create directory D` when name_directory
    and the directory is what failed). The file is opened for appending (not checked with
    os.access: that says yes to root on a read-only mount) and removed again if it was not
    there."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if not name_directory:
            raise InputError(f"{option}: cannot write {path} ({exc.strerror or exc}); "
                             f"{fix}") from None
        raise InputError(f"{option}: cannot create directory {path.parent} "
                         f"({exc.strerror or exc}); {fix}") from None
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise InputError(f"{option}: cannot write {path} ({exc.strerror or exc}); {fix}") from None
