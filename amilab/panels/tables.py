"""Minimal HTML tables for the panels' HTML widgets.

``DataFrame.to_html`` costs about 130 ms for 500 event rows; a live panel
redraws several times a second, so its table is built here from plain
strings: escaped cells, no inline styles (the panel's CSS, sent once, styles
them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

import pandas as pd


def html_table(columns: Sequence[str], rows: Iterable[Sequence[str]], css_class: str) -> str:
    """A ``<table class=css_class>`` with one header row and one row per item;
    every cell is text, escaped."""
    head = "".join(f"<th>{escape(c, quote=False)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell, quote=False)}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def frame_table(frame: pd.DataFrame, css_class: str) -> str:
    """A small DataFrame (an action's answer) as :func:`html_table`: missing
    values empty, everything else as ``str()`` shows it."""
    text = frame.astype(object).where(frame.notna(), "")
    rows = ([str(v) for v in row] for row in text.itertuples(index=False, name=None))
    return html_table([str(c) for c in frame.columns], rows, css_class)
