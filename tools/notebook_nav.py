"""Keep the course notebooks' navigation in step: previous/next links and the contents.

Each notebook in notebooks/ is named ``NN-slug.ipynb`` and starts with a markdown cell
whose first line is ``# NN · Title``. This tool rewrites:

* the last cell of every notebook — a markdown cell marked ``<!-- nav -->`` holding links to
  the previous notebook, the contents and the next notebook;
* in ``00-*.ipynb``, the block between ``<!-- contents -->`` and ``<!-- /contents -->``.

Run ``python tools/notebook_nav.py`` after adding or renaming a notebook;
``--check`` exits 1 (listing the notebooks) when something is out of date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAV_MARK = "<!-- nav -->"
CONTENTS = re.compile(r"(<!-- contents -->\n).*?(<!-- /contents -->)", re.S)


def _title(nb: dict) -> str:
    first = "".join(nb["cells"][0]["source"]).splitlines()[0]
    return first.lstrip("# ").strip()


def _markdown_cell(text: str) -> dict:
    lines = text.splitlines(keepends=True)
    # A fixed id: the cell is rewritten on every run, and nbformat wants one.
    return {"cell_type": "markdown", "id": "navigation", "metadata": {}, "source": lines}


def _nav_text(paths: list[Path], titles: list[str], i: int) -> str:
    parts = []
    if i > 0:
        parts.append(f"← Previous: [{titles[i - 1]}]({paths[i - 1].name})")
    if i != 0:
        parts.append(f"[Contents]({paths[0].name})")
    if i + 1 < len(paths):
        parts.append(f"Next: [{titles[i + 1]}]({paths[i + 1].name}) →")
    return f"{NAV_MARK}\n---\n" + " · ".join(parts) + "\n"


def updated(paths: list[Path]) -> dict[Path, str]:
    """The new text of every notebook whose navigation is out of date."""
    books = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    titles = [_title(nb) for nb in books]
    contents = "".join(f"- [{t}]({p.name})\n" for p, t in zip(paths[1:], titles[1:]))
    changed = {}
    for i, (path, nb) in enumerate(zip(paths, books)):
        cells = nb["cells"]
        if cells and "".join(cells[-1]["source"]).startswith(NAV_MARK):
            cells.pop()
        cells.append(_markdown_cell(_nav_text(paths, titles, i)))
        if i == 0:
            for cell in cells:
                text = "".join(cell["source"])
                if cell["cell_type"] == "markdown" and CONTENTS.search(text):
                    new = CONTENTS.sub(lambda m: m[1] + contents + m[2], text)
                    cell["source"] = new.splitlines(keepends=True)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if text != path.read_text(encoding="utf-8"):
            changed[path] = text
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    changed = updated(paths)
    if args.check:
        for path in changed:
            print(f"navigation out of date: {path.name} (run python tools/notebook_nav.py)")
        return 1 if changed else 0
    for path, text in changed.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
