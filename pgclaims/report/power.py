"""The power view: what it would take to decide each INCONCLUSIVE verdict.

Every figure comes from the row's ``power`` object (written by the suite with
:func:`pgclaims.stats.agents_to_decide`); nothing is computed here but the order of the rows.
"""

from __future__ import annotations

from typing import Any

from .fmt import esc, label_html, num
from .forest import params_label

Row = dict[str, Any]


def power_of(row: Row) -> dict[str, Any] | None:
    """The row's power object when it is an INCONCLUSIVE row that has one."""
    power = row.get("power")
    if row.get("verdict") != "INCONCLUSIVE" or not isinstance(power, dict):
        return None
    return power


def _needed(power: dict[str, Any]) -> str:
    need = power.get("agents_needed")
    return "more than 10,000" if need is None else f"{num(need)}"


def power_sentence(row: Row) -> str | None:
    """One sentence for the row's details, or None."""
    p = power_of(row)
    if p is None:
        return None
    return (f"interval width {num(p.get('width'))}; estimate {num(p.get('distance'))} from the "
            f"threshold; about {_needed(p)} agents (now {num(p.get('n_agents'))}) would decide "
            f"it with probability {num(p.get('power'))}, if the estimate and the between-agent "
            f"spread ({num(p.get('spread'))}) hold.")


def power_section(rows: list[Row]) -> str:
    """A table of the INCONCLUSIVE rows with a power object, fewest agents needed first."""
    found = [(r, p) for r in rows if (p := power_of(r)) is not None]
    undecided = sum(1 for r in rows if r.get("verdict") == "INCONCLUSIVE")
    if not found:
        return (f'<p class="note">{undecided} INCONCLUSIVE result(s); none has an interval '
                "over two or more agents to plan from (or this results.json predates power "
                "figures).</p>")
    found.sort(key=lambda rp: (rp[1].get("agents_needed") is None,
                               rp[1].get("agents_needed") or 0, rp[0]["claim_id"]))
    trs = "".join(
        f'<tr><th scope="row"><code>{esc(r["claim_id"])}</code></th>'
        f'<td class="params">{label_html(params_label(r["params"]))}</td>'
        f'<td class="num">{esc(num(p.get("width")))}</td>'
        f'<td class="num">{esc(num(p.get("distance")))}</td>'
        f'<td class="num">{esc(num(p.get("spread")))}</td>'
        f'<td class="num">{esc(num(p.get("n_agents")))}</td>'
        f'<td class="num">{esc(_needed(p))}</td></tr>' for r, p in found)
    return (
        f"<p>{len(found)} of {undecided} INCONCLUSIVE results have an interval over agents. For "
        "each: its width, the distance of its estimate to the threshold, the between-agent "
        "spread the interval implies, and the number of agents whose interval would exclude "
        "the threshold with probability 0.8 if the estimate and the spread hold, at this "
        "scale's per-agent sample sizes. A planning figure, not a promise: a centre near the "
        'threshold needs many agents, and a wrong centre needs a new measurement.</p>'
        '<div class="scroll"><table class="grid" id="power-table"><thead><tr><th>claim</th>'
        "<th>parameters</th><th>interval width</th><th>distance to threshold</th>"
        "<th>between-agent spread</th><th>agents now</th><th>agents to decide (80%)</th>"
        f"</tr></thead><tbody>{trs}</tbody></table></div>")


__all__ = ["power_of", "power_section", "power_sentence"]
