"""The state of one claims run, kept on the pytest config: scale, selection, run folder.

The plugin's hooks (:mod:`pgclaims.suite.plugin`) create it; the per-run session
(:mod:`pgclaims.suite.session`) reads it. It imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pgclaims.stats import ErrorControl
from pgclaims.suite.results import Collector
from pgclaims.suite.scales import Scale


@dataclass
class RunState:
    """Everything the plugin knows about the run, stored on the pytest config."""

    scale: Scale
    scale_label: str
    """The scale name and the --env/--algo filters that narrowed it."""
    claim_patterns: tuple[str, ...]
    run_id: str
    reports_dir: Path
    rootdir: Path
    controller: bool
    """True in the process that reports (no xdist, or the xdist controller)."""
    started: float
    created: str
    excluded: frozenset[str] = frozenset()
    """Envs and algos of the scale that --env/--algo left out: a test whose own parameter
    names one (grad.decays_with_task's ``easier`` env) is deselected."""
    time_budget: str | None = None
    """--time-budget as given; ``budget_s`` its seconds (:mod:`pgclaims.suite.stopping`)."""
    budget_s: float | None = None
    error_control: ErrorControl = field(default_factory=lambda: ErrorControl("row", 1))
    """The level every verdict of the run is decided at (``--error-control``; the family
    size m is the whole scale's, whatever the selection)."""
    measure_seed: int = 0
    """--measure-seed: the seed of every measurement of the run (cached per seed); the
    agents, their training and the sample counts stay the scale's."""
    collector: Collector = field(default_factory=Collector)
    default_junit: Path | None = None
    reports_dir_existed: bool = True
    previous_sink: Any = None
    echo: Any = None

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.run_id


STATE = pytest.StashKey[RunState]()


def state_of(config: pytest.Config) -> RunState:
    return config.stash[STATE]
