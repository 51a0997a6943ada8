"""Text shared by the page's sections: HTML escaping, numbers, intervals, durations, symbols.

Formatting only: every number shown is one results.json holds, rounded for reading.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

BIG = 1e9
"""From here numbers get an exponent (a family-level interval over 2 agents can reach 1e25)."""
SYMBOLS = {"REPRODUCED": "✔", "REFUTED": "✘", "INCONCLUSIVE": "?", "ERROR": "⚠", "PENDING": "…"}


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML content and quoted attributes."""
    return escape(str(value), quote=True)


def num(x: Any) -> str:
    """A statistic for humans: 3 significant digits, thousands without exponent."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) >= BIG:
        return f"{x:.3g}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x == 0 or abs(x) >= 1e-3:
        return f"{x:.3g}"
    return f"{x:.2e}"


def interval_text(interval: list[float] | None) -> str:
    return "n/a" if interval is None else f"[{num(interval[0])}, {num(interval[1])}]"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h} h {m} min" if h else f"{m} min {s % 60} s" if m else f"{seconds:.1f} s"


def reading_of(row: dict[str, Any]) -> str | None:
    """The row's evidence-based reading of its verdict, or None when it has none."""
    reading = row.get("reading")
    return reading if isinstance(reading, str) and reading.strip() else None


def label_html(text: str) -> str:
    """A parameter label as HTML whose parts (split at " · ") never break inside:
    "checkpoint=300" and "Hopper-v5" stay whole, the label wraps between parts."""
    return " · ".join(f'<span class="nw">{esc(part)}</span>' for part in text.split(" · "))
