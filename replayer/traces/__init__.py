"""Trace decoders, one module per format; `load_schedule` picks one by file name."""
from __future__ import annotations

from pathlib import Path

from replayer.errors import InputError
from replayer.schedule import Schedule

COLUMNAR_SUFFIXES = (".parquet", ".arrow", ".feather")


def load_schedule(path: Path | str, minute: bool = True, max_units: int | None = None) -> Schedule:
    """A schedule from a vSwarm load.json, or from a columnar schedule file (.parquet/.arrow)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such trace file; give -traceFile the path of a load.json")
    if path.suffix.lower() in COLUMNAR_SUFFIXES:
        from replayer.traces import columnar
        schedule = columnar.read_schedule(path)
        if max_units is not None:
            schedule = schedule.before(max_units * schedule.unit_ns)
        return schedule
    from replayer.traces import vswarm
    return vswarm.read_load_json(path, minute=minute, max_units=max_units)
