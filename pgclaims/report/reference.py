"""A run against the published reference runs: which verdicts moved, which statistics left the
reference interval.

The reference of a protocol is one default-scale claims run from a fresh clone, committed under
``docs/reference/<protocol>/`` (its results.json, report and provenance; ``docs/reference.md``).
Every later run of the same scale is read against it: for each row, the reference row of the
same claim, protocol and parameters (:func:`pgclaims.report.history.result_key`), whether the
verdict moved, and whether this run's statistic lies outside the reference's interval. A
reference of another scale is never compared (the sample sizes differ, so its verdicts are not
the same question); a row the reference lacks, or a PENDING row on either side, is counted but
not compared. Nothing is estimated here: the comparison is of recorded verdicts and numbers.

The comparison is recorded in results.json (``reference``: the summary; ``results[].reference``:
the row's reference verdict, statistic and interval and the two flags; ``docs/results-schema.md``)
and shown by the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .fmt import esc, interval_text, label_html, num
from .forest import params_label
from .history import ResultKey, result_key
from .schema import RESULTS_FILE, ReportError, load_results

Row = dict[str, Any]
REFERENCE_DIR = Path("docs") / "reference"
"""Where the published reference runs live, relative to the repository root."""
UNCOMPARED = ("PENDING",)
"""Verdicts that are not compared: the row was not measured."""


def find_references(root: Path) -> dict[str, Path]:
    """Protocol name -> reference run folder: every ``root/<protocol>/results.json``. A ``root``
    that does not exist is an error naming it; a folder without results.json is skipped."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: no such reference folder (expected <protocol>/"
                          f"{RESULTS_FILE} inside, e.g. {REFERENCE_DIR})")
    return {d.name: d for d in sorted(root.iterdir())
            if d.is_dir() and (d / RESULTS_FILE).is_file()}


def load_references(root: Path, protocols: Iterable[str | None] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Protocol name -> the validated results.json of its reference run under ``root``, for
    ``protocols`` (all found when None; a protocol without a reference is left out). A damaged
    reference is a :class:`ReportError` naming the file."""
    found = find_references(root)
    wanted = found if protocols is None else {p: found[p] for p in protocols
                                              if p is not None and p in found}
    return {p: load_results(d) for p, d in wanted.items()}


def _by_key(doc: dict[str, Any]) -> dict[ResultKey, Row]:
    return {result_key(r["claim_id"], r["params"]): r for r in doc["results"]}


def outside(statistic: Any, interval: Any) -> bool | None:
    """Whether ``statistic`` lies outside ``interval`` (None when either is missing)."""
    if statistic is None or not isinstance(interval, list | tuple) or len(interval) != 2:
        return None
    lo, hi = interval
    return bool(statistic < lo or statistic > hi)


def compare(results: dict[str, Any], references: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The comparison of ``results`` with ``references`` (protocol -> reference results.json):
    ``{"summary": ..., "rows": {nodeid: ...}}``, built-in types only.

    ``summary`` has, per protocol, the reference's run id, created time, commit and scale and
    whether it was used (same scale name as this run); and the counts ``rows`` (this run's),
    ``compared``, ``moved`` (verdicts that differ), ``outside`` (statistics outside the
    reference interval), ``missing`` (rows the reference lacks) and ``pending`` (rows not
    compared because one side was not measured). A row's entry has the reference ``verdict``,
    ``statistic``, ``interval`` and ``run_id`` and the flags ``moved`` and ``outside``."""
    scale = results["scale"]["name"]
    used: dict[str, dict[ResultKey, Row]] = {}
    described: dict[str, dict[str, Any]] = {}
    for protocol, ref in sorted(references.items()):
        same = ref["scale"]["name"] == scale
        described[protocol] = {
            "run_id": ref["run_id"], "created": ref["created"],
            "git_commit": ref["provenance"].get("git_commit"), "scale": ref["scale"]["name"],
            "measure_seed": ref["provenance"].get("measure_seed", 0), "used": same,
            **({} if same else {"why_not": f"reference scale {ref['scale']['name']!r}, this "
                                           f"run {scale!r}"})}
        if same:
            used[protocol] = _by_key(ref)
    counts = {"rows": 0, "compared": 0, "moved": 0, "outside": 0, "missing": 0, "pending": 0}
    rows: dict[str, dict[str, Any]] = {}
    for row in results["results"]:
        protocol = row["params"].get("protocol")
        table = used.get(str(protocol)) if protocol is not None else None
        if table is None:
            continue
        counts["rows"] += 1
        ref = table.get(result_key(row["claim_id"], row["params"]))
        if ref is None:
            counts["missing"] += 1
            continue
        entry: dict[str, Any] = {"verdict": ref["verdict"], "statistic": ref.get("statistic"),
                                 "interval": ref.get("interval"),
                                 "run_id": described[str(protocol)]["run_id"],
                                 "moved": None, "outside": None}
        rows[row["nodeid"]] = entry
        if row["verdict"] in UNCOMPARED or ref["verdict"] in UNCOMPARED:
            counts["pending"] += 1
            continue
        counts["compared"] += 1
        entry["moved"] = row["verdict"] != ref["verdict"]
        entry["outside"] = outside(row.get("statistic"), ref.get("interval"))
        counts["moved"] += entry["moved"]
        counts["outside"] += bool(entry["outside"])
    return {"summary": {"references": described, **counts}, "rows": rows}


def attach(results: dict[str, Any], comparison: dict[str, Any]) -> dict[str, Any]:
    """``results`` with the comparison recorded: ``reference`` (the summary) at the top and
    ``reference`` on every compared row (a new dict; ``results`` is not changed)."""
    rows = [({**r, "reference": comparison["rows"][r["nodeid"]]}
             if r["nodeid"] in comparison["rows"] else r) for r in results["results"]]
    return {**results, "results": rows, "reference": comparison["summary"]}


def drift(results: dict[str, Any]) -> list[Row]:
    """The rows of a results document whose verdict moved from the reference."""
    return [r for r in results["results"] if (r.get("reference") or {}).get("moved")]


def drift_message(results: dict[str, Any]) -> str:
    """One line for ``--fail-on-drift``: how many verdicts moved, and the first few."""
    moved = drift(results)
    shown = "; ".join(f"{r['claim_id']} [{params_label(r['params'])}] "
                      f"{r['reference']['verdict']} -> {r['verdict']}" for r in moved[:5])
    more = f"; and {len(moved) - 5} more" if len(moved) > 5 else ""
    return f"{len(moved)} verdict(s) moved from the reference: {shown}{more}"


def section(results: dict[str, Any]) -> str:
    """The report's "Against the reference" section (HTML): what was compared with what, and a
    table of the rows whose verdict moved or whose statistic left the reference interval."""
    summary = results.get("reference")
    if not summary:
        return ('<p class="note">Not compared with a reference run (none given, or none of '
                "this run's protocols and scale; <code>--reference DIR</code>).</p>")
    refs = summary["references"]
    lines = []
    for protocol, ref in refs.items():
        commit = (ref.get("git_commit") or "")[:10]
        what = (f"<code>{esc(protocol)}</code>: reference run <code>{esc(ref['run_id'])}</code> "
                f"(scale <code>{esc(ref['scale'])}</code>, commit <code>{esc(commit)}</code>)")
        lines.append(f"<li>{what}{'' if ref['used'] else ' not used: ' + esc(ref['why_not'])}"
                     "</li>")
    head = (f"<ul>{''.join(lines)}</ul><p>{summary['compared']} of {summary['rows']} rows "
            f"compared: <b>{summary['moved']} verdict(s) moved</b>, {summary['outside']} "
            f"statistic(s) outside the reference interval"
            + (f", {summary['missing']} row(s) not in the reference" if summary["missing"] else "")
            + (f", {summary['pending']} not compared (PENDING)" if summary["pending"] else "")
            + ".</p>")
    flagged = [r for r in results["results"] if (r.get("reference") or {}).get("moved")
               or (r.get("reference") or {}).get("outside")]
    if not flagged:
        return head
    body = []
    for r in flagged:
        ref = r["reference"]
        body.append(
            f'<tr class="{"moved" if ref["moved"] else "outside"}" '
            f'data-claim-id="{esc(r["claim_id"])}">'
            f'<th scope="row"><a href="#claim-{esc(r["claim_id"])}"><code>'
            f'{esc(r["claim_id"])}</code></a></th>'
            f'<td class="params">{label_html(params_label(r["params"]))}</td>'
            f'<td class="v-{esc(ref["verdict"])}">{esc(ref["verdict"])}</td>'
            f'<td class="mono">{num(ref["statistic"])} {interval_text(ref["interval"])}</td>'
            f'<td class="v-{esc(r["verdict"])}">{esc(r["verdict"])}</td>'
            f'<td class="mono">{num(r.get("statistic"))}</td>'
            f'<td>{"verdict moved" if ref["moved"] else ""}'
            f'{"; " if ref["moved"] and ref["outside"] else ""}'
            f'{"outside the reference interval" if ref["outside"] else ""}</td></tr>')
    return (head + '<div class="scroll"><table class="grid" id="reference-table"><thead><tr>'
            "<th>claim</th><th>parameters</th><th>reference</th><th>reference statistic</th>"
            "<th>now</th><th>statistic</th><th>flag</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


__all__ = ["REFERENCE_DIR", "attach", "compare", "drift", "drift_message", "find_references",
           "load_references", "outside", "section"]
