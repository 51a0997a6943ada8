"""The protocol view: the same claims measured under several protocols, side by side.

A protocol is a set of code-level training and measurement choices: each row names its own in
``params.protocol`` and ``provenance.protocols`` describes them (``docs/results-schema.md``).
The table shows the verdicts the suite wrote, one column per protocol; where they differ it
names the protocol fields whose values differ, by a plain comparison of the protocol dicts.
Nothing is estimated here. Rows without a protocol (an older suite) form one unnamed protocol,
and a run with a single protocol gets one sentence instead of the table.
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from typing import Any

from .fmt import SYMBOLS, esc, interval_text, label_html, num, reading_of
from .forest import params_label
from .schema import VERDICTS

Row = dict[str, Any]
NO_PROTOCOL = "(no protocol)"
DESCRIPTIVE = ("name", "summary")  # what a protocol is called, not a choice it makes
_ABSENT = object()


def protocol_of(row: Row) -> str | None:
    """The row's protocol name, or None when its params carry none."""
    name = row["params"].get("protocol")
    return None if name is None else str(name)


def run_protocols(rows: list[Row]) -> list[str | None]:
    """The protocols of a run's rows, in order of first appearance."""
    return list(dict.fromkeys(protocol_of(r) for r in rows))


def has_protocol_view(results: dict[str, Any]) -> bool:
    """Whether the page gets a Protocols section: the rows carry more than one protocol."""
    return len(run_protocols(results["results"])) > 1


def _label(name: str | None) -> str:
    return NO_PROTOCOL if name is None else name


def _described(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    protocols = results["provenance"].get("protocols") or {}
    return {str(k): v for k, v in protocols.items() if isinstance(v, dict)}


def _summary(described: dict[str, dict[str, Any]], name: str | None) -> str:
    summary = described.get(name, {}).get("summary") if name is not None else None
    return summary if isinstance(summary, str) and summary.strip() else "no summary recorded"


def differing_fields(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Fields (name and summary aside) whose values differ between two protocol dicts; a field
    one of them lacks counts as differing. In the order of ``a``, then ``b``'s own."""
    keys = dict.fromkeys([*a, *b])
    return [k for k in keys
            if k not in DESCRIPTIVE and a.get(k, _ABSENT) != b.get(k, _ABSENT)]


def protocol_note(results: dict[str, Any]) -> str:
    """The header's line on protocols: the run's one protocol, or which ones are compared."""
    names = run_protocols(results["results"])
    described = _described(results)
    if len(names) == 1 and names[0] is not None:
        return (f'<p class="note" id="protocol-sentence">Protocol: every result of this run was '
                f"measured under the <b>{esc(names[0])}</b> protocol: "
                f"{esc(_summary(described, names[0]))}</p>")
    if len(names) > 1:
        listed = ", ".join(f"<b>{esc(_label(n))}</b>" for n in names)
        return (f'<p class="note" id="protocol-sentence">Protocols: this run measured the claims '
                f'under {len(names)} protocols ({listed}), compared in '
                f"<a href='#protocols'>Protocols</a>.</p>")
    return ""


def _cell(protocol: str | None, rows: list[Row]) -> str:
    if not rows:
        return (f'<td class="pcell v-NONE" data-verdict="NONE" '
                f'data-protocol="{esc(_label(protocol))}">· not run</td>')
    kinds = {r["verdict"] for r in rows}
    verdict = kinds.pop() if len(kinds) == 1 else "MIXED"
    parts, tips = [], []
    for r in rows:
        stat = (f"{num(r['statistic'])} {interval_text(r['interval'])}"
                if r["statistic"] is not None or r["interval"] is not None else "no statistic")
        reading = reading_of(r)
        tips.append(f"{r['verdict']}: {stat} — {r['reason']}"
                    + (f" Reading: {reading}" if reading else ""))
        parts.append(f'<span class="pverdict">{SYMBOLS[r["verdict"]]} {r["verdict"]}</span>'
                     f'<small class="mono stat">{esc(stat)}</small>'
                     + (f'<small class="reading"><b>Reading:</b> {esc(reading)}</small>'
                        if reading else ""))
    return (f'<td class="pcell v-{verdict}" data-verdict="{verdict}" '
            f'data-protocol="{esc(_label(protocol))}" title="{esc(" | ".join(tips))}">'
            f'{"".join(parts)}</td>')


def _field_code(field: str, names: list[str | None],
                described: dict[str, dict[str, Any]]) -> str:
    values = "; ".join(
        f"{_label(n)}: {json.dumps(described.get(n, {}).get(field), sort_keys=True)}"
        for n in names)
    return f'<code title="{esc(values)}">{esc(field)}</code>'


def _differs(by_protocol: dict[str | None, list[Row]],
             described: dict[str, dict[str, Any]]) -> str:
    ran = {p: {r["verdict"] for r in rows} for p, rows in by_protocol.items() if rows}
    if len(ran) < 2:
        only = ", ".join(_label(p) for p in ran)
        return f'<td class="pdiff note" data-differs="n/a">only under {esc(only)}</td>'
    pairs = [(a, b) for a, b in combinations(ran, 2) if ran[a] != ran[b]]
    if not pairs:
        return '<td class="pdiff note" data-differs="false">same verdict</td>'
    involved = list(dict.fromkeys(p for pair in pairs for p in pair))
    unknown = [_label(p) for p in involved if p is None or p not in described]
    if unknown:
        why = esc("provenance.protocols does not describe " + ", ".join(unknown))
    else:
        fields = list(dict.fromkeys(f for a, b in pairs
                                    for f in differing_fields(described[a], described[b])))
        codes = ", ".join(_field_code(f, involved, described) for f in fields)
        why = f"fields that differ: {codes}" if fields else "no recorded protocol field differs"
    return (f'<td class="pdiff differs" data-differs="true"><b>⚑ differs</b>'
            f"<small>{why}</small></td>")


Comparison = tuple[Row, dict[str | None, list[Row]]]


def _comparisons(rows: list[Row]) -> dict[tuple[str, str], Comparison]:
    """(claim_id, params without protocol) -> (its first row, protocol -> its rows)."""
    names = run_protocols(rows)
    out: dict[tuple[str, str], Comparison] = {}
    for r in rows:
        rest = {k: v for k, v in r["params"].items() if k != "protocol"}
        key = (r["claim_id"], json.dumps(rest, sort_keys=True, default=str))
        entry = out.setdefault(key, (r, {n: [] for n in names}))
        entry[1][protocol_of(r)].append(r)
    return out


def protocols_section(results: dict[str, Any]) -> str:
    """The Protocols section's content, or "" when the run has fewer than two protocols."""
    rows = results["results"]
    names = run_protocols(rows)
    if len(names) < 2:
        return ""
    described = _described(results)
    lines = []
    for n in names:
        counts = Counter(r["verdict"] for r in rows if protocol_of(r) == n)
        chips = " ".join(f'<span class="chip v-{v}">{SYMBOLS[v]} {counts[v]} {v}</span>'
                         for v in VERDICTS if counts[v])
        lines.append(f'<li id="protocol-{esc(_label(n))}"><b>{esc(_label(n))}</b>: '
                     f"{esc(_summary(described, n))} {chips}</li>")
    body, compared, differ = [], 0, 0
    for (claim_id, _), (first, by_protocol) in _comparisons(rows).items():
        diff = _differs(by_protocol, described)
        compared += 'data-differs="n/a"' not in diff
        differ += 'data-differs="true"' in diff
        rest = {k: v for k, v in first["params"].items() if k != "protocol"}
        body.append(
            f'<tr data-claim-id="{esc(claim_id)}"><th scope="row"><a href="#claim-'
            f'{esc(claim_id)}"><code>{esc(claim_id)}</code></a></th>'
            f'<td class="params">{label_html(params_label(rest))}</td>'
            f'{"".join(_cell(n, by_protocol[n]) for n in names)}{diff}</tr>')
    head = "".join(f'<th scope="col">{esc(_label(n))}</th>' for n in names)
    return (
        f"<p>This run measured the claims under {len(names)} protocols, each a set of "
        "code-level training and measurement choices:</p>"
        f'<ul class="protocols">{"".join(lines)}</ul>'
        f"<p>One row per claim and parametrisation; each protocol's column gives its verdict, "
        f"statistic and 95% interval (hover for the reason). {differ} of the {compared} "
        "results measured under more than one protocol change verdict between protocols; the "
        "last column then names the protocol fields whose values differ "
        "(hover for the values; all fields are listed under "
        "<a href='#protocol-fields'>Provenance, Protocol fields</a>).</p>"
        f'<div class="scroll"><table class="grid wide" id="protocol-table"><thead><tr>'
        f'<th scope="col">claim</th><th scope="col">parameters</th>{head}'
        f'<th scope="col">differs</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
        "</div>")


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def protocol_fields_table(results: dict[str, Any]) -> str:
    """Every field of the run's protocol dicts (provenance.protocols), one column each;
    "" when provenance describes no protocol."""
    described = _described(results)
    if not described:
        return ""
    names = list(described)
    fields = [f for f in dict.fromkeys(k for d in described.values() for k in d)
              if f not in DESCRIPTIVE]
    body = []
    for f in fields:
        values = [described[n].get(f, _ABSENT) for n in names]
        differs = len(names) > 1 and any(v != values[0] for v in values[1:])
        cells = "".join(f"<td>{'—' if v is _ABSENT else esc(_value(v))}</td>" for v in values)
        mark = ' class="differs"' if differs else ""
        body.append(f'<tr{mark}><th scope="row"><code>{esc(f)}</code></th>{cells}</tr>')
    head = "".join(f'<th scope="col">{esc(n)}</th>' for n in names)
    return (f'<h3 id="protocol-fields">Protocol fields</h3><p class="note">The fields of each '
            "protocol in provenance.protocols; fields whose values differ between protocols "
            'are in bold.</p><div class="scroll"><table class="grid mono" '
            f'id="protocol-fields-table"><thead><tr><th scope="col">field</th>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')
