"""PhonePanel: the softphones of the guide's Demos 1-3 as buttons, on the
simulated Asterisk, so students trigger the events Step 7 describes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd

from amilab.panels.base import Panel
from amilab.panels.redraw import RedrawLoop
from amilab.panels.tables import frame_table

log = logging.getLogger(__name__)

#: The two softphones of Demos 1-3 (guide Step 7).
PHONES = ("1001", "1002")
#: The extension of Demo 3's echo test (the lab dialplan's 9999).
ECHO_EXTEN = "9999"
DTMF_KEYS = tuple("123456789*0#")
#: The phone table's columns.
COLUMNS = ("Phone", "Registered", "Contact", "DeviceState", "Channel", "ChannelState")


class PhonePanel(Panel):
    """Register/unregister 1001 and 1002, call 1001 → 1002, answer, hang up,
    run the echo test (9999), press a DTMF digit.

    ``source`` is whatever leads to the simulated PBX: a ConnectionPanel or a
    client from :func:`amilab.connect` on the simulator, a
    SimulatedAsterisk, or its PBX. On a real Asterisk the panel only says so:
    there, real softphones make the events.

    What a caller can rely on: every button returns at once (the PBX's clock
    runs the timed steps: ringing, a Dial that times out, DTMF durations);
    mistakes (answering a phone that is not ringing, DTMF with no call) are
    shown in :attr:`status`, never raised. The phone table follows the PBX,
    redrawn at most once per ``interval`` seconds from a change counter the
    PBX's listener bumps (no widget is touched per event). :meth:`frame` is
    that table.
    """

    css_class = "amilab-phone-panel"

    def __init__(self, source: Any, *, interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._pbx, where = _find_pbx(source)
        self._call: Any = None  # the sim's Call the buttons act on
        self._changes = 0
        self._drawn_changes: int | None = None
        self._rows: list[tuple[str, bool, str, str, str, str]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._loop = RedrawLoop(self._draw, interval=interval, clock=clock,
                                name="amilab-phone-panel redraw")
        self._buttons: list[widgets.Button] = []
        rows = [
            widgets.HBox([
                self._button(f"{phone} registers", f"register-{phone}",
                             lambda p=phone: self.register(p)),
                self._button(f"{phone} unregisters", f"unregister-{phone}",
                             lambda p=phone: self.unregister(p)),
            ])
            for phone in PHONES
        ]
        caller, callee = PHONES
        rows.append(widgets.HBox([
            self._button(f"{caller} calls {callee}", "call", self.call),
            self._button(f"{callee} answers", "answer", self.answer),
            self._button(f"{caller} hangs up", f"hangup-{caller}", lambda: self.hang_up(caller)),
            self._button(f"{callee} hangs up", f"hangup-{callee}", lambda: self.hang_up(callee)),
        ]))
        self._digit = widgets.Dropdown(options=DTMF_KEYS, value="5", description="Digit",
                                       layout=widgets.Layout(width="10em"))
        self._digit.add_class("amilab-phone-digit")
        rows.append(widgets.HBox([
            self._button(f"{caller} dials {ECHO_EXTEN} (echo test)", "echo", self.echo_test),
            self._digit,
            self._button(f"{caller} presses it", "dtmf", lambda: self.press(self._digit.value)),
        ]))
        self._table = widgets.HTML()
        self._table.add_class("amilab-phone-table")
        self._widget = self._root(*rows, self._table)
        if self._pbx is None:
            for button in self._buttons:
                button.disabled = True
            self._digit.disabled = True
            self._set_status(
                f"The phone panel drives the simulated Asterisk's softphones, and {where}. "
                "On a real Asterisk, register real softphones as 1001 and 1002 "
                "(guide Step 7, Setup) and watch the same events."
            )
            return
        self._unsubscribe = self._pbx.subscribe(self._pbx_changed)
        self._loop.start()
        self._loop.draw_now()
        self._set_status("Press a button and watch the event panel.")

    # -- the phones -----------------------------------------------------------------

    def register(self, phone: str) -> None:
        """Demo 1: the phone's softphone REGISTERs (PeerStatus, ContactStatus...)."""
        if self._registered(phone):
            self._done(f"{phone} is already registered (a re-REGISTER sends no event).")
            return
        self._pbx.register(phone)
        self._done(f"{phone} registered: PeerStatus Reachable and ContactStatus events.")

    def unregister(self, phone: str) -> None:
        """Demo 1: the softphone un-REGISTERs (ContactStatus Removed...)."""
        if not self._registered(phone):
            self._done(f"{phone} is not registered.")
            return
        self._pbx.unregister(phone)
        self._done(f"{phone} unregistered: PeerStatus Unreachable and ContactStatus Removed.")

    def call(self) -> None:
        """Demo 2: 1001 dials 1002, which rings until :meth:`answer` (or Dial's 20 s)."""
        if self._live_call():
            self._done("A call is in progress: hang it up first.", error=True)
            return
        caller, callee = PHONES
        self._call = self._pbx.call(caller, callee, answer_after=None, talk_for=None)
        if self._registered(callee):
            self._done(f"{caller} dials {callee}: Newchannel, DialBegin, then {callee} rings "
                       f"(Newstate Ringing). Press '{callee} answers'.")
        else:
            self._done(f"{caller} dials {callee}, but {callee} is not registered: Dial cannot "
                       "reach it (a VarSet DIALSTATUS = CHANUNAVAIL, no DialBegin) and the call "
                       "ends. Register it to hear it ring.")

    def answer(self) -> None:
        """Demo 2: 1002 picks up (DialEnd ANSWER, Newstate Up, the bridge)."""
        if not self._live_call():
            self._done("No call to answer: press the call button first.", error=True)
            return
        try:
            self._call.answer()
        except RuntimeError as err:
            self._done(f"Cannot answer: {err}.", error=True)
            return
        self._done(f"{PHONES[1]} answered: DialEnd ANSWER, Newstate Up, BridgeEnter.")

    def hang_up(self, phone: str) -> None:
        """``phone`` hangs up (Demo 2's HangupRequest and Hangup); before the
        answer the caller cancels or the callee declines."""
        if phone not in PHONES:
            raise ValueError(f"phone must be one of {PHONES}, not {phone!r}")
        if not self._live_call():
            self._done("No call in progress.", error=True)
            return
        by = "caller" if phone == self._call.caller else "callee"
        self._call.hangup(by)
        self._done(f"{phone} hung up: HangupRequest, then a Hangup (Cause, Cause-txt) "
                   "for each channel.")

    def echo_test(self) -> None:
        """Demo 3: 1001 dials 9999 (Answer, Echo) until it hangs up."""
        if self._live_call():
            self._done("A call is in progress: hang it up first.", error=True)
            return
        self._call = self._pbx.echo_test(PHONES[0], duration=None)
        self._done(f"{PHONES[0]} dials {ECHO_EXTEN}: Newchannel, Newstate Up, the echo runs "
                   f"until '{PHONES[0]} hangs up'. Press a digit meanwhile.")

    def press(self, digit: str) -> None:
        """1001 presses ``digit`` during its answered call: DTMFBegin and DTMFEnd
        inside the echo test; no event in a call to 1002, as on Asterisk 22."""
        try:
            seen = self._pbx.send_dtmf(PHONES[0], digit)
        except ValueError as err:
            self._done(f"No DTMF: {err}.", error=True)
            return
        if seen:
            self._done(f"{PHONES[0]} pressed {digit}: DTMFBegin and DTMFEnd (class dtmf).")
        else:
            self._done(f"{PHONES[0]} pressed {digit}: the digit went to {PHONES[1]} inside the "
                       "RTP stream (RFC 4733) through a native bridge, so Asterisk 22 raises "
                       "no DTMF event. Try it in the echo test.")

    # -- what is shown ----------------------------------------------------------------

    def frame(self) -> pd.DataFrame:
        """The phone table as shown: :data:`COLUMNS`, one row per phone."""
        frame = pd.DataFrame(self._rows, columns=list(COLUMNS))
        text = {c: "str" for c in COLUMNS if c != "Registered"}
        return frame.astype({**text, "Registered": "bool"})

    def close(self) -> None:
        """Stop following the PBX and close the widgets."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._loop.stop()
        super().close()

    def _pbx_changed(self, _event: object) -> None:
        self._changes += 1  # on the PBX's thread, inside its lock: nothing more

    def _draw(self) -> int | None:
        changes = self._changes
        if changes == self._drawn_changes:
            return None
        with self._pbx.lock:
            endpoints = {ep.name: ep for ep in self._pbx.endpoints()}
            channels = self._pbx.channels()
            rows = []
            for phone in PHONES:
                ep = endpoints[phone]
                mine = [c for c in channels if c.endpoint == phone]
                channel = mine[-1] if mine else None
                rows.append((
                    phone, bool(ep.contacts), ep.contacts[0].uri if ep.contacts else "",
                    ep.device_state, channel.name if channel else "",
                    _state_text(channel.state) if channel else "",
                ))
        self._rows = rows
        self._drawn_changes = changes
        self._table.value = frame_table(self.frame(), "amilab-phones")
        return len(self._table.value)

    def _done(self, text: str, *, error: bool = False) -> None:
        self._set_status(text, error=error)
        self._loop.draw_now()

    def _registered(self, phone: str) -> bool:
        return any(ep.name == phone and ep.contacts for ep in self._pbx.endpoints())

    def _live_call(self) -> bool:
        return self._call is not None and not self._call.done

    def _button(self, label: str, name: str, action: Callable[[], None]) -> widgets.Button:
        button = widgets.Button(description=label, layout=widgets.Layout(width="auto"))
        button.add_class(f"amilab-phone-{name}")
        button.on_click(lambda _: self._run(action))
        self._buttons.append(button)
        return button

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as err:  # a click must never raise into the void
            log.exception("PhonePanel: %s failed", action)
            self._done(f"That did not work: {err}", error=True)


def _find_pbx(source: Any) -> tuple[Any, str]:
    """The simulated PBX behind ``source``, or None and where ``source`` is instead."""
    if hasattr(source, "subscribe") and hasattr(source, "register"):
        return source, ""
    if hasattr(source, "pbx"):  # a SimulatedAsterisk
        return source.pbx, ""
    if hasattr(source, "simulator"):  # a LabClient or a ConnectionPanel
        if source.simulator is not None:
            return source.simulator.pbx, ""
        client = getattr(source, "client", source)
        if client is None:
            return None, ("the connection panel is not connected yet "
                          "(connect, then create this panel)")
        return None, f"this client is on a real Asterisk at {client.address}"
    address = getattr(source, "address", None)
    where = f"this client is on {address}" if address else f"{type(source).__name__} is not one"
    return None, where


def _state_text(state: int) -> str:
    from amilab.sim.pbx import CHANNEL_STATES

    return CHANNEL_STATES.get(state, str(state))
