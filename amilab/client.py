"""AMIClient: a synchronous, thread-safe AMI client with one socket and one reader thread.

The reader thread is the only code that reads the socket. It feeds the bytes to
:class:`~amilab.protocol.Parser` and routes each message:

* a response goes to the caller waiting on its ActionID (responses may arrive
  in any order; every caller gets its own);
* a list item or ``*Complete`` event carrying the ActionID of a
  :meth:`AMIClient.send_list_action` goes to that caller;
* every other event goes to the bounded event queue (:meth:`AMIClient.next_event`,
  :meth:`AMIClient.events`) and to the callbacks registered with
  :meth:`AMIClient.on_event`.

When the connection ends, for whatever reason, every waiting caller gets an
exception and the event iterator stops: nothing waits forever.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import translate
from types import TracebackType
from typing import NamedTuple

from amilab.errors import (
    ActionTimeout,
    AMIError,
    AuthenticationError,
    ConnectionLost,
    PermissionDenied,
    ProtocolError,
)
from amilab.protocol import SECRET_HEADERS, HeaderValue, Message, Parser, encode_action

logger = logging.getLogger(__name__)

#: Events kept for next_event()/events() before the oldest are dropped: far
#: more than a lab produces between two reads, small enough to bound memory.
DEFAULT_MAX_QUEUED_EVENTS = 10_000
#: Entries kept in ``AMIClient.transcript`` (the newest win).
TRANSCRIPT_LIMIT = 1_000
#: The ``Message:`` text Asterisk sends when the user's write classes do not
#: allow an action, or nobody logged in yet (Asterisk 22 main/manager.c).
PERMISSION_DENIED_TEXT = "Permission denied"
#: How much of a first line is read while looking for the banner.
_BANNER_LIMIT = 1024


class TranscriptEntry(NamedTuple):
    """One step of the raw exchange, as in the recordings under tests/data."""

    direction: str  #: "send", "recv" or "note"
    time: float  #: seconds since connect
    text: str  #: the message as text, Secret and Key values masked


@dataclass
class ListResult:
    """The answer to a list action such as CoreShowChannels."""

    response: Message  #: the ``EventList: start`` acknowledgement (or the error)
    events: list[Message] = field(default_factory=list)  #: the item events, in order
    complete: Message | None = None  #: the final ``*Complete`` event


class _Waiter:
    """One caller waiting for the response (and list items) of one ActionID."""

    __slots__ = ("action_id", "collects_list", "done", "response", "items", "complete", "error")

    def __init__(self, action_id: str, collects_list: bool) -> None:
        self.action_id = action_id
        self.collects_list = collects_list
        self.done = threading.Event()
        self.response: Message | None = None
        self.items: list[Message] = []
        self.complete: Message | None = None
        self.error: AMIError | None = None


def _check(name: str, response: Message) -> None:
    """Raise for ``Response: Error``, carrying the server's reply."""
    if (response.get("Response") or "").lower() != "error":
        return
    text = response.get("Message") or "no Message header"
    if text == PERMISSION_DENIED_TEXT:
        raise PermissionDenied(f"{name}: {text}", response)
    raise AMIError(f"{name} failed: {text}", response)


class AMIClient:
    """A synchronous AMI client, safe to share between threads.

    Usage::

        with AMIClient("127.0.0.1", 5038) as ami:
            ami.login("admin", "mysecretpassword")
            print(ami.send_action("CoreStatus")["CoreCurrentCalls"])

    What a caller can rely on:

    * Every public method may be called from any thread. Writes to the socket
      are serialized, so two actions never mix on the wire.
    * ``timeout`` (seconds) bounds connecting, the banner and each wait for a
      response; a late response raises :class:`ActionTimeout`.
    * When the connection ends (server close, network error, a
      :class:`ProtocolError`, :meth:`close`), every waiting caller gets the
      reason as an exception and :meth:`events` stops.
    * Event queue overflow: at most ``max_queued_events`` events wait for
      :meth:`next_event`; when a new one arrives on a full queue, the *oldest*
      is dropped, ``events_dropped`` counts it, and the first drop is logged as
      a warning. Callbacks see every event, dropped or not.
    * Callbacks run on the reader thread: keep them short. One that raises is
      logged and counted in ``callback_errors``; the reader goes on.
    * Secrets never appear in a repr, a log line, an exception or the transcript.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5038,
        *,
        timeout: float = 10.0,
        max_queued_events: int = DEFAULT_MAX_QUEUED_EVENTS,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if max_queued_events < 1:
            raise ValueError("max_queued_events must be at least 1")
        self.host = host
        self.port = port
        self.timeout = timeout
        #: The banner line, e.g. ``"Asterisk Call Manager/11.0.0"``, after connect().
        self.banner: str | None = None
        #: The AMI version from the banner, e.g. ``"11.0.0"`` for Asterisk 22.
        self.ami_version: str | None = None
        #: The user logged in, or None.
        self.username: str | None = None
        #: Events dropped from the front of the full event queue.
        self.events_dropped = 0
        #: Exceptions raised by event callbacks (each one is logged).
        self.callback_errors = 0
        self._max_queued_events = max_queued_events
        self._sock: socket.socket | None = None
        self._parser = Parser(role="client")
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the state below
        self._event_arrived = threading.Condition(self._lock)
        self._waiters: dict[str, _Waiter] = {}
        self._events: deque[Message] = deque()
        self._callbacks: tuple[tuple[re.Pattern[str], Callable[[Message], object]], ...] = ()
        self._ids = itertools.count(1)
        # Why the client cannot be used (not yet connected, or the connection ended).
        self._ended: tuple[type[AMIError], str] | None = (
            ConnectionLost,
            f"not connected to {self.address}: call connect() first",
        )
        self._connected_once = False
        self._logging_off = False
        self._started = 0.0
        self._transcript: deque[tuple[str, float, Message | bytes | str]] = deque(
            maxlen=TRANSCRIPT_LIMIT
        )
        self._transcript_lock = threading.Lock()

    # -- connection ---------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def closed(self) -> bool:
        """True once the connection has ended (or before connect())."""
        return self._ended is not None

    def connect(self) -> AMIClient:
        """Open the TCP connection, read the banner and start the reader thread.

        Raises ConnectionLost when the server cannot be reached, ProtocolError
        when the peer does not greet with ``Asterisk Call Manager/<version>``.
        """
        if self._connected_once:
            raise AMIError(f"already connected once to {self.address}; use a new AMIClient")
        self._connected_once = True
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError as err:
            raise ConnectionLost(
                f"connection to {self.address} refused: is Asterisk running with "
                "enabled = yes in manager.conf, and do its bindaddr and port match? "
                f"(check with: sudo ss -tlnp | grep {self.port})"
            ) from err
        except TimeoutError as err:
            raise ConnectionLost(
                f"no answer from {self.address} within {self.timeout} s: "
                f"is a firewall or cloud security group dropping port {self.port}?"
            ) from err
        except OSError as err:
            raise ConnectionLost(f"cannot connect to {self.address}: {err}") from err
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._started = time.monotonic()
        try:
            first = self._read_banner(sock)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        with self._lock:
            self._ended = None
        self._record("recv", f"{self.banner}\r\n")
        for message in first:
            self._route(message)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"amilab-reader {self.address}", daemon=True
        )
        self._reader.start()
        return self

    def _read_banner(self, sock: socket.socket) -> list[Message]:
        data = b""
        while b"\n" not in data and len(data) < _BANNER_LIMIT:
            try:
                chunk = sock.recv(_BANNER_LIMIT)
            except TimeoutError:
                raise ProtocolError(
                    f"{self.address} sent no banner within {self.timeout} s: is it an AMI port?"
                ) from None
            if not chunk:
                raise ConnectionLost(
                    f"{self.address} closed the connection before sending a banner "
                    "(too many unauthenticated connections: see authlimit in manager.conf; "
                    "the ACL is checked only at Login, after the banner)"
                )
            data += chunk
        messages = self._parser.feed(data) if b"\n" in data else []
        if self._parser.banner is None:
            first_line = data.split(b"\n", 1)[0][:60]
            raise ProtocolError(
                f"{self.address} is not an AMI server: it sent {first_line!r} "
                "instead of 'Asterisk Call Manager/<version>'"
            )
        self.banner = self._parser.banner
        self.ami_version = self._parser.version
        return messages

    def close(self) -> None:
        """Close the connection now (no Logoff). Safe to call twice, from any thread."""
        # After logoff() the server closes too; whichever side is first, say the same.
        if self._logging_off:
            self._end(ConnectionLost, f"{self.address} closed the connection after Logoff")
        else:
            self._end(ConnectionLost, f"connection to {self.address} closed by the client")
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(self.timeout)

    def _end(self, kind: type[AMIError], reason: str) -> None:
        """End the connection once: fail every waiter, wake the event readers."""
        with self._lock:
            if self._ended is not None:
                return
            self._ended = (kind, reason)
            waiters = list(self._waiters.values())
            self._waiters.clear()
            self._event_arrived.notify_all()
        for waiter in waiters:
            waiter.error = kind(reason)
            waiter.done.set()
        self._record("note", reason)
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in recv()
            except OSError:
                pass  # already disconnected
            sock.close()

    def __enter__(self) -> AMIClient:
        if not self._connected_once:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Log off politely when the block ended normally; just close otherwise."""
        try:
            if exc_type is None and self.username is not None and not self.closed:
                self.logoff()
        except AMIError as err:
            logger.info("logoff from %s on exit failed: %s", self.address, err)
        finally:
            self.close()

    def __repr__(self) -> str:
        if not self._connected_once:
            state = "not connected"
        elif self.closed:
            state = "closed"
        elif self.username is not None:
            state = f"logged in as {self.username}"
        else:
            state = "connected"
        return f"<AMIClient {self.address} {state}>"

    # -- actions ------------------------------------------------------------------

    def login(
        self, username: str, secret: str, *, events: bool = True, auth: str = "plain"
    ) -> Message:
        """Log in; returns the ``Authentication accepted`` response.

        ``events=False`` sends ``Events: off`` (no events at all, not even
        FullyBooted). ``auth="md5"`` never sends the secret: it asks for a
        Challenge and sends Key = md5(challenge + secret) in lowercase hex.

        Asterisk answers every failure the same way, after a 1 s pause, and
        then closes the connection: this raises AuthenticationError carrying
        that reply, and the client is closed.
        """
        fields: dict[str, HeaderValue] = {"Username": username}
        if auth == "md5":
            challenge = self.send_action("Challenge", AuthType="MD5")["Challenge"]
            digest = hashlib.md5((challenge + secret).encode(), usedforsecurity=False)
            fields.update(AuthType="MD5", Key=digest.hexdigest())
        elif auth == "plain":
            fields["Secret"] = secret
        else:
            raise ValueError(f"auth must be 'plain' or 'md5', not {auth!r}")
        if not events:
            fields["Events"] = "off"
        response = self.send_action("Login", check=False, **fields)
        if (response.get("Response") or "").lower() != "success":
            self.close()
            raise AuthenticationError(
                f"login as {username!r} on {self.address} failed: "
                f"{response.get('Message') or 'no Message header'} "
                "(check the username, the secret and the permit/deny ACL in manager.conf)",
                response,
            )
        self.username = username
        return response

    def send_action(self, name: str, *, check: bool = True, **headers: HeaderValue) -> Message:
        """Send one action and return its response.

        A list value becomes repeated headers (several ``Variable:`` lines).
        An ActionID is added unless given. With ``check=True`` a
        ``Response: Error`` raises AMIError (PermissionDenied for "Permission
        denied") carrying the reply. A CR or LF in a name or value raises
        ValueError before anything is sent.
        """
        response, _ = self._request(name, headers, collects_list=False)
        if check:
            _check(name, response)
        return response

    def send_list_action(
        self, name: str, *, check: bool = True, **headers: HeaderValue
    ) -> ListResult:
        """Send a list action (CoreShowChannels, PJSIPShowEndpoints, QueueStatus...)
        and wait for its ``*Complete`` event.

        The item events come back in ``.events``; they never reach the event
        queue or the callbacks. ``timeout`` bounds the whole list; items that
        arrive after a timeout go to the event queue like any event.
        """
        response, waiter = self._request(name, headers, collects_list=True)
        if check:
            _check(name, response)
        return ListResult(response, waiter.items, waiter.complete)

    def command(self, cli: str) -> str:
        """Run a CLI command (``core show version``) and return its output text.

        Works with Asterisk 14+ (``Output:`` lines) and with the legacy
        ``Response: Follows`` form of Asterisk 13 and older. An unknown or
        failed command raises AMIError with the CLI's own words.
        """
        response = self.send_action("Command", check=False, Command=cli)
        output = "\n".join(response.getall("Output"))
        if (response.get("Response") or "").lower() == "error":
            if response.get("Message") == PERMISSION_DENIED_TEXT:
                raise PermissionDenied(f"Command {cli!r}: {PERMISSION_DENIED_TEXT}", response)
            raise AMIError(
                f"Command {cli!r} failed: {output or response.get('Message')}", response
            )
        return output

    def ping(self) -> Message:
        """Ping the server (a keepalive; the reply holds ``Ping: Pong`` and a Timestamp)."""
        return self.send_action("Ping")

    def logoff(self) -> Message:
        """Send Logoff, wait for ``Response: Goodbye``, then close."""
        self._logging_off = True
        try:
            return self.send_action("Logoff")
        finally:
            self.close()

    def _request(
        self, name: str, headers: dict[str, HeaderValue], *, collects_list: bool
    ) -> tuple[Message, _Waiter]:
        """Send one action and wait for its response (and, for a list, its items)."""
        if self._reader is threading.current_thread():
            raise RuntimeError(
                "an event callback cannot wait for a response: the reader thread that "
                "would deliver it is busy running the callback"
            )
        given = [key for key in headers if key.lower() == "actionid"]
        if given:
            action_id = str(headers.pop(given[0]))
        else:
            with self._lock:
                action_id = f"amilab-{next(self._ids)}"
        data = self._encode(name, headers, action_id)  # ValueError before anything is sent
        waiter = _Waiter(action_id, collects_list)
        with self._lock:
            if self._ended is not None:
                kind, reason = self._ended
                raise kind(reason)
            if action_id in self._waiters:
                raise ValueError(f"ActionID {action_id!r} is already waiting for a response")
            self._waiters[action_id] = waiter
        self._send(data)
        if not waiter.done.wait(self.timeout):
            with self._lock:
                self._waiters.pop(action_id, None)
            if not waiter.done.is_set():
                raise ActionTimeout(
                    f"no response to {name} (ActionID {action_id}) from {self.address} "
                    f"within {self.timeout} s"
                )
        if waiter.error is not None:
            raise waiter.error
        assert waiter.response is not None  # done without an error means it arrived
        return waiter.response, waiter

    @staticmethod
    def _encode(name: str, headers: dict[str, HeaderValue], action_id: str) -> bytes:
        """encode_action, keeping every value out of the error when one is a secret."""
        try:
            return encode_action(name, headers, action_id=action_id)
        except ValueError:
            if not any(key.lower() in SECRET_HEADERS for key in headers):
                raise
        raise ValueError(
            f"a header of {name} contains CR or LF, which would inject extra headers "
            "(values not shown: one is a secret)"
        )

    def _send(self, data: bytes) -> None:
        """Write one whole action; the lock keeps concurrent actions apart on the wire."""
        with self._send_lock:
            self._record("send", data)  # before the write, so it precedes the reply
            try:
                self._sock.sendall(data)  # type: ignore[union-attr]
            except OSError as err:
                self._end(ConnectionLost, f"sending to {self.address} failed: {err}")
                kind, reason = self._ended  # type: ignore[misc]
                raise kind(reason) from None

    # -- events -------------------------------------------------------------------

    def next_event(self, timeout: float | None = None) -> Message | None:
        """The oldest queued event; waits up to ``timeout`` seconds (None: no limit)
        and returns None if nothing came. Events queued before the connection
        ended are still returned; after them it raises ConnectionLost."""
        with self._event_arrived:
            self._event_arrived.wait_for(lambda: self._events or self._ended, timeout)
            if self._events:
                return self._events.popleft()
            if self._ended is None:
                return None
            raise ConnectionLost(self._ended[1])

    def events(self, timeout: float | None = None) -> Iterator[Message]:
        """Iterate over events as they arrive. Stops when the connection ends,
        or when no event came for ``timeout`` seconds."""
        while True:
            try:
                event = self.next_event(timeout)
            except ConnectionLost:
                return
            if event is None:
                return
            yield event

    def on_event(self, pattern: str, callback: Callable[[Message], object]) -> Callable[[], None]:
        """Call ``callback(event)`` on the reader thread for each event whose name
        matches the glob ``pattern`` (any case: ``"Dial*"``, ``"*"``).
        Returns a function that removes the callback."""
        entry = (re.compile(translate(pattern), re.IGNORECASE), callback)
        with self._lock:
            self._callbacks = (*self._callbacks, entry)

        def remove() -> None:
            with self._lock:
                self._callbacks = tuple(e for e in self._callbacks if e is not entry)

        return remove

    # -- the reader thread ----------------------------------------------------------

    def _read_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while self._ended is None:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue  # the socket timeout bounds writes; reading may idle forever
            except OSError as err:
                self._end(ConnectionLost, f"connection to {self.address} failed: {err}")
                return
            if not data:
                if self._ended is None:  # not our own close()
                    self._end(ConnectionLost, self._closed_by_server_reason())
                return
            try:
                for message in self._parser.feed(data):
                    self._route(message)
            except ProtocolError as err:
                logger.error("closing the connection to %s: %s", self.address, err)
                self._end(ProtocolError, f"{err} (connection to {self.address} closed)")
                return
            except Exception as err:  # a bug must not leave callers waiting forever
                logger.exception("reader thread for %s failed", self.address)
                self._end(ConnectionLost, f"reader thread for {self.address} failed: {err!r}")
                return

    def _closed_by_server_reason(self) -> str:
        unread = self._parser.pending_bytes()
        if unread:
            reason = (
                f"{self.address} closed the connection in the middle of a message "
                f"({unread} bytes of it lost)"
            )
            logger.warning("%s", reason)
        elif self._logging_off:
            reason = f"{self.address} closed the connection after Logoff"
        else:
            reason = f"{self.address} closed the connection"
            logger.info("%s", reason)
        return reason

    def _route(self, message: Message) -> None:
        self._record("recv", message)
        kind = message.kind
        # Most traffic: an event while no action waits (a waiter is registered
        # before its action is sent, so none can be missed), or one without an
        # ActionID. Looking the ActionID up costs more than the rest of routing.
        if kind == "event" and (not self._waiters or message.action_id is None):
            self._deliver_event(message)
            return
        action_id = message.action_id
        with self._lock:
            waiter = self._waiters.get(action_id) if action_id is not None else None
        if kind == "response":
            if waiter is None:
                logger.warning(
                    "dropping a %s response for ActionID %r from %s: nobody waits for "
                    "it (its caller timed out?)", message.name, action_id, self.address,
                )
                return
            waiter.response = message
            if not (waiter.collects_list and _is_list_start(message)):
                self._finish(waiter)
        elif waiter is not None and waiter.collects_list:
            if (message.get("EventList") or "").lower() == "complete":
                waiter.complete = message
                self._finish(waiter)
            else:
                waiter.items.append(message)
        elif kind == "event":
            self._deliver_event(message)
        else:
            logger.warning(
                "ignoring a message from %s that is neither a response nor an event: %r",
                self.address, message,
            )

    def _finish(self, waiter: _Waiter) -> None:
        with self._lock:
            if self._waiters.get(waiter.action_id) is waiter:
                del self._waiters[waiter.action_id]
        waiter.done.set()

    def _deliver_event(self, event: Message) -> None:
        with self._lock:
            dropped_first = False
            if len(self._events) >= self._max_queued_events:
                self._events.popleft()
                self.events_dropped += 1
                dropped_first = self.events_dropped == 1
            self._events.append(event)
            self._event_arrived.notify_all()
            callbacks = self._callbacks
        if dropped_first:
            logger.warning(
                "event queue for %s is full (%d events): dropping the oldest; "
                "read them with next_event()/events(), events_dropped counts the losses",
                self.address, self._max_queued_events,
            )
        name = (event.name or "") if callbacks else ""
        for pattern, callback in callbacks:
            if pattern.match(name):
                try:
                    callback(event)
                except Exception:
                    self.callback_errors += 1
                    logger.exception("event callback %r failed on %s", callback, name)

    # -- transcript ---------------------------------------------------------------

    def _record(self, direction: str, payload: Message | bytes | str) -> None:
        with self._transcript_lock:
            self._transcript.append((direction, time.monotonic() - self._started, payload))

    @property
    def transcript(self) -> list[TranscriptEntry]:
        """The last steps of the exchange (at most TRANSCRIPT_LIMIT = 1,000 entries,
        oldest first), Secret and Key values masked. The reader thread only
        stores references; the text is built here, when someone looks."""
        with self._transcript_lock:
            entries = list(self._transcript)
        return [TranscriptEntry(d, t, _entry_text(payload)) for d, t, payload in entries]


def _is_list_start(response: Message) -> bool:
    return (response.get("EventList") or "").lower() == "start"


def _entry_text(payload: Message | bytes | str) -> str:
    if isinstance(payload, Message):
        return payload.masked_text()
    if isinstance(payload, bytes):  # an action we sent: read it as Asterisk would
        return Parser(role="server").feed(payload)[0].masked_text()
    return payload
