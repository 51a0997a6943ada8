"""``pgclaims report``: re-render a run's index.html from its results.json, or write the results
page from the reference runs.

    pgclaims report RUN_DIR [--out FILE] [--reference DIR [--fail-on-drift]]
    pgclaims report --markdown [--reference DIR] [--out docs/results.md] [--readme README.md]

Exit status 0 on success, 1 when ``--fail-on-drift`` finds verdicts that moved from the
reference (the report is written first), 2 on bad input with exactly one
``pgclaims report: error: ...`` line on stderr; an existing file is only ever replaced by a
complete new one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pgclaims.fsio import check_writable_dir, describe

from .files import write_atomic
from .history import read_history
from .markdown import results_page, update_readme
from .page import render
from .reference import REFERENCE_DIR, attach, compare, drift, drift_message, load_references
from .schema import ReportError, load_results

PROG = "pgclaims report"
HISTORY_FILE = "history.jsonl"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would print usage plus the message over two lines and exit; keep one line.
        raise ReportError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Re-render the HTML report of a claims run from its "
                     "results.json (no statistic is recomputed).")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", nargs="?",
                        help="a run folder, e.g. reports/20261123-201500-smoke")
    parser.add_argument("--out", type=Path, metavar="FILE", default=None,
                        help="where to write the report (default: RUN_DIR/index.html; with "
                        "--markdown: docs/results.md)")
    parser.add_argument("--reference", type=Path, metavar="DIR", default=None,
                        help="reference runs (DIR/<protocol>/results.json, e.g. "
                        f"{REFERENCE_DIR}): every row shows the reference verdict and "
                        "statistic, flagged when the verdict moved or the statistic left the "
                        "reference interval")
    parser.add_argument("--fail-on-drift", action="store_true",
                        help="with --reference: exit 1 when a verdict moved from the reference")
    parser.add_argument("--markdown", action="store_true",
                        help="write the results page (Markdown) from the reference runs "
                        f"(--reference, default {REFERENCE_DIR}) instead of a run's report")
    parser.add_argument("--readme", type=Path, metavar="FILE", default=None,
                        help="with --markdown: also rewrite the headline block of this README")
    return parser


def _markdown(args: argparse.Namespace) -> int:
    if args.run_dir is not None or args.fail_on_drift:
        raise ReportError("--markdown reads the reference runs: give no RUN_DIR and no "
                          "--fail-on-drift")
    docs = load_references(args.reference or REFERENCE_DIR)
    out: Path = args.out or Path("docs") / "results.md"
    if not out.parent.is_dir():
        raise ReportError(f"{out.parent}: output folder does not exist")
    readme = None
    if args.readme is not None:
        try:
            readme = update_readme(args.readme.read_text(encoding="utf-8"), docs)
        except FileNotFoundError:
            raise ReportError(f"{args.readme}: no such README") from None
        except ReportError as exc:
            raise ReportError(f"{args.readme}: {exc}") from None
    write_atomic(out, results_page(docs))
    print(out)
    if readme is not None:
        write_atomic(args.readme, readme)
        print(args.readme)
    return 0


def main_report(argv: Sequence[str] | None = None) -> int:
    """Run the ``report`` subcommand with ``argv`` (without the subcommand); return the exit code.

    Reads ``RUN_DIR/results.json`` and, when present, ``RUN_DIR/../history.jsonl`` for the
    "changed since the previous run" view.
    """
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.markdown:
            return _markdown(args)
        if args.readme is not None:
            raise ReportError("--readme goes with --markdown")
        if args.run_dir is None:
            raise ReportError("give a run folder (RUN_DIR), or --markdown")
        if args.fail_on_drift and args.reference is None:
            raise ReportError("--fail-on-drift needs --reference DIR")
        run_dir: Path = args.run_dir
        results = load_results(run_dir)
        if args.reference is not None:
            protocols = {r["params"].get("protocol") for r in results["results"]}
            results = attach(results, compare(results, load_references(args.reference,
                                                                       protocols)))
        history = read_history(run_dir.resolve().parent / HISTORY_FILE)
        out: Path = args.out if args.out is not None else run_dir / "index.html"
        inputs = (run_dir / "results.json", run_dir.resolve().parent / HISTORY_FILE)
        if out.exists() and any(out.resolve() == p.resolve() for p in inputs):
            raise ReportError(f"--out {out}: is the run's own {out.name}, which the report "
                              "is made from; give an .html file name")
        if not out.parent.is_dir():
            raise ReportError(f"{out.parent}: output folder does not exist")
        check_writable_dir(out.parent)  # a read-only folder is found before the figures
        written = render(results, out, history=history)
        moved = bool(args.fail_on_drift and drift(results))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except ReportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {describe(exc)}", file=sys.stderr)
        return 2
    print(written)
    if moved:
        print(f"{PROG}: {drift_message(results)}", file=sys.stderr)
        return 1
    return 0
