"""The HTML report of a claims run: read results.json, render index.html, keep the history.

The report never computes a statistic: it shows what the claims suite wrote
(``docs/results-schema.md``), the Holm and Benjamini-Hochberg adjustments included. It imports
nothing else of pgclaims; :mod:`pgclaims.report.plugin` hooks it into a claims run.
"""

from .command import main_report
from .files import update_latest
from .history import append_history, read_history
from .page import render
from .schema import ReportError, load_results

__all__ = [
    "ReportError",
    "append_history",
    "load_results",
    "main_report",
    "read_history",
    "render",
    "update_latest",
]
