"""The error-control view: which rule decided the verdicts, the false verdicts it allows, and
the Holm / Benjamini-Hochberg columns over the family, all as the suite wrote them to
results.json (nothing is adjusted here)."""

from __future__ import annotations

import math
from typing import Any

from .fmt import esc, interval_text, label_html, num
from .forest import params_label

ALPHA = 0.05  # the family's level when results.json does not record its error control
ROW_ALPHA_SIDE = 0.025  # per side, the per-row rule of a results.json without a decision
SIG = ' class="sig"'

Row = dict[str, Any]


def alpha_side(row: Row) -> float:
    """The per-side level the row was decided at (its "decision"; else the per-row rule)."""
    decision = row.get("decision")
    if isinstance(decision, dict) and isinstance(decision.get("alpha_side"), int | float):
        return float(decision["alpha_side"])
    return ROW_ALPHA_SIDE


def significant(p: Any, level: float) -> str:
    return SIG if isinstance(p, int | float) and not math.isnan(p) and p < level else ""


def decision_text(row: Row) -> str:
    """The interval the verdict was decided on and its rule, e.g. "[0.1, 0.5] (99.96%,
    family)"; "n/a" for a row without one (older results, or no interval)."""
    decision = row.get("decision")
    if not isinstance(decision, dict) or decision.get("interval") is None:
        return "n/a"
    level = decision.get("confidence_level")
    pct = f"{100 * level:.4g}%, " if isinstance(level, int | float) else ""
    return f"{interval_text(decision['interval'])} ({pct}{decision.get('policy', '?')})"


def error_control_text(results: dict[str, Any]) -> str:
    """Which policy decided the verdicts, and the false verdicts it allows (from provenance)."""
    control = results["provenance"].get("error_control")
    if not isinstance(control, dict):
        return ("Error control: not recorded (a results.json from an older suite): each verdict "
                "was decided by its own 95% interval, 0.025 per side, with no control over the "
                "run.")
    measured = control.get("expected_false_measured") or {}
    extra = "".join(f"; {num(v)} over the {num((control.get('rows_measured') or {}).get(k))} "
                    f"rows measured here ({k})" for k, v in measured.items())
    return (f"Error control ({esc(control.get('policy'))}): {esc(control.get('description', ''))}"
            f"{extra}. Expected false decisive verdicts if every effect sat at its threshold: "
            f"at most {num(control.get('expected_false_max'))} per protocol.")


def multiple_testing(results: list[Row], control: dict[str, Any] | None = None) -> str:
    family = [r for r in results if r["p_value"] is not None and not math.isnan(r["p_value"])]
    left_out = len(results) - len(family)
    if not family:
        return '<p class="note">No result carries a p-value, so there is no family to adjust.</p>'
    if any(r.get("p_holm") is None or r.get("p_bh") is None for r in family):
        return ('<p class="note">This results.json carries no Holm / Benjamini-Hochberg '
                "adjustments (an older suite wrote it); re-run the "
                "claims to get them.</p>")
    alpha = float(control.get("alpha", ALPHA)) if control else ALPHA
    rows = []
    for r in family:
        raw, other, h, bh = r["p_value"], r.get("p_refute"), r["p_holm"], r["p_bh"]
        level = alpha_side(r)
        rows.append(
            f'<tr><th scope="row"><code>{esc(r["claim_id"])}</code></th>'
            f'<td class="params">{label_html(params_label(r["params"]))}</td>'
            f"<td{significant(raw, level)}>{esc(num(raw))}</td>"
            f"<td{significant(h, alpha)}>{esc(num(h))}</td>"
            f"<td{significant(bh, alpha)}>{esc(num(bh))}</td>"
            f"<td{significant(other, level)}>{esc(num(other))}</td>"
            f'<td>{esc(r.get("p_side") or "n/a")}</td>'
            f'<td class="v-{r["verdict"]}">{r["verdict"]}</td></tr>')
    if control:
        size = control.get("family_size")
        family_text = (
            f"The family is the scale's declared one: m = {num(size)} rows per protocol, "
            f"2 m one-sided hypotheses (both directions of every row); {len(family)} rows of "
            f"this run carry p-values ({left_out} without are left out). Holm and "
            "Benjamini-Hochberg adjust the smaller one-sided p-value of each row over the "
            "whole family, rows not measured counted with p = 1"
            + (": <b>provisional</b>, since not every row of the family was measured; they "
               "can only fall when the rest is" if control.get("provisional") else "")
            + ". ")
    else:
        family_text = (f"The family is every result of this run that carries a one-sided "
                       f"p-value (m = {len(family)}; {left_out} without a p-value are left "
                       "out). ")
    return (
        f"<p>{family_text}Holm controls the family-wise error rate, Benjamini-Hochberg the "
        f"false discovery rate; adjusted values below {num(alpha)} and raw p-values below the "
        f"level their row was decided at are in bold. The verdicts come from the decision "
        f"rule of each row (its reason names the interval and level), not from these "
        f'columns.</p><div class="scroll"><table class="grid" '
        f'id="multiple-testing-table"><thead><tr><th>claim</th><th>parameters</th>'
        "<th>p (claim side)</th><th>Holm</th><th>Benjamini-Hochberg</th><th>p (other side)</th>"
        "<th>adjusted side</th><th>verdict</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>")


__all__ = ["alpha_side", "decision_text", "error_control_text", "multiple_testing",
           "significant"]
