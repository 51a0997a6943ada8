"""Per-claim forest plot: each parametrisation's statistic and 95% interval against the threshold,
and (a thin line) the wider interval its verdict was decided on when the run's error control
decides at a stricter level (clipped to the axes; an arrow marks an end beyond them).

Draws the numbers the claims suite wrote; nothing is estimated here.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

from matplotlib.figure import Figure

from .plotting import CLAIM_SIDE_COLOR, VERDICT_COLORS, figure_svg


def params_label(params: dict[str, Any]) -> str:
    """Compact label of a parametrisation: env and algo first, then the rest as key=value."""
    head = [str(params[k]) for k in ("env", "algo") if k in params]
    rest = [f"{k}={v}" for k, v in params.items() if k not in ("env", "algo")]
    return " · ".join(head + rest) or "(no parameters)"


AXIS_MAX = 1e12
"""Largest magnitude drawn to scale; beyond it a value is drawn at the axis edge, as an
unbounded end is (matplotlib's tickers overflow on spans near 1e308)."""


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _on_axis(x: Any) -> bool:
    return _finite(x) and abs(x) <= AXIS_MAX


def _xlimits(rows: list[dict[str, Any]], threshold: float | None) -> tuple[float, float]:
    values = [threshold] if _on_axis(threshold) else []
    for r in rows:
        values += [v for v in [r["statistic"], *(r["interval"] or [])] if _on_axis(v)]
    if not values:
        return -1.0, 1.0
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 0.5
    return lo - pad, hi + pad


def _draw_row(ax: Any, y: float, row: dict[str, Any], xlim: tuple[float, float]) -> None:
    color = VERDICT_COLORS[row["verdict"]]
    stat, interval = row["statistic"], row["interval"]
    decision = (row.get("decision") or {}).get("interval")
    if decision is not None and interval is not None and list(decision) != list(interval) and all(
            isinstance(v, int | float) and not math.isnan(v) for v in decision):
        lo, hi = (min(max(v, xlim[0]), xlim[1]) for v in decision)
        ax.plot([lo, hi], [y, y], color=color, lw=0.9, alpha=0.8)
        for end, raw, marker in ((lo, decision[0], "<"), (hi, decision[1], ">")):
            if not xlim[0] < raw < xlim[1]:
                ax.plot([end], [y], marker=marker, color=color, ms=4, alpha=0.8)
    if interval is not None and not any(math.isnan(v) for v in interval):
        lo, hi = (v if _on_axis(v) else (xlim[0] if v < 0 else xlim[1]) for v in interval)
        ax.plot([lo, hi], [y, y], color=color, lw=2.2, solid_capstyle="butt")
        # An infinite end is a censored bound (CLAIMS.md "Censoring"): show it as an arrow.
        for end, raw, marker in ((lo, interval[0], "<"), (hi, interval[1], ">")):
            if not _on_axis(raw):
                ax.plot([end], [y], marker=marker, color=color, ms=6)
    if _on_axis(stat):
        ax.plot([stat], [y], marker="o", color=color, ms=6, mec="white", mew=0.8)
    elif _finite(stat):  # off the scale: at the edge it lies beyond
        ax.plot([xlim[0] if stat < 0 else xlim[1]], [y], marker="<" if stat < 0 else ">",
                color=color, ms=6)
    else:
        what = "error: no statistic" if row["verdict"] == "ERROR" else "not measured"
        ax.text(sum(xlim) / 2, y, what, ha="center", va="center", color=color,
                style="italic", fontsize=8)


def forest_svg(claim_rows: list[dict[str, Any]], *, uid: str) -> str:
    """Inline SVG forest plot for the result rows of one claim (all share the threshold)."""
    first = claim_rows[0]
    threshold, direction = first["threshold"], first["direction"]
    labels = [params_label(r["params"]) for r in claim_rows]
    xlim = _xlimits(claim_rows, threshold)
    height = 0.85 + 0.3 * len(claim_rows)
    width = min(8.5, 4.6 + 0.055 * max(len(s) for s in labels))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ys = list(range(len(claim_rows)))[::-1]
        if threshold is not None and _on_axis(threshold):
            side = (xlim[0], threshold) if direction.startswith("<") else (threshold, xlim[1])
            ax.axvspan(*side, color=CLAIM_SIDE_COLOR, alpha=0.09, lw=0)
            ax.axvline(threshold, color="#333333", ls="--", lw=1)
            ax.text(threshold, len(claim_rows) - 0.45, f" claim: {direction} {threshold:g}",
                    fontsize=7.5, va="bottom", ha="left", color="#333333")
        for y, row in zip(ys, claim_rows, strict=True):
            _draw_row(ax, y, row, xlim)
        ax.set_xlim(*xlim)
        ax.set_ylim(-0.6, len(claim_rows) - 0.1)
        ax.set_yticks(ys, labels)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        # Long statistic names would run off the axes: about 14 characters fit an inch at 8 pt,
        # and the tick labels on the left take ~0.065 inch per character.
        axes_inches = width - 0.065 * max(len(s) for s in labels) - 0.35
        ax.set_xlabel(textwrap.fill(first["statistic_name"], max(30, int(14 * axes_inches))),
                      fontsize=8)
        ax.grid(axis="x", color="#e5e5e5", lw=0.6)
        ax.set_axisbelow(True)

    return figure_svg(draw, width=width, height=height, uid=uid,
                      title=f"forest plot of {first['claim_id']}")
