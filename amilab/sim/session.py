"""One AMI session of the simulated Asterisk: request bytes in, reply bytes out.

A :class:`Session` holds what Asterisk 22's ``struct mansession`` holds (login
state, read/write classes, event mask, filters, MD5 challenge) and answers
exactly as main/manager.c does: the banner and nothing else until the client
speaks; Login (plain and MD5), Challenge, Logoff, Events, Filter and
ListCommands itself; every other action through the PBX's ``ACTIONS`` table,
gated by the user's write classes. Requests are read with
``Parser(role="server")``, so bare LF, the 1024-byte line cap and the
128-line cap behave as in Asterisk.

The session does no I/O and starts no thread. Its :class:`SessionHost` (the
server, or a fake in tests) carries bytes, closes the connection and runs
timers. Everything of one session happens on the host's loop thread, except
that an action handler may answer later from another thread (a synchronous
Originate); that answer is handed to the loop with
``host.call_soon_threadsafe``. Like Asterisk's blocked session thread, the
session runs one action at a time and holds events until the action's reply
is written, so events never land inside a reply.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from amilab.protocol import BANNER_PREFIX, Message, Parser, encode_message
from amilab.sim import classes
from amilab.sim.actions import ActionCall, ActionSpec, Caller, ManagerView
from amilab.sim.config import (
    EventFilter,
    FilterCompileError,
    FilterFormatError,
    ManagerConfig,
    ManagerUser,
    events_pass_filters,
)

log = logging.getLogger(__name__)

#: AMI_VERSION of Asterisk 22 (include/asterisk/manager.h).
AMI_VERSION = "11.0.0"
BANNER = f"{BANNER_PREFIX}{AMI_VERSION}\r\n".encode()
#: A failed login, or a second login of an ``allowmultiplelogin = no`` user,
#: sleeps this long before answering (``sleep(1)`` in main/manager.c).
FAILED_LOGIN_DELAY = 1.0
#: Until login, and for users without ``writetimeout``: 100 ms (main/manager.c).
DEFAULT_WRITE_TIMEOUT = 0.1
#: The unknown-action reply is built in a 512-byte buffer (main/manager.c).
_UNKNOWN_ACTION_LIMIT = 511
#: The event mask a session starts with: every class (build_mansession).
_ALL_EVENTS = -1

# Reply texts, exactly as Asterisk 22 main/manager.c writes them.
MISSING_ACTION = "Missing action in request"
PERMISSION_DENIED = "Permission denied"
AUTH_FAILED = "Authentication failed"
AUTH_ACCEPTED = "Authentication accepted"
ALREADY_AUTHENTICATED = "Already authenticated"
LOGIN_IN_USE = "Login Already In Use"
LINE_TOO_LONG = "Failed to parse message: line too long"
TOO_MANY_LINES = "Too many lines in message or allocation failure"
MUST_SPECIFY_AUTHTYPE = "Must specify AuthType"
INVALID_EVENT_MASK = "Invalid event mask"
GOODBYE = "Thanks for all the fish."
FILTER_DID_NOT_COMPILE = "Filter did not compile.  Check the syntax of the filter given."
FILTER_BADLY_FORMATTED = "Filter was formatted incorrectly.  Check the syntax of the filter given."
UNKNOWN_OPERATION = "Unknown operation"


def unknown_action_text(action: str) -> str:
    return (
        f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
    )[:_UNKNOWN_ACTION_LIMIT]


def frame(pairs: Sequence[tuple[str, str]]) -> bytes:
    """One message as Asterisk writes it. Asterisk writes values verbatim, and a
    few of its texts end in a bare LF (``No endpoints found\\n``); those are
    written as they are instead of being refused like a client's header."""
    try:
        return encode_message(pairs)
    except ValueError:
        return ("".join(f"{name}: {value}\r\n" for name, value in pairs) + "\r\n").encode()


def event_mask_from_text(text: str) -> int:
    """Asterisk's strings_to_mask for ``EventMask:`` and Login's ``Events:``:
    digits are a raw mask (C ``atoi``, so it may wrap negative), yes/no words
    mean all/none, anything else is a class list. -1 means invalid (empty)."""
    if not text:
        return -1
    if all("0" <= char <= "9" for char in text):
        value = min(int(text), 2**63 - 1) & 0xFFFFFFFF  # (int) strtol(): clamp, then 32 bits
        return value - 2**32 if value >= 2**31 else value
    if text.lower() in ("no", "false", "n", "f", "off"):
        return 0
    if text.lower() in ("yes", "true", "y", "t", "on"):
        return classes.ALL
    return classes.parse_perms(text)


class RenderedEvent:
    """One PBX event framed once for every session: ``data`` is what goes on the
    wire, ``text`` what filters look at."""

    __slots__ = ("name", "privilege", "data", "_text")

    def __init__(self, name: str, privilege: int, data: bytes) -> None:
        self.name = name
        self.privilege = privilege
        self.data = data
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.data.decode("utf-8", "replace")
        return self._text


def render_event(
    name: str, privilege: int, body: Sequence[tuple[str, str]], timestamp: float | None
) -> RenderedEvent:
    """``Event:``, ``Privilege:`` (e.g. ``call,all``), ``Timestamp:`` when
    timestampevents is on, then the body (main/manager.c, __manager_event_sessions_va)."""
    pairs = [("Event", name), ("Privilege", classes.perms_to_str(privilege))]
    if timestamp is not None:
        pairs.append(("Timestamp", f"{timestamp:.6f}"))
    pairs.extend(body)
    return RenderedEvent(name, privilege, frame(pairs))


class SessionHost(Protocol):
    """What a session needs from its server. All calls come from the loop
    thread, except :meth:`call_soon_threadsafe`."""

    @property
    def config(self) -> ManagerConfig: ...
    @property
    def pbx(self) -> Any: ...
    @property
    def actions(self) -> Mapping[str, ActionSpec]: ...
    @property
    def manager(self) -> ManagerView: ...
    @property
    def failed_login_delay(self) -> float: ...

    def send(self, session: Session, data: bytes) -> None:
        """Queue bytes for the client."""

    def close(self, session: Session) -> None:
        """Close the connection once the queued bytes are written."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` later; returns a function that cancels it."""

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None: ...

    def logged_in(self, username: str) -> bool:
        """Is a session logged in as ``username`` (any case)?"""

    def authenticated(self, session: Session) -> None:
        """The session has just logged in (it no longer counts toward authlimit)."""


class _SessionAction:
    __slots__ = ("name", "privilege", "synopsis", "run")

    def __init__(
        self, name: str, privilege: int, synopsis: str, run: Callable[[Session, Message], None]
    ):
        self.name = name
        self.privilege = privilege
        self.synopsis = synopsis
        self.run = run


class Session:
    """One AMI connection's state. Create it, call :meth:`start`, then
    :meth:`feed` what the client sends and :meth:`deliver` PBX events;
    :meth:`connection_lost` when the socket is gone."""

    def __init__(self, host: SessionHost, address: str) -> None:
        self._host = host
        #: The client's IP address (what the ACL sees).
        self.address = address
        self._cancel_auth_timeout: Callable[[], None] = lambda: None
        #: The name as typed at login, or None before login.
        self.username: str | None = None
        self.authenticated = False
        self.read = 0
        self.write = 0
        self.event_mask = _ALL_EVENTS
        #: Seconds a write may make no progress before the client is dropped.
        self.write_timeout = DEFAULT_WRITE_TIMEOUT
        #: Unix time of the login (0 before), for ``manager show connected``.
        self.login_time = 0.0
        self._display_connects = False  # log logins and logoffs (displayconnects)
        self._filters: list[EventFilter] = []
        self._challenge = ""
        self._parser = Parser(role="server")
        self._requests: deque[Message] = deque()
        self._busy = False  # an action's reply (or a failed-login pause) is pending
        self._running = False  # inside _run_requests (guards re-entry)
        self._dispatch_thread: int | None = None  # thread running a handler right now
        self._held: list[bytes] = []  # events that arrived while busy
        self._held_bytes = 0
        self._end_of_input = False
        self._closing = False
        self._closed = False

    # -- what the host calls -----------------------------------------------------------

    def start(self) -> None:
        """Send the banner and arm the authtimeout."""
        self._host.send(self, BANNER)
        self._cancel_auth_timeout = self._host.call_later(
            self._host.config.authtimeout, self._auth_timeout
        )

    def feed(self, data: bytes) -> None:
        """Bytes from the client. Requests run in order, one at a time."""
        if self._closing or self._closed:
            return
        self._requests.extend(self._parser.feed(data))
        self._run_requests()

    def end_of_input(self) -> None:
        """The client closed its sending side: finish what was asked, then close."""
        self._end_of_input = True
        self._close_if_finished()

    def deliver(self, event: RenderedEvent) -> None:
        """A PBX event: sent if this session may read it (all of the event's
        classes in both the read classes and the event mask) and the filters
        let it through; held while an action's reply is pending."""
        if not self.authenticated or self._closing or self._closed:
            return
        privilege = event.privilege
        if self.read & privilege != privilege or self.event_mask & privilege != privilege:
            return
        if self._filters and not events_pass_filters(self._filters, event.name, event.text):
            return
        if self._busy:
            self._held.append(event.data)
            self._held_bytes += len(event.data)
        else:
            self._host.send(self, event.data)

    def connection_lost(self) -> None:
        """The socket is gone: late replies and timers are ignored from now on."""
        if self.authenticated and self._display_connects and not self._closed:
            log.info("manager %r logged off from %s", self.username, self.address)
        self._closed = True
        self._closing = True
        self._held.clear()
        self._requests.clear()
        self._cancel_auth_timeout()  # else the timer would keep this session alive for 30 s

    @property
    def accepting_input(self) -> bool:
        """False while a request is running or waiting: the host should stop
        reading (Asterisk reads nothing while an action runs)."""
        return not (self._busy or self._requests or self._closing or self._closed)

    @property
    def held_bytes(self) -> int:
        """Bytes of events held back while an action's reply is pending."""
        return self._held_bytes

    # -- requests -----------------------------------------------------------------------

    def _run_requests(self) -> None:
        if self._running:
            return
        self._running = True
        try:
            while self._requests and not self._busy and not self._closing:
                self._handle(self._requests.popleft())
        finally:
            self._running = False
        self._close_if_finished()

    def _close_if_finished(self) -> None:
        if self._end_of_input and not self._busy and not self._requests and not self._running:
            self._close()

    def _handle(self, request: Message) -> None:
        if request.defect == "too many lines":
            self._error(request, TOO_MANY_LINES)
            return
        if request.defect:
            self._error(request, LINE_TOO_LONG)
            return
        action = next((v for n, v in request.headers if n.lower() == "action" and v), "")
        if not action:
            self._error(request, MISSING_ACTION)
            return
        key = action.lower()
        if not self.authenticated:
            if key not in ("login", "logoff", "challenge"):
                self._error(request, PERMISSION_DENIED)
                return
            if key != "logoff" and self._login_in_use(request):
                self._fail_after_pause(request, LOGIN_IN_USE)
                return
        own = _SESSION_ACTIONS.get(key)
        spec = own or self._host.actions.get(key)
        if spec is None:
            self._error(request, unknown_action_text(action))
        elif spec.privilege and not self.write & spec.privilege:
            self._error(request, PERMISSION_DENIED)
        elif own is not None:
            own.run(self, request)
        else:
            self._run_action(spec, request)  # type: ignore[arg-type]

    def _login_in_use(self, request: Message) -> bool:
        username = request.get("Username") or ""
        if not username or not self._host.logged_in(username):
            return False
        user = self._host.config.user(username)
        return user is not None and not user.allowmultiplelogin

    # -- replies --------------------------------------------------------------------------

    def _response(
        self, request: Message, response: str, message: str | None = None
    ) -> list[tuple[str, str]]:
        """``Response:``, then ``ActionID:`` if the request had a non-empty one,
        then ``Message:`` (astman_send_response_full)."""
        pairs = [("Response", response)]
        action_id = request.get("ActionID")
        if action_id:
            pairs.append(("ActionID", action_id))
        if message is not None:
            pairs.append(("Message", message))
        return pairs

    def _write(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._host.send(self, frame(pairs))

    def _error(self, request: Message, message: str) -> None:
        self._write(self._response(request, "Error", message))

    def _fail_after_pause(self, request: Message, message: str) -> None:
        """Asterisk sleeps a second, answers, and ends the session."""
        self._busy = True
        reply = self._response(request, "Error", message)

        def answer() -> None:
            if not self._closed:
                self._write(reply)
                self._close()

        self._host.call_later(self._host.failed_login_delay, answer)

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._held.clear()
        self._held_bytes = 0
        self._requests.clear()
        self._host.close(self)

    def _auth_timeout(self) -> None:
        # A failed-login pause ends the session by itself.
        if not (self.authenticated or self._busy or self._closing):
            log.info(
                "%s did not log in within %s s; closing",
                self.address,
                self._host.config.authtimeout,
            )
            self._close()

    # -- PBX actions ----------------------------------------------------------------------

    def _run_action(self, spec: ActionSpec, request: Message) -> None:
        self._busy = True
        answered = threading.Event()
        lock = threading.Lock()

        def reply(messages: list[list[tuple[str, str]]]) -> None:
            with lock:
                if answered.is_set():
                    log.error("action %s answered twice; the second answer is dropped", spec.name)
                    return
                answered.set()
            if self._dispatch_thread == threading.get_ident():
                self._finish_action(messages)
            else:
                self._host.call_soon_threadsafe(lambda: self._finish_action(messages))

        call = ActionCall(
            request=request,
            caller=Caller(username=self.username or "", write=self.write, address=self.address),
            pbx=self._host.pbx,
            manager=self._host.manager,
            reply=reply,
        )
        self._dispatch_thread = threading.get_ident()
        try:
            spec.handler(call)
        except Exception:
            log.exception("simulated action %s failed", spec.name)
            message = f"Internal error: the simulated {spec.name} action failed (see the log)"
            reply([self._response(request, "Error", message)])
        finally:
            self._dispatch_thread = None

    def _finish_action(self, messages: list[list[tuple[str, str]]]) -> None:
        """Write the reply; the session stays busy one more turn of the host's
        queue, so the events the action raised (queued behind it) still go out
        before the next request runs, as Asterisk flushes events after each action."""
        if self._closed:
            return
        for pairs in messages:
            self._write(pairs)
        self._host.call_soon_threadsafe(self._resume)

    def _resume(self) -> None:
        if self._closed:
            return
        self._busy = False
        held, self._held, self._held_bytes = self._held, [], 0
        for data in held:
            self._host.send(self, data)
        self._run_requests()

    # -- the session's own actions (main/manager.c) ------------------------------------

    def _action_login(self, request: Message) -> None:
        if self.authenticated:
            self._write(self._response(request, "Success", ALREADY_AUTHENTICATED))
            return
        user = self._authenticate(request)
        if user is None:
            self._fail_after_pause(request, AUTH_FAILED)
            return
        self.username = request.get("Username")
        self.authenticated = True
        self.read, self.write = user.read, user.write
        self.write_timeout = user.writetimeout_ms / 1000
        self._filters = list(user.eventfilters)
        self.login_time = time.time()
        mask = event_mask_from_text(request.get("Events") or "")
        if mask >= 0:
            self.event_mask = mask
        self._host.authenticated(self)
        self._display_connects = user.displayconnects
        if user.displayconnects:
            log.info("manager %r logged on from %s", self.username, self.address)
        self._write(self._response(request, "Success", AUTH_ACCEPTED))
        if self.event_mask & classes.SYSTEM and self.read & classes.SYSTEM:
            pbx = self._host.pbx
            self._write(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", classes.perms_to_str(classes.SYSTEM)),
                    ("Uptime", str(pbx.uptime_seconds())),
                    ("LastReload", str(pbx.last_reload_seconds())),
                    ("Status", "Fully Booted"),
                ]
            )

    def _authenticate(self, request: Message) -> ManagerUser | None:
        """The user, if the request proves who it is (main/manager.c authenticate):
        user exists → ACL → MD5 key or plain secret. Why it failed is only logged;
        the client gets the same answer whatever the reason."""
        username = request.get("Username") or ""
        if not username:
            log.info("%s sent Login without Username", self.address)
            return None
        user = self._host.config.user(username)
        if user is None:
            log.info("%s tried to authenticate with nonexistent user %r", self.address, username)
            return None
        if not user.acl.allows(self.address):
            log.info("%s failed to pass IP ACL as %r", self.address, username)
            return None
        if (request.get("AuthType") or "").lower() == "md5":
            key = request.get("Key") or ""
            if key and self._challenge and user.secret is not None:
                digest = hashlib.md5(
                    (self._challenge + user.secret).encode(), usedforsecurity=False
                )
                if hmac.compare_digest(key.encode(), digest.hexdigest().encode()):
                    return user
        elif user.secret is not None and hmac.compare_digest(
            (request.get("Secret") or "").encode(), user.secret.encode()
        ):
            return user
        log.info("%s failed to authenticate as %r", self.address, username)
        return None

    def _action_logoff(self, request: Message) -> None:
        self._write(self._response(request, "Goodbye", GOODBYE))
        self._close()

    def _action_challenge(self, request: Message) -> None:
        if (request.get("AuthType") or "").lower() != "md5":
            self._error(request, MUST_SPECIFY_AUTHTYPE)
            return
        if not self._challenge:
            # "%ld" of ast_random() into char[10]: at most 9 digits, kept for the session.
            self._challenge = str(secrets.randbelow(2**31))[:9]
        self._write([*self._response(request, "Success"), ("Challenge", self._challenge)])

    def _action_events(self, request: Message) -> None:
        mask = event_mask_from_text(request.get("EventMask") or "")
        if mask < 0:
            self._error(request, INVALID_EVENT_MASK)
            return
        self.event_mask = mask
        self._write([*self._response(request, "Success"), ("Events", "On" if mask else "Off")])

    def _action_filter(self, request: Message) -> None:
        if (request.get("Operation") or "").lower() != "add":
            self._error(request, UNKNOWN_OPERATION)
            return
        criteria = request.get("MatchCriteria") or ""
        try:
            new = EventFilter.parse(
                f"eventfilter({criteria})" if criteria else "eventfilter",
                request.get("Filter") or "",
            )
        except FilterCompileError:
            self._error(request, FILTER_DID_NOT_COMPILE)
            return
        except FilterFormatError:
            self._error(request, FILTER_BADLY_FORMATTED)
            return
        self._filters.append(new)
        self._write(self._response(request, "Success", "Success"))

    def _action_listcommands(self, request: Message) -> None:
        available: dict[str, tuple[str, int, str]] = {}
        for spec in (*_SESSION_ACTIONS.values(), *self._host.actions.values()):
            if spec.name.lower() not in available and (
                not spec.privilege or self.write & spec.privilege
            ):
                available[spec.name.lower()] = (spec.name, spec.privilege, spec.synopsis)
        lines = [
            (name, f"{synopsis.rstrip()}  (Priv: {classes.perms_to_str(privilege)})")
            for _, (name, privilege, synopsis) in sorted(available.items())
        ]
        self._write([*self._response(request, "Success"), *lines])


#: Actions the session answers itself, with the synopsis ListCommands shows
#: (main/manager_doc.xml) and their class (main/manager.c __init_manager).
_SESSION_ACTIONS: dict[str, _SessionAction] = {
    action.name.lower(): action
    for action in (
        _SessionAction("Login", 0, "Login Manager.", Session._action_login),
        _SessionAction("Logoff", 0, "Logoff Manager.", Session._action_logoff),
        _SessionAction(
            "Challenge", 0, "Generate Challenge for MD5 Auth.", Session._action_challenge
        ),
        _SessionAction("Events", 0, "Control Event Flow.", Session._action_events),
        _SessionAction(
            "Filter",
            classes.SYSTEM,
            "Dynamically add filters for the current manager session.",
            Session._action_filter,
        ),
        _SessionAction(
            "ListCommands", 0, "List available manager commands.", Session._action_listcommands
        ),
    )
}
