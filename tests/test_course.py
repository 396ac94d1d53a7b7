"""The course notebooks as teaching material: structure, navigation, reference copies.

nbval runs the reference copies in tests/notebooks/ (cells + the outputs of one run)
and compares outputs; these tests make sure those copies are the notebooks students
get, and that every notebook keeps the course's shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
COURSE = [
    "00-start-here", "01-concepts", "02-manager-conf", "03-connect", "04-login",
    "05-basic-actions", "06-actionid", "07-live-events", "08-logoff", "09-security",
    "10-troubleshooting",
]


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def test_the_course_has_one_notebook_per_step_of_the_guide() -> None:
    assert [p.stem for p in NOTEBOOKS] == COURSE


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, _text(cell)[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_reference_copy_has_the_same_cells(path: Path) -> None:
    reference = ROOT / "tests" / "notebooks" / path.name
    assert reference.exists(), f"run: .venv/bin/python tools/refresh_notebook_outputs.py {path.name[:2]}"
    mine = [(c["cell_type"], _text(c)) for c in _cells(path)]
    theirs = [(c["cell_type"], _text(c)) for c in _cells(reference)]
    assert mine == theirs, f"stale: run .venv/bin/python tools/refresh_notebook_outputs.py {path.name[:2]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_objectives_and_has_an_exercise_with_a_hidden_solution(path: Path) -> None:
    cells = _cells(path)
    first = _text(cells[0])
    assert first.startswith(f"# {path.name[:2]} · ")
    assert "**Objectives**" in first
    assert any(_text(c).startswith("### Try it") for c in cells if c["cell_type"] == "markdown")
    solutions = [c for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]
    assert solutions and all(c["metadata"]["jupyter"]["source_hidden"] for c in solutions)


def test_navigation_links_are_up_to_date() -> None:
    tool = ROOT / "tools" / "notebook_nav.py"
    done = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
