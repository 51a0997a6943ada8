"""The package's rooms and the one-way flow between them (STYLE.md: "the data flows one way").

agents <- measure <- stats/suite <- report <- cli: a module may import from its own room and the
rooms before it, never from one after it, and no chain of imports leads back to where it began.
Every import counts, the ones inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pgclaims

ROOT = Path(pgclaims.__file__).parent

_CLI = {"fsio", "agents", "adapters", "measure", "stats", "suite", "report", "cli", "options",
        "measure_command"}
ALLOWED = {
    "fsio": set(),  # atomic writes and one-line OS errors: the floor every room stands on
    "agents": {"fsio", "agents"},
    "measure": {"fsio", "agents", "measure"},
    "adapters": {"fsio", "agents", "adapters"},
    "stats": {"stats"},
    "suite": {"fsio", "agents", "measure", "stats", "suite", "options"},  # pytest options
    "report": {"fsio", "report"},
    "cli": _CLI,
    "options": {"agents"},  # argparse types shared by both command lines (pgclaims, pytest)
    "measure_command": _CLI,  # the measure command, out of cli.py
    "": set(),  # pgclaims/__init__.py
}
"""Which rooms each room may import. The report reads results.json only (it never computes a
statistic), stats is plain functions of arrays, measure never trains, agents know nothing else."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(module: str) -> set[str]:
    """The pgclaims modules that ``module`` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "pgclaims")
    found.discard(module)
    return {n for n in found if n in MODULES}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_rooms_exist() -> None:
    rooms = {room_of(m) for m in MODULES} - {""}
    assert rooms == set(ALLOWED) - {""}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_room_after_its_own(module: str) -> None:
    room = room_of(module)
    upward = sorted(i for i in GRAPH[module] if room_of(i) not in ALLOWED[room])
    assert not upward, f"{module} ({room or 'package'}) imports {upward}"


def _parents(module: str) -> set[str]:
    """Packages whose ``__init__`` runs before ``module`` (not a dependency of its own)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_circular_imports() -> None:
    # A submodule importing its own package's __init__ (which re-exports it) is how Python
    # packages work, not a cycle between concepts; everything else must form a DAG.
    graph = {m: {i for i in deps if i not in _parents(m)} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("circular import: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk is not vacuous: it finds lazy, relative and aliased imports."""
    assert "pgclaims.agents.agent" in GRAPH["pgclaims.agents.train"]
    assert "pgclaims.report.page" in GRAPH["pgclaims.report.plugin"]
    assert any(room_of(i) == "report" for i in GRAPH["pgclaims.cli"])
    assert "report" not in ALLOWED["suite"] and "suite" not in ALLOWED["measure"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_what_it_holds(module: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    assert doc, f"{MODULES[module]} has no module docstring"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_short(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 420, f"{MODULES[module]} has {lines} lines (STYLE.md: ~400)"


def test_paths_relative_to_the_package_still_reach_the_repository() -> None:
    """A module that moved rooms must not lose the folders it finds relative to itself."""
    from pgclaims.agents import fixtures
    from pgclaims.measure import cache

    repo = ROOT.parent
    assert fixtures.ROOT == repo / "fixtures"
    assert (fixtures.ROOT / "manifest.json").is_file()
    assert cache.Path(cache.__file__).resolve().parents[2] == repo
