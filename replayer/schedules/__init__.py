"""Trace decoders, one module per format; `load_schedule` picks one by file name."""
from __future__ import annotations

from pathlib import Path

from replayer.errors import InputError
from replayer.schedules.schedule import Schedule

COLUMNAR_SUFFIXES = (".parquet", ".arrow", ".feather")


def load_schedule(path: Path | str, minute: bool = True, max_units: int | None = None) -> Schedule:
    """A schedule from a vSwarm load.json, or from a columnar schedule file (.parquet/.arrow)."""
    return load_schedule_units(path, minute, max_units)[0]


def load_schedule_units(path: Path | str, minute: bool = True,
                        max_units: int | None = None) -> tuple[Schedule, int]:
    """load_schedule's schedule and how many units of the load it holds (at most max_units):
    a load.json's unit objects, empty ones included (what the invoker counts); a columnar
    schedule's replayer.units, or up to its last request's unit."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such trace file; give -traceFile PATH (for a demo: "
                         "-traceFile traces/example-load.json -min=false --local-target)")
    if path.suffix.lower() in COLUMNAR_SUFFIXES:
        from replayer.schedules import columnar
        schedule, units = columnar.read_schedule_units(path)
        if max_units is not None:
            schedule = schedule.before(max_units * schedule.unit_ns)
            units = min(units, max_units)
        return schedule, units
    from replayer.schedules import vswarm
    return vswarm.decode_load_json(path, minute=minute, max_units=max_units)
