"""Hooks the claims suite offers to later rooms, so that it never imports them.

The report (:mod:`pgclaims.report.plugin`) implements :func:`pytest_pgclaims_publish`; the
repository's ``conftest.py`` loads both plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_pgclaims_publish(doc: dict[str, Any], run_dir: Path, reports_dir: Path,
                            warn: Callable[[str], None], config: pytest.Config) -> Path | None:
    """Publish a finished run whose ``results.json`` is written: return the HTML page's path,
    or None. ``warn(message)`` reports a step that failed without failing the run; ``config``
    is the run's (its options and stash)."""
