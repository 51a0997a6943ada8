"""Matplotlib figures as inline SVG strings, safe to paste many times into one HTML page.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot), so no GUI
backend or global figure registry is touched and ``matplotlib.use("Agg")`` callers are
unaffected. Fonts stay text (no embedded glyph paths, no font files), metadata is dropped and
hashes are salted with a constant so the same results give the same bytes.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable

import matplotlib
from matplotlib.figure import Figure

VERDICT_COLORS = {
    "REPRODUCED": "#1b7f3b",
    "REFUTED": "#c62828",
    "INCONCLUSIVE": "#c77c00",
    "ERROR": "#6d6d6d",
    "PENDING": "#4a6fa5",
}
CLAIM_SIDE_COLOR = "#1b7f3b"
TWO_K = 2048  # state-action pairs of one training iteration, "2K" in the paper

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "pgclaims-report",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
}

_ID = re.compile(r'\bid="([^"]+)"')
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _scope_ids(svg: str, uid: str) -> str:
    """Prefix every id (and its url(#..)/href="#.." uses) so inline figures cannot collide.

    Inline SVGs share the page's id namespace: two figures that both define ``clip1`` would
    otherwise clip each other's drawings.
    """
    ids = sorted(set(_ID.findall(svg)), key=len, reverse=True)
    if not ids:
        return svg
    names = "|".join(re.escape(i) for i in ids)
    return re.sub(r'(id="|#)(' + names + r')(?=["\)])', lambda m: f"{m[1]}{uid}-{m[2]}", svg)


def figure_svg(draw: Callable[[Figure], None], *, width: float, height: float, uid: str,
               title: str) -> str:
    """Run ``draw`` on a new ``width`` x ``height`` inch figure and return an inline ``<svg>``.

    ``uid`` must be unique within the page; ``title`` becomes the accessible name.
    """
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = _METADATA.sub("", svg)
    # The HTML parser puts <svg> in the SVG namespace by itself; dropping the xmlns URIs keeps
    # the page free of any http(s) string.
    svg = _XMLNS.sub("", svg)
    svg = _scope_ids(svg, uid)
    label = html.escape(title, quote=True)
    return svg.replace("<svg", f'<svg class="plot" role="img" aria-label="{label}"', 1)
