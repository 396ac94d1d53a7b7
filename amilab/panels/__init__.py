"""Live ipywidgets panels over an AMI client: put one last in a notebook cell.

* :class:`ConnectionPanel` — host, port, user, secret; connect, log in, log off
  (falls back to the simulated Asterisk when nothing answers);
* :class:`EventStreamPanel` — the live event stream of Step 7;
* :class:`ActionPanel` — send an action of the course's reference table and
  see the raw bytes beside the parsed answer;
* :class:`PhonePanel` — the softphones of Demos 1-3, on the simulated Asterisk.

Each panel has ``frame()`` (the table it shows) and ``status`` (its status
line), so notebooks and tests can check it without a browser.
"""

from amilab.panels.actions import ActionPanel
from amilab.panels.connection import ConnectionPanel
from amilab.panels.events import EventStreamPanel
from amilab.panels.phones import PhonePanel

__all__ = ["ActionPanel", "ConnectionPanel", "EventStreamPanel", "PhonePanel"]
