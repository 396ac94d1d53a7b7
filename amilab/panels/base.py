"""What every panel shares: a root widget that displays itself, and a status line.

A panel is a plain object holding widgets, not a widget subclass: put it last
in a cell and Jupyter shows its root widget (:meth:`Panel._repr_mimebundle_`);
tests read :attr:`Panel.status` and the panel's ``frame()`` without a browser.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

import ipywidgets as widgets

log = logging.getLogger(__name__)

#: CSS class of every panel's status line (a browser test looks for it).
STATUS_CLASS = "amilab-status"
#: Added to the status line while it reports an error.
ERROR_CLASS = "amilab-error"
#: The panels' look, sent once per panel (never with each redraw).
PANEL_CSS = """<style>
.amilab-panel table { border-collapse: collapse; font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 12px); }
.amilab-panel th, .amilab-panel td { border-bottom: 1px solid var(--jp-border-color2, #ddd);
  padding: 1px 8px 1px 0; text-align: left; vertical-align: top; white-space: nowrap;
  line-height: 1.4; }
.amilab-panel .amilab-scroll { max-height: 36em; overflow: auto; }
.amilab-panel .amilab-error { color: var(--jp-error-color1, #b00020); }
.amilab-panel pre { margin: 0; font-size: var(--jp-code-font-size, 12px); }
.amilab-panel .amilab-sent { color: var(--jp-info-color1, #0366d6); }
</style>"""


class Panel:
    """Base of the panels: ``widget`` is the root, ``status`` the status text.

    Widget updates may come from any thread (ipykernel sends them safely);
    a panel never prints: problems go to :attr:`status` and to :mod:`logging`.
    """

    #: The root widget's CSS class, e.g. ``"amilab-event-panel"``.
    css_class = ""

    def __init__(self) -> None:
        # an HTML widget, not a Label: a Label cuts a long line short with "…"
        self._status = widgets.HTML(value="")
        self._status.add_class(STATUS_CLASS)
        self._status_text = ""

    def _root(self, *children: widgets.Widget) -> widgets.VBox:
        box = widgets.VBox([widgets.HTML(PANEL_CSS), *children, self._status])
        box.add_class("amilab-panel")
        box.add_class(self.css_class)
        return box

    @property
    def widget(self) -> widgets.VBox:
        """The root widget (display it, or place it in your own layout)."""
        return self._widget

    @property
    def status(self) -> str:
        """The text of the status line, exactly as shown."""
        return self._status_text

    @property
    def status_is_error(self) -> bool:
        """True while the status line reports an error."""
        return ERROR_CLASS in self._status._dom_classes

    def _set_status(self, text: str, *, error: bool = False) -> None:
        self._status_text = text
        self._status.value = escape(text, quote=False)
        if error:
            self._status.add_class(ERROR_CLASS)
        else:
            self._status.remove_class(ERROR_CLASS)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Close the widgets (they disappear from the notebook)."""
        _close_tree(self._widget)


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
