"""ActionPanel: send one action of the course's reference table, see the raw
bytes (the ``nc`` view) beside the parsed answer."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from html import escape
from typing import Protocol

import ipywidgets as widgets
import pandas as pd

from amilab.client import ListResult, TranscriptEntry
from amilab.errors import AMIError
from amilab.frames import channels_frame, contacts_frame, endpoints_frame, list_frame
from amilab.panels.base import Panel
from amilab.panels.tables import frame_table
from amilab.protocol import Message

log = logging.getLogger(__name__)

#: A form field: header name, default value, placeholder (a hint when empty).
Field = tuple[str, str, str]

#: The actions of the guide's "Useful AMI Actions Reference", in its order, with
#: their fields and the course's example values. Login and Logoff are left to the
#: ConnectionPanel: Logoff would end the session every other panel uses.
#: Empty fields are not sent (Asterisk then answers as it does to a missing header).
ACTION_FIELDS: dict[str, tuple[Field, ...]] = {
    "Events": (("EventMask", "on", "on, off, or classes such as system,call"),),
    "CoreStatus": (),
    "CoreSettings": (),
    "CoreShowChannels": (),
    "PJSIPShowEndpoints": (),
    "PJSIPShowContacts": (),
    "Command": (("Command", "core show channels", "any CLI command"),),
    "Originate": (
        ("Channel", "PJSIP/1001", "the phone to ring first"),
        ("Exten", "1002", ""),
        ("Context", "internal", ""),
        ("Priority", "1", ""),
        ("Async", "", "true: answer at once, OriginateResponse event later"),
        ("CallerID", "", ""),
        ("Timeout", "", "ms to wait for an answer (30000)"),
    ),
    "Hangup": (
        ("Channel", "", "PJSIP/1001-00000001, or /^PJSIP/1001-.*$/"),
        ("Cause", "", "16 = Normal Clearing"),
    ),
    "Redirect": (
        ("Channel", "", "PJSIP/1001-00000001"),
        ("Exten", "9999", ""),
        ("Context", "internal", ""),
        ("Priority", "1", ""),
    ),
    "Reload": (("Module", "", "empty: reload everything"),),
    "QueueStatus": (("Queue", "", "empty: every queue"),),
    "GetVar": (("Channel", "", "empty: a global variable"), ("Variable", "LABGLOBAL", "")),
    "SetVar": (
        ("Channel", "", "empty: a global variable"),
        ("Variable", "LABGLOBAL", ""),
        ("Value", "hello", ""),
    ),
    "Ping": (),
}
#: List actions whose items have a dedicated table in :mod:`amilab.frames`.
_ITEM_FRAMES: dict[str, Callable[[ListResult], pd.DataFrame]] = {
    "CoreShowChannels": channels_frame,
    "PJSIPShowEndpoints": endpoints_frame,
    "PJSIPShowContacts": contacts_frame,
}
#: ActionIDs the panel makes when the ActionID field is empty.
_action_ids = itertools.count(1)


class ActionClient(Protocol):
    """What the panel needs from a client (:class:`~amilab.AMIClient` has it)."""

    @property
    def transcript(self) -> list[TranscriptEntry]: ...

    def send_list_action(self, name: str, *, check: bool = True, **headers: str) -> ListResult:
        ...


class ActionPanel(Panel):
    """Choose an action, fill its fields, send it.

    Beside the parsed answer the panel shows the exact text that crossed the
    wire for that action, as ``nc`` would (from ``client.transcript``: Secret
    and Key values masked), and a list action's items as a table.

    What a caller can rely on: :meth:`send` never raises for the action's
    outcome (``Response: Error``, Permission denied, a timeout, a lost
    connection, a CR/LF in a field): it is shown in :attr:`status` and the
    tables. The Send button runs the action on a worker thread, so the
    kernel stays free while Asterisk thinks (a sync Originate waits for an
    answer). :meth:`frame`, :meth:`response_frame`, :attr:`raw_text` and
    :attr:`status` return exactly what is shown.
    """

    css_class = "amilab-action-panel"

    def __init__(self, client: ActionClient, *, action: str = "CoreStatus") -> None:
        super().__init__()
        self._client = client
        self._fields: dict[str, widgets.Text] = {}
        self._response_frame = _header_frame(None)
        self._frame = self._response_frame
        self._raw_text = ""
        self._sending = threading.Lock()

        self._action = widgets.Dropdown(options=list(ACTION_FIELDS), description="Action")
        self._action.add_class("amilab-action-name")
        self._action.observe(lambda _: self._build_form(), names="value")
        self._form = widgets.VBox()
        self._form.add_class("amilab-action-fields")
        self._action_id = widgets.Text(description="ActionID", placeholder="empty: one is made up")
        self._action_id.add_class("amilab-action-id")
        self._send_button = widgets.Button(description="Send", icon="paper-plane",
                                           button_style="primary")
        self._send_button.add_class("amilab-action-send")
        self._send_button.on_click(lambda _: self._send_in_background())
        self._raw = widgets.HTML()
        self._raw.add_class("amilab-raw")
        self._response = widgets.HTML()
        self._response.add_class("amilab-response")
        self._items = widgets.HTML()
        self._items.add_class("amilab-list")
        note = widgets.HTML(
            "<small>Login and Logoff: use the connection panel. Every line on the wire "
            "ends with \\r\\n; a blank line ends a message.</small>"
        )
        self._widget = self._root(
            widgets.HBox([self._action, self._send_button]),
            self._form,
            self._action_id,
            note,
            widgets.HBox([
                widgets.VBox([widgets.HTML("<b>On the wire</b>"), self._raw],
                             layout=widgets.Layout(flex="1 1 50%")),
                widgets.VBox([widgets.HTML("<b>Parsed response</b>"), self._response],
                             layout=widgets.Layout(flex="1 1 50%")),
            ]),
            self._items,
        )
        self.choose(action)

    # -- the form -----------------------------------------------------------------

    @property
    def action(self) -> str:
        """The action chosen."""
        return self._action.value

    @property
    def fields(self) -> dict[str, str]:
        """The form's fields as typed (empty ones included)."""
        return {name: box.value for name, box in self._fields.items()}

    def choose(self, action: str, **fields: str) -> None:
        """Pick ``action`` (any case) and fill some of its fields; the others keep
        the course's example values. Raises ValueError for an action outside the
        course's table or a field the action does not have."""
        known = {name.lower(): name for name in ACTION_FIELDS}
        if action.lower() not in known:
            raise ValueError(
                f"{action!r} is not in the panel's list: {', '.join(ACTION_FIELDS)}"
                + (" (log in and off with the connection panel)"
                   if action.lower() in ("login", "logoff") else "")
            )
        self._action.value = known[action.lower()]
        self._build_form()  # fresh example values even when the action is the same
        for name, value in fields.items():
            if name not in self._fields:
                raise ValueError(
                    f"{self.action} has no field {name!r}; its fields: "
                    f"{', '.join(self._fields) or 'none'}"
                )
            self._fields[name].value = value

    def _build_form(self) -> None:
        self._fields = {
            name: widgets.Text(value=default, description=name, placeholder=hint)
            for name, default, hint in ACTION_FIELDS[self._action.value]
        }
        self._form.children = list(self._fields.values())

    # -- sending ------------------------------------------------------------------

    def send(self) -> None:
        """Send the chosen action with the fields as filled, wait for the answer
        (the client's timeout bounds it) and show it. Never raises for the
        action's outcome: see :attr:`status`."""
        name = self.action
        headers = {key: value for key, value in self.fields.items() if value != ""}
        action_id = self._action_id.value.strip() or f"panel-{next(_action_ids)}"
        self._set_status(f"{name}: waiting for the answer…")
        result: ListResult | None = None
        problem: Exception | None = None
        try:
            result = self._client.send_list_action(
                name, check=False, ActionID=action_id, **headers
            )
        except (AMIError, ValueError) as err:
            problem = err
        self._show(name, action_id, result, problem)

    def _send_in_background(self) -> None:
        if not self._sending.acquire(blocking=False):
            return  # one action at a time, as Asterisk runs them per session
        self._send_button.disabled = True

        def run() -> None:
            try:
                self.send()
            except Exception:
                log.exception("ActionPanel: sending %s failed", self.action)
                self._set_status(f"{self.action}: the panel failed (see the log)", error=True)
            finally:
                self._send_button.disabled = False
                self._sending.release()

        threading.Thread(target=run, name="amilab-action-panel send", daemon=True).start()

    def _show(self, name: str, action_id: str, result: ListResult | None,
              problem: Exception | None) -> None:
        response = result.response if result is not None else getattr(problem, "response", None)
        self._response_frame = _header_frame(response)
        self._frame = self._response_frame
        if result is not None and result.complete is not None:
            self._frame = _items_frame(name, result)
        sent, received = self._wire(action_id, result)
        if not sent:
            sent = ("(nothing was sent)\n\n" if isinstance(problem, ValueError)
                    else "(the request is no longer in the client's transcript)\n\n")
        self._raw_text = sent + received
        self._raw.value = (
            f'<div class="amilab-scroll"><pre><span class="amilab-sent">'
            f"{escape(sent, quote=False)}</span>{escape(received, quote=False)}</pre></div>"
        )
        self._response.value = frame_table(self._response_frame, "amilab-response-table")
        self._items.value = (
            f'<div class="amilab-scroll">{frame_table(self._frame, "amilab-list-table")}</div>'
            if result is not None and result.complete is not None else ""
        )
        if problem is not None:
            self._set_status(f"{name}: {problem}", error=True)
        elif (response.get("Response") or "").lower() == "error":
            self._set_status(f"{name}: Error: {response.get('Message') or '(no Message)'}",
                             error=True)
        else:
            text = f"{name}: {response.get('Response')}"
            if result.complete is not None:
                text += f", {len(result.events):,} items"
            self._set_status(text)

    def _wire(self, action_id: str, result: ListResult | None) -> tuple[str, str]:
        """What was sent and what came back for ``action_id``, as text with
        "\\n" line ends: from the client's transcript, or from the parsed
        messages when the transcript has already moved past them."""
        marker = f"ActionID: {action_id}\r\n"
        entries = [e for e in self._client.transcript if marker in e.text]
        sent = "".join(e.text for e in entries if e.direction == "send")
        received = "".join(e.text for e in entries if e.direction == "recv")
        if result is not None and not received:
            messages = [result.response, *result.events]
            if result.complete is not None:
                messages.append(result.complete)
            received = "".join(m.masked_text() for m in messages)
        return sent.replace("\r\n", "\n"), received.replace("\r\n", "\n")

    # -- what is shown ------------------------------------------------------------

    def frame(self) -> pd.DataFrame:
        """The main table: a list action's items (one row each), otherwise the
        response's headers (see :meth:`response_frame`)."""
        return self._frame

    def response_frame(self) -> pd.DataFrame:
        """The response as shown: one row per header line (``Header``,
        ``Value``), in wire order, duplicates kept (a Command's Output lines)."""
        return self._response_frame

    @property
    def raw_text(self) -> str:
        """The ``nc`` view as shown: the request, then everything received for it."""
        return self._raw_text


def _header_frame(message: Message | None) -> pd.DataFrame:
    pairs = message.headers if message is not None else []
    return pd.DataFrame(pairs, columns=["Header", "Value"], dtype="str")


def _items_frame(name: str, result: ListResult) -> pd.DataFrame:
    special = _ITEM_FRAMES.get(name)
    if special is not None:
        try:
            return special(result)
        except ValueError:  # items of another kind: the generic table keeps them all
            pass
    return list_frame(result)
