"""The report's first screen: the answer, one line per claim.

Each line has the claim's sentence (its id under it, linking to the details), the verdicts of
its rows under each protocol (counted over env x algo, and checkpoint or N where the claim has
them) with our statistic per protocol (the range over the rows with one), the paper's own
number where the row carries one (``paper_number``, from :mod:`pgclaims.suite.paper_numbers`;
"ordinal" where the paper states an ordering only), and the reading of a REFUTED row.
Everything comes from results.json; nothing is estimated here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .fmt import SYMBOLS, esc, num
from .schema import VERDICTS

Row = dict[str, Any]


def _protocols(rows: list[Row]) -> list[str | None]:
    return list(dict.fromkeys(r["params"].get("protocol") for r in rows))


def _chips(rows: list[Row]) -> str:
    counts = Counter(r["verdict"] for r in rows)
    if not rows:
        return '<span class="note">not run</span>'
    return "".join(f'<span class="chip v-{v}" title="{counts[v]} {v}">{SYMBOLS[v]} '
                   f"{counts[v]}</span>" for v in VERDICTS if counts[v])


def _cell(rows: list[Row]) -> str:
    """A protocol's cell: the verdict chips, then our statistic's range."""
    ours = f'<small class="ours">{_ours(rows)}</small>' if rows else ""
    return f'<td class="answer-verdicts">{_chips(rows)}{ours}</td>'


def _ours(rows: list[Row]) -> str:
    stats = [r["statistic"] for r in rows if isinstance(r.get("statistic"), int | float)]
    if not stats:
        return "n/a"
    lo, hi = min(stats), max(stats)
    return num(lo) if lo == hi else f"{num(lo)} to {num(hi)}"


def _paper(rows: list[Row]) -> str:
    for r in rows:
        paper = r.get("paper_number")
        if isinstance(paper, dict) and isinstance(paper.get("text"), str):
            kind = paper.get("kind")
            text = esc(paper["text"])
            return f'<span class="ordinal">{text}</span>' if kind == "ordinal" else text
    return f'<span class="note">{esc(rows[0]["paper"])}</span>'


def _reading(rows: list[Row]) -> str:
    for r in rows:
        reading = r.get("reading")
        if r["verdict"] == "REFUTED" and isinstance(reading, str) and reading.strip():
            return f'<small class="reading">{esc(reading)}</small>'
    return ""


def answer_section(results: dict[str, Any]) -> str:
    """The answer table (HTML), one line per claim in the run's order."""
    rows = results["results"]
    if not rows:
        return "<p>No claim results in this run.</p>"
    protocols = _protocols(rows)
    claims: dict[str, list[Row]] = {}
    for r in rows:
        claims.setdefault(r["claim_id"], []).append(r)
    head = "".join(f'<th scope="col">{esc(p or "verdicts")}</th>' for p in protocols)
    body = []
    for claim_id, claim_rows in claims.items():
        first = claim_rows[0]
        cells = "".join(_cell([r for r in claim_rows if r["params"].get("protocol") == p])
                        for p in protocols)
        body.append(
            f'<tr data-claim-id="{esc(claim_id)}"><th scope="row" class="claim-line">'
            f'{esc(first["sentence"])}<br><a href="#claim-{esc(claim_id)}"><code>'
            f"{esc(claim_id)}</code></a> <small class=\"note\">{esc(first['statistic_name'])} "
            f"{esc(first['direction'])} {esc(num(first['threshold']))}</small>"
            f"{_reading(claim_rows)}</th>{cells}"
            f'<td class="answer-paper">{_paper(claim_rows)}</td></tr>')
    legend = " ".join(f'<span class="chip v-{v}">{SYMBOLS[v]} {v}</span>' for v in VERDICTS)
    return ('<div class="scroll"><table class="grid wide" id="answer-table"><thead><tr>'
            f'<th scope="col">claim</th>{head}<th scope="col">the paper</th>'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
            f'<p class="note legend">Per protocol: the verdicts of the claim\'s rows (env x '
            f"algo, and checkpoint or N where the claim has them), {legend}, and under them our "
            "statistic (its range over the rows); intervals and reasons are in the details "
            "below.</p>")


__all__ = ["answer_section"]
