"""Re-run the course notebooks and store their outputs as nbval's reference copies.

The notebooks in notebooks/ are committed without outputs (students run them
themselves). nbval needs stored outputs to compare against, so the reference
copies live in tests/notebooks/: the same cells, with the outputs of one run.
``make test`` runs those copies under nbval and checks that their cells still
match notebooks/ (tests/test_course.py), so edit notebooks/, then run:

    .venv/bin/python tools/refresh_notebook_outputs.py [NN ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "notebooks"
REFERENCE = ROOT / "tests" / "notebooks"


def refresh(path: Path) -> Path:
    """Execute one notebook from notebooks/ and write its reference copy."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(REFERENCE)}}).execute()
    # Widget state is not compared by nbval and could hold a Password field's value.
    nb.metadata.pop("widgets", None)
    target = REFERENCE / path.name
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="*", help="only these notebooks, e.g. 03 07")
    args = parser.parse_args(argv)
    paths = sorted(SOURCE.glob("[0-9][0-9]-*.ipynb"))
    if args.numbers:
        paths = [p for p in paths if p.name[:2] in args.numbers]
    REFERENCE.mkdir(exist_ok=True)
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        refresh(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
