"""Reading a user's JSON file with the one-line errors of replayer.errors.InputError."""
from __future__ import annotations

import json
from pathlib import Path

from replayer.errors import InputError


def read_json(path: Path | str, what: str, missing_hint: str):
    """The decoded file; a missing, unreadable or invalid file is an InputError naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file; {missing_hint}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({' '.join(str(exc).split())})") from None
