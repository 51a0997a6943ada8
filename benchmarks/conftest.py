"""Benchmark collection and the ratio table.

Run with ``pytest benchmarks`` (never with ``-n``: pytest-benchmark disables itself under
xdist). The benchmark files are named ``bench_*.py`` so that no ``test_*`` pattern picks them
up by accident; pyproject's ``python_files`` collects them when this directory is given
(the default ``testpaths`` is ``tests``, so a plain ``pytest`` never runs them).

The machine is shared, so absolute seconds mean little: every pgclaims figure is reported as a
ratio to Stable-Baselines3's PPO measured in the same run on the same environment.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

RATIOS: list[tuple[str, str]] = []
"""(benchmark name, "ours/SB3 = ..." or the reason there is no ratio), in run order."""


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """One torch thread for both sides, as ``pgclaims.agents.train`` runs."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _needs_timing(benchmark: Any) -> None:
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled (under xdist or --benchmark-disable): "
                    "run `pytest benchmarks` without -n")


@pytest.fixture
def ratio_table() -> list[tuple[str, str]]:
    return RATIOS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RATIOS:
        return
    terminalreporter.section("Stable-Baselines3 PPO / pgclaims, seconds per training iteration")
    width = max(len(name) for name, _ in RATIOS)
    for name, text in RATIOS:
        terminalreporter.write_line(f"{name:{width}}  {text}")
