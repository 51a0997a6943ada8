"""The HTML report of a claims run: read results.json, render index.html, keep the history.

The report never computes a claim statistic; it shows what the claims suite wrote
(``docs/results-schema.md``) and adjusts the given p-values for multiple testing with
``pgclaims.stats.holm`` and ``pgclaims.stats.benjamini_hochberg``.
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
