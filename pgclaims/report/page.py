"""Render a validated results.json into one self-contained ``index.html``.

Everything the page shows comes from results.json (and the history file): statistics,
intervals, p-values of both sides, their Holm / Benjamini-Hochberg adjustments, the error
control that decided and the verdicts are the claims suite's. The only numbers made here are
counts. The protocol view is in :mod:`pgclaims.report.protocols`, the power view in
:mod:`pgclaims.report.power`, the error-control view in :mod:`pgclaims.report.errors`, shared
formatting in :mod:`pgclaims.report.fmt`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from .agents import agents_section
from .answer import answer_section
from .errors import (
    alpha_side,
    decision_text,
    error_control_text,
    multiple_testing,
    significant,
)
from .figures import paper_figures
from .files import write_atomic
from .fmt import SYMBOLS, duration, esc, interval_text, label_html, num, reading_of
from .forest import forest_svg, params_label
from .history import ResultKey, previous_verdicts, result_key
from .power import power_section, power_sentence
from .protocols import (
    has_protocol_view,
    protocol_fields_table,
    protocol_note,
    protocols_section,
)
from .reference import section as reference_section
from .schema import VERDICTS
from .style import CSS

__all__ = ["build_page", "duration", "interval_text", "num", "render", "substitution_sentence"]

RULE_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least"}

Row = dict[str, Any]


def rule_text(row: Row) -> str:
    if row["threshold"] is None:
        return "no threshold recorded"
    return (f"the claim holds when the statistic is {RULE_WORDS[row['direction']]} "
            f"{num(row['threshold'])} ({row['direction']} {num(row['threshold'])})")


def _claims(results: list[Row]) -> dict[str, dict[str, list[Row]]]:
    """section -> claim_id -> rows, each level in order of first appearance."""
    out: dict[str, dict[str, list[Row]]] = {}
    section_of: dict[str, str] = {}
    for row in results:
        # A claim belongs to one section; the first row decides, so no claim is listed twice.
        section = section_of.setdefault(row["claim_id"], row["section"])
        out.setdefault(section, {}).setdefault(row["claim_id"], []).append(row)
    return out


ACROSS = ("across", "envs or algos")
"""The one column of the results that compare environments or algorithms (a claim whose
parameters lack the env or the algorithm): one column, not one per missing combination, so the
table keeps its width whatever the number of environments."""


def _column(row: Row) -> tuple[str, str]:
    p = row["params"]
    if "env" in p and "algo" in p:
        return str(p["env"]), str(p["algo"]).upper()
    return ACROSS


def _cell_labels(rows: list[Row]) -> list[str]:
    """What tells apart several results in one cell: the parameters whose values differ
    between them (e.g. the checkpoint, the protocol; the env or algorithm in the across
    column); nothing for a lone result."""
    if len(rows) < 2:
        return [""] * len(rows)
    keys = [k for k in dict.fromkeys(k for r in rows for k in r["params"])
            if len({json.dumps(r["params"].get(k), default=str) for r in rows}) > 1]
    bare = ("protocol", "env", "algo")  # their values speak for themselves
    return [" · ".join(str(r["params"].get(k, "-")) if k in bare else f"{k}={r['params'].get(k)}"
                       for k in keys) for r in rows]


def _tip(row: Row) -> str:
    reading = reading_of(row)
    return (f"{row['verdict']}: {num(row['statistic'])} {interval_text(row['interval'])} "
            f"({params_label(row['params'])}) — {row['reason']}"
            + (f" Reading: {reading}" if reading else ""))


def _chip(row: Row, label: str = "") -> str:
    v = row["verdict"]
    small = f"<small>{esc(label)}</small>" if label else ""
    return (f'<span class="chip v-{v}" data-verdict="{v}" title="{esc(_tip(row))}">{small}'
            f"{SYMBOLS[v]} {esc(num(row['statistic']))}</span>")


def _params_order(row: Row) -> tuple[tuple[str, int, float, str], ...]:
    """Rows of one cell in parameter order, numbers numerically (checkpoint 9 before 18)."""
    return tuple((k, 0, float(v), "") if isinstance(v, int | float) and not isinstance(v, bool)
                 else (k, 1, 0.0, str(v)) for k, v in sorted(row["params"].items()))


def _verdict_table(grouped: dict[str, dict[str, list[Row]]], results: list[Row]) -> str:
    columns = sorted(dict.fromkeys(_column(r) for r in results), key=lambda c: c == ACROSS)
    head = "".join(f'<th scope="col">{esc(env)}<br>{esc(algo)}</th>'
                   for env, algo in columns)
    body = []
    for section, claims in grouped.items():
        body.append(f'<tr class="section-row"><th colspan="{len(columns) + 2}">'
                    f"{esc(section)}</th></tr>")
        for claim_id, rows in claims.items():
            cells = []
            for col in columns:
                mine = sorted((r for r in rows if _column(r) == col), key=_params_order)
                kinds = {r["verdict"] for r in mine}
                verdict = kinds.pop() if len(kinds) == 1 else "MIXED" if kinds else "NONE"
                chips = "".join(_chip(r, label)
                                for r, label in zip(mine, _cell_labels(mine), strict=True)) or "·"
                cells.append(f'<td class="cell v-{verdict}" data-verdict="{verdict}">{chips}</td>')
            body.append(f'<tr data-claim-id="{esc(claim_id)}"><th scope="row">'
                        f'<a href="#claim-{esc(claim_id)}"><code>{esc(claim_id)}</code></a></th>'
                        f'<th class="note paper">{esc(rows[0]["paper"])}</th>{"".join(cells)}</tr>')
    shown = {r["verdict"] for r in results}
    legend = " ".join(f'<span class="chip v-{v}">{SYMBOLS[v]} {v}</span>' for v in VERDICTS
                      if v != "PENDING" or v in shown)
    return (f'<div class="scroll"><table class="grid wide" id="verdict-table"><thead><tr>'
            f'<th scope="col">claim</th><th scope="col">paper</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>'
            f'<p class="note legend">Each cell shows the statistic of every parametrisation '
            f"of that (environment, algorithm); hover for interval and reason. {legend} "
            f'<span class="chip v-NONE">· not run for this combination</span></p>')


def _changes(results: dict[str, Any], previous: dict[ResultKey, Row]) -> str:
    scale = results["scale"]["name"]
    if not previous:
        return (f'<p class="note">No earlier run of scale <code>{esc(scale)}</code> in the '
                "history.</p>")
    flips = []
    for row in results["results"]:
        prev = previous.get(result_key(row["claim_id"], row["params"]))
        if prev is not None and prev.get("verdict") != row["verdict"] != "PENDING":
            flips.append(
                f'<tr class="changed" data-claim-id="{esc(row["claim_id"])}">'
                f'<th scope="row"><a href="#claim-{esc(row["claim_id"])}"><code>'
                f'{esc(row["claim_id"])}</code></a></th>'
                f'<td class="params">{label_html(params_label(row["params"]))}</td>'
                f'<td class="v-{esc(prev.get("verdict"))}">{esc(prev.get("verdict"))}</td>'
                f'<td class="mono">{esc(prev.get("run_id"))}</td>'
                f'<td class="v-{row["verdict"]}">{row["verdict"]}</td></tr>')
    if not flips:
        return (f'<p class="note">No verdict changed since the previous run of scale '
                f"<code>{esc(scale)}</code>.</p>")
    return (f'<p>{len(flips)} verdict(s) changed since the previous run of scale '
            f'<code>{esc(scale)}</code>:</p><div class="scroll"><table class="grid" '
            'id="changes-table"><thead><tr><th>claim</th><th>parameters</th>'
            "<th>previous verdict</th><th>previous run</th><th>now</th></tr></thead>"
            f"<tbody>{''.join(flips)}</tbody></table></div>")


def _claim_article(claim_id: str, rows: list[Row], uid: str,
                   previous: dict[ResultKey, Row]) -> str:
    first = rows[0]
    counts = Counter(r["verdict"] for r in rows)
    summary = " ".join(f'<span class="chip v-{v}">{SYMBOLS[v]} {counts[v]} {v}</span>'
                       for v in VERDICTS if counts[v])
    trs = []
    for r in rows:
        prev = previous.get(result_key(r["claim_id"], r["params"]))
        was = ""
        if prev is not None and prev.get("verdict") != r["verdict"] != "PENDING":
            was = (f'<span class="changed">was {esc(prev.get("verdict"))}</span> '
                   f'<span class="mono">({esc(prev.get("run_id"))})</span>')
        ref = r.get("reference")
        if ref:
            flags = [f for f, on in (("moved", ref.get("moved")), ("outside its interval",
                                                                  ref.get("outside"))) if on]
            was += (f'<span class="reference{" changed" if flags else ""}">reference '
                    f'{esc(ref["verdict"])} {esc(num(ref.get("statistic")))} '
                    f'{esc(interval_text(ref.get("interval")))}'
                    f'{": " + ", ".join(flags) if flags else ""}</span>')
        reps = f"{num(r.get('n_agents'))} × {num(r.get('n_repeats'))}"
        level = alpha_side(r)
        p_claim, p_refute = r["p_value"], r.get("p_refute")
        reading = reading_of(r)
        note = f'<p class="reading"><b>Reading:</b> {esc(reading)}</p>' if reading else ""
        power = power_sentence(r)
        if power:
            note += f'<p class="power"><b>To decide:</b> {esc(power)}</p>'
        trs.append(
            f'<tr><td class="params" title="{esc(r["nodeid"])}">'
            f'{label_html(params_label(r["params"]))}'
            f'</td><td class="num">{esc(num(r["statistic"]))}</td>'
            f'<td class="num">{esc(interval_text(r["interval"]))}</td>'
            f'<td class="num">{esc(decision_text(r))}</td>'
            f'<td class="num"{significant(p_claim, level)}>{esc(num(p_claim))}</td>'
            f'<td class="num"{significant(p_refute, level)}>{esc(num(p_refute))}</td>'
            f'<td class="verdict v-{r["verdict"]}" data-verdict="{r["verdict"]}">{r["verdict"]}'
            f'</td><td class="reason">{esc(r["reason"])}{note}</td><td class="num">{reps}</td>'
            f'<td class="num">{esc(duration(r.get("duration_s")))}</td><td>{was}</td></tr>')
    return (
        f'<article class="claim" id="claim-{esc(claim_id)}"><h4>{esc(claim_id)}</h4>'
        f'<p class="sentence">{esc(first["sentence"])}</p>'
        f'<table class="kv"><tr><th>paper</th><td>{esc(first["paper"])}</td></tr>'
        f'<tr><th>statistic</th><td>{esc(first["statistic_name"])}</td></tr>'
        f"<tr><th>verdict rule</th><td>{esc(rule_text(first))}</td></tr>"
        f"<tr><th>verdicts</th><td>{summary}</td></tr></table>"
        f"{forest_svg(rows, uid=uid)}"
        f'<div class="scroll"><table class="grid wide results"><thead><tr><th>parameters</th>'
        "<th>statistic</th><th>95% interval</th><th>decided on</th><th>p (claim side)</th>"
        "<th>p (other side)</th><th>verdict</th>"
        "<th>reason</th><th>agents × repeats</th><th>duration</th><th>change</th></tr></thead>"
        f"<tbody>{''.join(trs)}</tbody></table></div></article>")


def _figures(figures: dict[str, Any]) -> str:
    parts = []
    for fig in paper_figures(figures):
        parts.append(f'<section id="{fig.anchor}"><h3>{esc(fig.title)}</h3>'
                     f'<p class="sub">{esc(fig.description)}</p>')
        if not fig.drawings:
            parts.append('<p class="missing">Not measured at this scale.</p>')
        for d in fig.drawings:
            body = d.svg if d.svg is not None else f'<p class="missing">{esc(d.error)}</p>'
            parts.append(f"<figure>{body}<figcaption>{esc(d.caption)}</figcaption></figure>")
        parts.append("</section>")
    return "".join(parts)


def substitution_sentence(provenance: dict[str, Any]) -> str:
    """The environment substitution, stated in every report (CLAIMS.md, Environments)."""
    subs = provenance.get("env_substitution") or {}
    if not subs:
        return ("Environment substitution: none recorded in this run's provenance "
                "(provenance.env_substitution is empty).")
    pairs = ", ".join(f"{paper} → {ours}" for paper, ours in subs.items())
    return ("Environment substitution: the paper used the mujoco-py v2 environments; this run "
            f"uses gymnasium v5 environments on the mujoco bindings instead ({pairs}).")


def _provenance(results: dict[str, Any]) -> str:
    prov, scale = results["provenance"], results["scale"]
    boot = prov.get("bootstrap") or {}
    commit = prov.get("git_commit") or "not recorded"
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)"}.get(prov.get("git_dirty"),
                                                                            "")
    items = [
        ("run id", results["run_id"]), ("created", results["created"]),
        ("scale", scale["name"]), ("seeds", ", ".join(map(str, scale.get("seeds", []))) or "n/a"),
        ("git commit", f"{commit}{dirty}"), ("python", prov.get("python") or "not recorded"),
        ("platform", prov.get("platform") or "not recorded"),
        ("machine", prov.get("machine") or "not recorded"),
        ("bootstrap", ", ".join(f"{k} = {v}" for k, v in boot.items()) or "not recorded"),
        ("wall time", duration(prov.get("wall_time_s"))),
    ]
    kv = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items)
    pkgs = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                   for k, v in sorted((prov.get("packages") or {}).items()))
    return (f'<p id="env-substitution">{esc(substitution_sentence(prov))}</p>'
            f'<table class="kv">{kv}</table><h3>Package versions</h3>'
            f'<table class="kv mono">{pkgs or "<tr><td>not recorded</td></tr>"}</table>'
            f"{agents_section(prov)}{protocol_fields_table(results)}")


TASK_LABELS = {"training": "agent training runs", "gradients": "gradient studies",
               "value": "value studies", "steps": "step studies", "landscape": "landscapes",
               "ablation": "ablation runs"}
"""Names of the cost plan's task kinds (``partial.remaining.by_kind``); others as they are."""


def _partial(results: dict[str, Any]) -> str:
    """The banner of a run stopped before every test was measured (results.json "partial")."""
    part = results.get("partial")
    if not part:
        return ""
    left = part.get("remaining")
    if left is None:
        remains = "What remains could not be planned."
    else:
        kinds = ", ".join(f"{row.get('count', 0)} {TASK_LABELS.get(kind, kind)}"
                          for kind, row in left["by_kind"].items())
        hours = left["core_hours"]
        remains = (f"What remains by the cost plan: {left['tasks']} measurements or training "
                   f"runs ({kinds or 'none'}), {num(left['pairs'])} state-action pairs"
                   + (f", about {num(hours)} core-hours" if hours is not None else "")
                   + (f" (rates measured {left['rates_measured']})"
                      if left.get("rates_measured") else "") + ".")
    return (f'<div class="partial" id="partial"><b>Partial run.</b> {esc(part["reason"])}: '
            f'{part["pending_tests"]} of {part["tests"]} tests are PENDING (not measured). '
            f"{esc(remains)} Run the same command again on the same cache to continue: "
            "finished measurements are read back, not repeated.</div>")


def _header(results: dict[str, Any]) -> str:
    counts = Counter(r["verdict"] for r in results["results"])
    badges = "".join(f'<div class="count v-{v}" id="count-{v}"><b>{counts[v]}</b>{v}</div>'
                     for v in VERDICTS if v != "PENDING" or counts[v])
    profile = "".join(
        f"<div><b>{esc(k)}</b> <code>{esc(json.dumps(v))}</code></div>" if k != "external"
        else "<div><b>external</b> <a href='#agents'>agents trained elsewhere</a></div>"
        for k, v in results["scale"].items())
    return (
        "<header><h1>A Closer Look at Deep Policy Gradients — claims report</h1>"
        f'<p class="sub">Run <code>{esc(results["run_id"])}</code> · scale '
        f'<b>{esc(results["scale"]["name"])}</b> · created {esc(results["created"])} · wall time '
        f'{esc(duration(results["provenance"].get("wall_time_s")))} · '
        f'{len(results["results"])} tests{" · partial" if results.get("partial") else ""}'
        f'</p><div class="counts">{badges}</div>{_partial(results)}'
        f'<p class="note">{esc(substitution_sentence(results["provenance"]))}</p>'
        f'<p class="note">{error_control_text(results)}</p>'
        f"{protocol_note(results)}"
        f'<details><summary>Scale profile <code>{esc(results["scale"]["name"])}</code>'
        f'</summary><div class="profile">{profile}</div></details></header>')


def _reference(results: dict[str, Any]) -> str:
    """The "Against the reference" section, only when the run was compared with one."""
    if not results.get("reference"):
        return ""
    return (f'<section id="reference"><h2>Against the reference</h2>'
            f"{reference_section(results)}</section>")


def _nav(protocols: bool, reference: bool = False) -> str:
    links = [("answer", "answer"), ("summary", "all rows"),
             *([("protocols", "protocols")] if protocols else []),
             *([("reference", "reference")] if reference else []),
             ("changes", "changes"), ("claims", "claims"),
             ("power", "power"), ("multiple-testing", "multiple testing"),
             ("figures", "paper figures"),
             ("provenance", "provenance")]
    return "<nav>" + "".join(f"<a href='#{a}'>{text}</a>" for a, text in links) + "</nav>"


def build_page(results: dict[str, Any], history: list[Row] | None = None) -> str:
    """The whole HTML document as a string (no file is written)."""
    rows = results["results"]
    grouped = _claims(rows)
    previous = previous_verdicts(history or [], results)
    articles, k = [], 0
    for section, claims in grouped.items():
        articles.append(f"<h3>{esc(section)}</h3>")
        for claim_id, claim_rows in claims.items():
            articles.append(_claim_article(claim_id, claim_rows, f"forest{k}", previous))
            k += 1
    protocols = has_protocol_view(results)
    compared = (f'<section id="protocols"><h2>Protocols</h2>{protocols_section(results)}'
                "</section>" if protocols else "")
    body = (
        f"{_header(results)}{_nav(protocols, bool(results.get('reference')))}"
        f'<section id="answer"><h2>The answer</h2>{answer_section(results)}</section>'
        f'<section id="summary"><h2>All claims</h2>'
        f"{_verdict_table(grouped, rows) if rows else '<p>No claim results in this run.</p>'}"
        f'</section>{compared}{_reference(results)}'
        f'<section id="changes"><h2>Changed since the previous run</h2>'
        f"{_changes(results, previous)}</section>"
        f'<section id="claims"><h2>Claims</h2>{"".join(articles)}</section>'
        f'<section id="power"><h2>What would decide the INCONCLUSIVE results</h2>'
        f"{power_section(rows)}</section>"
        f'<section id="multiple-testing"><h2>Multiple testing</h2>'
        f'<p id="error-control">{error_control_text(results)}</p>'
        f'{multiple_testing(rows, results["provenance"].get("error_control"))}'
        f'</section><section id="figures"><h2>Paper figures, redrawn</h2>'
        f'{_figures(results.get("figures") or {})}</section>'
        f'<section id="provenance"><h2>Provenance</h2>{_provenance(results)}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>pgclaims · {esc(results["run_id"])}</title><style>{CSS}</style></head>'
        f"<body>{body}</body></html>\n")


def render(results: dict[str, Any], out: Path, *, history: list[Row] | None = None) -> Path:
    """Write the report of ``results`` to ``out`` (a file, or a directory to hold index.html).

    ``history`` are rows from :func:`read_history`, used for "changed since the previous run".
    The file is replaced atomically, so a failure leaves any previous report as it was.
    Returns the path written.
    """
    out = Path(out)
    if out.is_dir():
        out = out / "index.html"
    write_atomic(out, build_page(results, history))
    return out
