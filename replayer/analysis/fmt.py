"""Numbers for people, one way everywhere (the run's summary, the report's table, the HTML
page, compare): durations from nanoseconds, shares as percentages, rates per second. A missing
value (None, NaN) is written as `missing`."""
from __future__ import annotations

import math


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def duration(ns: float | int | None, missing: str = "-") -> str:
    """850ns, 12.3µs, 4.56ms, 1.23s."""
    if _missing(ns):
        return missing
    v = float(ns)
    a = abs(v)
    if a < 1e3:
        return f"{v:.0f}ns"
    if a < 1e6:
        return f"{v / 1e3:.3g}µs"
    if a < 1e9:
        return f"{v / 1e6:.3g}ms"
    return f"{v / 1e9:.3g}s"


def share(fraction: float | None, missing: str = "-") -> str:
    """0.0123 -> 1.23%."""
    return missing if _missing(fraction) else f"{100 * fraction:.2f}%"


def rate(per_s: float | None, missing: str = "-") -> str:
    """12345.67 -> 12,345.7 (requests per second)."""
    return missing if _missing(per_s) else f"{per_s:,.1f}"
