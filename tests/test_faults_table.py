"""The fault table (issue 20, docs/faults.md) as tests: every case of
:data:`benchmarks.faults.CASES` run through the real command line in a folder of its own.

Each asserts what pgclaims guarantees under that fault: the expected exit status; no traceback;
an error that is one line naming the file or option; every file that was there before still
there byte for byte, no temporary file left, nothing written by a refused command; no process
of the command alive 5 s after it ended (the kill -9 cases: its workers). The cases and their
checks live in ``benchmarks/faults.py`` (one definition; ``python benchmarks/faults.py``
prints the same cases as the table). The shared material (a 2-iteration run, a 2-iteration
fixture store, an SB3 zip) is made once per module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults import CASES, Case, make_shared, run_case

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_shared(tmp_path_factory.mktemp("shared"))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_fault(case: Case, shared: dict[str, Path], tmp_path: Path) -> None:
    o = run_case(case, shared, tmp_path)
    if o.skipped:
        pytest.skip(o.skipped)
    said = f"rc {o.rc}\nstdout: {o.out[-1500:]}\nstderr: {o.err[-1500:]}"
    assert "Traceback" not in o.err + o.out, said
    assert o.rc == case.rc, said
    assert not any(p.startswith("hang") for p in o.problems), said
    assert o.changed == [], f"files changed or lost: {o.changed}"
    assert not [w for w in o.written if w.endswith(".tmp")], f"temporary files: {o.written}"
    assert o.strays == 0, f"{o.strays} processes of the command still running after 5 s"
    assert o.problems == [], f"{o.problems}\n{said}"  # the error line, its words, no writes


def test_the_table_has_at_least_45_distinct_cases() -> None:
    assert len(CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)
