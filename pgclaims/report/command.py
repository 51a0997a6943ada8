"""``pgclaims report RUN_DIR [--out FILE]``: re-render a run's index.html from its results.json.

Exit status 0 on success, 2 on bad input with exactly one ``pgclaims report: error: ...`` line
on stderr; an existing index.html is only ever replaced by a complete new one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pgclaims.fsio import check_writable_dir, describe

from .history import read_history
from .page import render
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
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a run folder, e.g. reports/20261123-201500-smoke")
    parser.add_argument("--out", type=Path, metavar="FILE", default=None,
                        help="where to write the report (default: RUN_DIR/index.html)")
    return parser


def main_report(argv: Sequence[str] | None = None) -> int:
    """Run the ``report`` subcommand with ``argv`` (without the subcommand); return the exit code.

    Reads ``RUN_DIR/results.json`` and, when present, ``RUN_DIR/../history.jsonl`` for the
    "changed since the previous run" view.
    """
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        run_dir: Path = args.run_dir
        results = load_results(run_dir)
        history = read_history(run_dir.resolve().parent / HISTORY_FILE)
        out: Path = args.out if args.out is not None else run_dir / "index.html"
        if not out.parent.is_dir():
            raise ReportError(f"{out.parent}: output folder does not exist")
        check_writable_dir(out.parent)  # a read-only folder is found before the figures
        written = render(results, out, history=history)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except ReportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {describe(exc)}", file=sys.stderr)
        return 2
    print(written)
    return 0
