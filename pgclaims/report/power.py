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


def _needed(power: dict[str, Any], key: str = "agents_needed") -> str:
    need = power.get(key)
    return "more than 10,000" if need is None else f"{num(need)}"


def _level(power: dict[str, Any]) -> str:
    level = power.get("alpha_side")
    return f" at {num(level)} per side" if isinstance(level, int | float) else ""


def power_sentence(row: Row) -> str | None:
    """One sentence for the row's details, or None."""
    p = power_of(row)
    if p is None:
        return None
    text = (f"interval width {num(p.get('width'))}; estimate {num(p.get('distance'))} from the "
            f"threshold; about {_needed(p)} agents (now {num(p.get('n_agents'))}) would decide "
            f"it{_level(p)} with probability {num(p.get('power'))}, if the estimate and the "
            f"between-agent spread ({num(p.get('spread'))}) hold.")
    if p.get("assurance") is not None:
        text += (f" Both are uncertain: given this run's data, {_needed(p)} agents decide it "
                 f"with predictive probability {num(p.get('assurance'))}, and "
                 f"{num(p.get('power'))} needs about {_needed(p, 'agents_needed_predictive')}.")
    return text


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
    predictive = any(p.get("assurance") is not None for _, p in found)
    trs = "".join(
        f'<tr><th scope="row"><code>{esc(r["claim_id"])}</code></th>'
        f'<td class="params">{label_html(params_label(r["params"]))}</td>'
        f'<td class="num">{esc(num(p.get("width")))}</td>'
        f'<td class="num">{esc(num(p.get("distance")))}</td>'
        f'<td class="num">{esc(num(p.get("spread")))}</td>'
        f'<td class="num">{esc(num(p.get("n_agents")))}</td>'
        f'<td class="num">{esc(_needed(p))}</td>'
        + (f'<td class="num">{esc(num(p.get("assurance")))}</td>'
           f'<td class="num">{esc(_needed(p, "agents_needed_predictive"))}</td>'
           if predictive else "") + "</tr>" for r, p in found)
    head_pred = ("<th>predictive probability at that count</th>"
                 "<th>agents for a predictive 80%</th>" if predictive else "")
    pred_text = (
        " The figure assumes that the estimate and the spread measured with these few agents "
        "are exact; they are not. The next column gives, given this run's data (its estimate "
        "and spread with their own uncertainty), the predictive probability that that many "
        "new agents decide the row either way, and the last the agents whose predictive "
        "probability reaches 0.8: the planning figure to trust." if predictive else "")
    return (
        f"<p>{len(found)} of {undecided} INCONCLUSIVE results have an interval over agents. For "
        "each: its width, the distance of its estimate to the threshold, the between-agent "
        "spread the interval implies, and the number of agents whose verdict, at the level "
        "this run decides at, would exclude the threshold with probability 0.8 if the estimate "
        f"and the spread hold, at this scale's per-agent sample sizes.{pred_text} A planning "
        "figure, not a promise: a centre near the threshold needs many agents, and a wrong "
        'centre needs a new measurement.</p>'
        '<div class="scroll"><table class="grid" id="power-table"><thead><tr><th>claim</th>'
        "<th>parameters</th><th>interval width</th><th>distance to threshold</th>"
        "<th>between-agent spread</th><th>agents now</th><th>agents to decide (80%)</th>"
        f"{head_pred}</tr></thead><tbody>{trs}</tbody></table></div>")


__all__ = ["power_of", "power_section", "power_sentence"]
