"""The simulated Asterisk's AMI listener, and :class:`SimulatedAsterisk` around it.

One thread runs a :mod:`selectors` loop over non-blocking sockets: it accepts
clients, feeds their bytes to :class:`~amilab.sim.session.Session` objects,
runs their timers and writes what they answer. Nothing else touches a socket.
PBX events and late action replies come from other threads; they are queued
and the loop is woken through a socketpair, so they reach the sessions in the
order they were produced.

Every client has its own output buffer. A client that stops reading never
delays the others: when a write makes no progress for the session's write
timeout (``writetimeout``, 100 ms by default, as Asterisk's write timeout),
or its unsent bytes pass ``output_limit``, it is dropped, as Asterisk ends a
session whose write fails, and nothing of it is kept.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from amilab.sim import classes
from amilab.sim.actions import ACTIONS, ActionSpec, ManagerView
from amilab.sim.config import DEFAULT_MANAGER_CONF, ConfigError, ManagerConfig, parse_manager_conf
from amilab.sim.pbx import PBX
from amilab.sim.session import FAILED_LOGIN_DELAY, Session, render_event

log = logging.getLogger(__name__)

#: Unsent bytes (output plus events held behind a pending reply) beyond which a
#: client that is not reading is dropped.
DEFAULT_OUTPUT_LIMIT = 4 * 1024 * 1024
_RECV_SIZE = 65536
_SEND_SIZE = 262144
#: After accept() fails for lack of file descriptors, wait this long before retrying.
_ACCEPT_RETRY = 0.1
#: How long close() waits for the loop thread (it only waits on a stuck action handler).
_JOIN_TIMEOUT = 5.0

ConfigSource = str | os.PathLike[str] | None


class _Connection:
    """A client socket and its session, owned by the loop thread."""

    __slots__ = (
        "sock",
        "fd",
        "session",
        "out",
        "closing",
        "end_of_input",
        "blocked_since",
        "counted",
        "mask",
    )

    def __init__(self, sock: socket.socket, session: Session) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.session = session
        self.out = bytearray()
        self.closing = False  # close once `out` is written
        self.end_of_input = False
        self.blocked_since: float | None = None  # unsent bytes and no progress since
        self.counted = True  # counts toward authlimit until login
        self.mask = 0


class _ManagerServer:
    """The loop: a SessionHost for every session, and the ManagerView the
    PBX's actions use for ``manager ...`` CLI commands and reload."""

    def __init__(
        self,
        source: ConfigSource,
        config: ManagerConfig,
        host: str,
        port: int,
        pbx: PBX,
        actions: Mapping[str, ActionSpec],
        failed_login_delay: float,
        output_limit: int,
    ) -> None:
        self.source = source
        self.config = config
        self.pbx = pbx
        self.actions = actions
        self.manager = self
        self.failed_login_delay = failed_login_delay
        self._output_limit = output_limit
        self._connections: dict[Session, _Connection] = {}
        self._unauthenticated = 0
        # [deadline, order, callback]; a cancelled timer's callback is None
        self._timers: list[list] = []
        self._timer_order = itertools.count()
        self._touched: set[_Connection] = set()
        self._blocked: set[_Connection] = set()
        self._paused: set[_Connection] = set()
        self._inbox: list[Callable[[], None]] = []
        self._inbox_lock = threading.Lock()
        self._wake_pending = False
        self._stopping = False
        self._selector = selectors.DefaultSelector()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server(
            (host, port),
            family=family,
            backlog=socket.SOMAXCONN,
            dualstack_ipv6=host == "::" and socket.has_dualstack_ipv6(),
        )
        try:
            self._listener.setblocking(False)
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
            self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake)
        except BaseException:
            self._listener.close()
            raise
        self.address = self._listener.getsockname()[:2]
        self._unsubscribe = pbx.subscribe(self._on_pbx_event)
        self._thread = threading.Thread(
            target=self._run, name=f"amilab-sim-ami {host}:{self.address[1]}", daemon=True
        )
        self._thread.start()

    # -- SessionHost ------------------------------------------------------------------

    def send(self, session: Session, data: bytes) -> None:
        conn = self._connections.get(session)
        if conn is not None and not conn.closing:
            conn.out += data
            self._touched.add(conn)

    def close(self, session: Session) -> None:
        conn = self._connections.get(session)
        if conn is not None:
            conn.closing = True
            self._touched.add(conn)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` in the loop after ``delay`` s; returns a function that
        cancels it (and drops the reference, so a closed session is freed at once)."""
        timer = [time.monotonic() + delay, next(self._timer_order), callback]
        heapq.heappush(self._timers, timer)

        def cancel() -> None:
            timer[2] = None

        return cancel

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        with self._inbox_lock:
            self._inbox.append(callback)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            try:
                self._wake_w.send(b"\0")
            except OSError:  # buffer full (a wake-up is pending anyway) or closed
                pass

    def logged_in(self, username: str) -> bool:
        lowered = username.lower()
        return any(
            s.authenticated and (s.username or "").lower() == lowered
            for s in list(self._connections)
        )

    def authenticated(self, session: Session) -> None:
        conn = self._connections.get(session)
        if conn is not None and conn.counted:
            conn.counted = False
            self._unauthenticated -= 1

    # -- ManagerView ----------------------------------------------------------------------

    def reload(self) -> str:
        """``manager reload``: re-read manager.conf (the file, or the text last
        given). Returns "" or, when the new text cannot be used, why the old
        configuration stays."""
        try:
            self.apply(self.source)
        except (ConfigError, OSError) as exc:
            log.warning("manager reload failed, keeping the old configuration: %s", exc)
            return str(exc)
        return ""

    def apply(self, source: ConfigSource) -> None:
        """Load ``source`` as the new manager.conf, or raise and keep the old one.
        New logins use the new users; sessions keep what they logged in with,
        as in Asterisk."""
        config = _load(source, previous=self.config)
        old = self.config
        if (config.enabled, config.bindaddr, config.port) != (old.enabled, old.bindaddr, old.port):
            log.warning(
                "manager reload: enabled, bindaddr and port take effect when the simulator restarts"
            )
        self.source, self.config = source, config

    def run_cli(self, line: str) -> str | None:
        """The ``manager ...`` CLI commands, formatted as Asterisk 22's
        main/manager.c prints them; None for any other command."""
        words = line.split()
        if not words or words[0].lower() != "manager":
            return None
        rest = [word.lower() for word in words[1:]]
        if rest == ["show", "settings"]:
            return self._show_settings()
        if rest == ["show", "connected"]:
            return self._show_connected()
        if rest == ["show", "users"]:
            names = [user.name for user in self.config.users.values()]
            return (
                "\nusername\n--------\n"
                + "".join(f"{n}\n" for n in names)
                + f"-------------------\n{len(names)} manager users configured.\n"
            )
        if rest[:2] == ["show", "user"]:
            if len(words) != 4:
                return (
                    "Usage: manager show user <user>\n"
                    "        Display all information related to the manager user specified.\n"
                )
            return self._show_user(words[3])
        if rest == ["reload"]:
            error = self.reload()
            return f"{error}\n" if error else ""
        return None

    def _show_settings(self) -> str:
        config = self.config
        host, port = self.address
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

        def row(label: str, value: object) -> str:
            return f"  {label:<25.25}  {value!s:<15.55}\n"

        def yes_no(flag: bool) -> str:
            return "Yes" if flag else "No"

        return (
            "\nGlobal Settings:\n----------------\n"
            + row("Manager (AMI):", yes_no(config.enabled))
            + row("Web Manager (AMI/HTTP):", "No")
            + row("TCP Bindaddress:", bind)
            + row("HTTP Timeout (seconds):", 60)
            + row("TLS Enable:", "No")
            + row("TLS Bindaddress:", "Disabled")
            + row("TLS Certfile:", "asterisk.pem")
            + row("TLS Privatekey:", "")
            + row("TLS Cipher:", "")
            + row("Allow multiple login:", yes_no(config.allowmultiplelogin))
            + row("Display connects:", yes_no(config.displayconnects))
            + row("Timestamp events:", yes_no(config.timestampevents))
            + f"  {'Channel vars:':<25.25}  \n"
            + f"  {'Disabled events:':<25.25}  \n"
            + row("Debug:", "No")
            + "\n"
        )

    def _show_connected(self) -> str:
        def row(*cells: str) -> str:
            widths = (15, 55, 10, 10, 8, 8, 10, 10)
            return (
                "  " + "  ".join(f"{c:<{w}.{w}}" for c, w in zip(cells, widths, strict=True)) + "\n"
            )

        now = time.time()
        lines = [
            row(
                "Username",
                "IP Address",
                "Start",
                "Elapsed",
                "FileDes",
                "HttpCnt",
                "ReadPerms",
                "WritePerms",
            )
        ]
        connections = list(self._connections.values())
        for conn in connections:
            s = conn.session
            lines.append(
                row(
                    s.username or "",
                    s.address,
                    str(int(s.login_time)),
                    str(int(now - s.login_time)),
                    str(conn.fd),
                    "0",
                    f"{s.read:010d}",
                    f"{s.write:010d}",
                )
            )
        lines.append(f"{len(connections)} users connected.\n")
        return "".join(lines)

    def _show_user(self, name: str) -> str:
        user = self.config.user(name)
        if user is None:
            return f"There is no manager called {name}\n"

        def perms(mask: int) -> str:  # user_authority_to_str: only classes fully set
            names = [
                n
                for n, bit in (*classes.CLASSES.items(), ("all", classes.ALL))
                if mask & bit == bit
            ]
            return ",".join(names) or "<none>"

        text = (
            "\n"
            f"          username: {user.name}\n"
            f"            secret: {'<Set>' if user.secret is not None else '(N/A)'}\n"
            f"               ACL: {'yes' if user.acl.rules else 'no'}\n"
            f"         read perm: {perms(user.read)}\n"
            f"        write perm: {perms(user.write)}\n"
            f"   displayconnects: {'yes' if user.displayconnects else 'no'}\n"
            f"allowmultiplelogin: {'yes' if user.allowmultiplelogin else 'no'}\n"
            "         Variables: \n"
        )
        if user.acl.rules:
            text += "ACL: (unnamed)\n---------------------------------------------\n"
            text += "".join(f"{index:3d}: {rule}\n" for index, rule in enumerate(user.acl.rules))
        return text

    # -- the loop ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the loop, close every socket, join the thread. Idempotent."""
        self._stopping = True
        self.call_soon_threadsafe(lambda: None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=_JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.error("the simulated AMI server thread did not stop within %s s", _JOIN_TIMEOUT)

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._dispatch(self._selector.select(self._select_timeout()))
                self._run_timers()
                self._finish_iteration()
        except Exception:  # a bug in the loop itself: log it, never print
            log.exception("the simulated AMI server loop failed; closing it")
        finally:
            self._shutdown()

    def _dispatch(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        # A method of its own: a loop variable left in _run would keep the last
        # key, and a dropped client's connection with it, alive during select().
        for key, events in ready:
            self._guard(key.data, key.fileobj, events)

    def _guard(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("simulated AMI server: %r failed", handler)

    def _select_timeout(self) -> float | None:
        deadlines = [
            conn.blocked_since + conn.session.write_timeout
            for conn in self._blocked
            if conn.blocked_since is not None
        ]
        if self._timers:
            deadlines.append(self._timers[0][0])
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            callback = heapq.heappop(self._timers)[2]
            if callback is not None:
                self._guard(callback)

    def _wake(self, sock: socket.socket, _events: int) -> None:
        try:
            while sock.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._inbox_lock:
            batch, self._inbox = self._inbox, []
            self._wake_pending = False
        for callback in batch:
            self._guard(callback)

    def _on_pbx_event(self, event: Any) -> None:
        """PBX listener, called in whatever thread produced the event."""
        stamp = self.pbx.clock.wall()
        self.call_soon_threadsafe(lambda: self._fan_out(event, stamp))

    def _fan_out(self, event: Any, stamp: float) -> None:
        rendered = render_event(
            event.name, event.privilege, event.body, stamp if self.config.timestampevents else None
        )
        for conn in list(self._connections.values()):
            try:
                conn.session.deliver(rendered)
            except Exception:
                log.exception("delivering %s to %s failed", event.name, conn.session.address)
                self._drop(conn, "internal error")

    def _accept(self, listener: socket.socket, _events: int) -> None:
        while True:
            try:
                sock, peer = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning(
                        "cannot accept AMI clients (%s); retrying in %s s", exc, _ACCEPT_RETRY
                    )
                    self._selector.unregister(listener)
                    self.call_later(
                        _ACCEPT_RETRY,
                        lambda: self._selector.register(
                            listener, selectors.EVENT_READ, self._accept
                        ),
                    )
                return
            if self._unauthenticated >= self.config.authlimit:
                log.info(
                    "%s refused: %d clients not logged in yet (authlimit)",
                    peer[0],
                    self._unauthenticated,
                )
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self, peer[0])
            conn = _Connection(sock, session)
            self._connections[session] = conn
            self._unauthenticated += 1
            log.debug("AMI client connected from %s", peer[0])
            self._guard(session.start)
            self._touched.add(conn)

    def _readable(self, sock: socket.socket, conn: _Connection) -> None:
        try:
            data = sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._drop(conn, f"connection error: {exc}", level=logging.INFO)
            return
        self._touched.add(conn)
        try:
            if data:
                conn.session.feed(data)
            else:
                conn.end_of_input = True
                conn.session.end_of_input()
        except Exception:
            log.exception("session of %s failed on its input", conn.session.address)
            self._drop(conn, "internal error")

    def _finish_iteration(self) -> None:
        """Write what the sessions produced, drop clients that stopped reading,
        and keep each socket registered for exactly what it needs."""
        now = time.monotonic()
        self._touched.update(c for c in self._paused if c.session.accepting_input)
        touched, self._touched = self._touched, set()
        for conn in touched | self._blocked:
            if self._connections.get(conn.session) is conn:
                self._flush(conn, now)
        for conn in list(self._connections.values()):
            if conn.session.held_bytes + len(conn.out) > self._output_limit:
                self._drop(
                    conn, f"not reading: {conn.session.held_bytes + len(conn.out)} bytes unsent"
                )

    def _flush(self, conn: _Connection, now: float) -> None:
        sent_any = False
        while conn.out:
            try:
                with memoryview(conn.out) as view:
                    sent = conn.sock.send(view[:_SEND_SIZE])
            except BlockingIOError:
                break
            except OSError as exc:
                self._drop(conn, f"connection error: {exc}", level=logging.INFO)
                return
            del conn.out[:sent]
            sent_any = True
        if conn.out:
            if sent_any or conn.blocked_since is None:
                conn.blocked_since = now
            elif now - conn.blocked_since > conn.session.write_timeout:
                self._drop(
                    conn,
                    f"not reading for {conn.session.write_timeout:.3g} s "
                    f"({len(conn.out)} bytes unsent)",
                )
                return
            self._blocked.add(conn)
        else:
            conn.blocked_since = None
            self._blocked.discard(conn)
            if conn.closing:
                self._drop(conn, "session ended", level=logging.DEBUG)
                return
        self._register(conn)

    def _register(self, conn: _Connection) -> None:
        open_for_input = not conn.end_of_input and not conn.closing
        reading = open_for_input and conn.session.accepting_input
        if open_for_input and not reading:
            self._paused.add(conn)  # an action is running: read again once it is answered
        else:
            self._paused.discard(conn)
        mask = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if conn.out else 0)
        if mask == conn.mask:
            return
        if conn.mask == 0:
            self._selector.register(conn.sock, mask, lambda s, e, c=conn: self._io(c, e))
        elif mask == 0:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, mask, lambda s, e, c=conn: self._io(c, e))
        conn.mask = mask

    def _io(self, conn: _Connection, events: int) -> None:
        if events & selectors.EVENT_READ:
            self._readable(conn.sock, conn)
        if events & selectors.EVENT_WRITE:
            self._touched.add(conn)

    def _drop(self, conn: _Connection, reason: str, *, level: int = logging.WARNING) -> None:
        """Forget a client completely: socket, buffers, timers' target, authlimit slot."""
        if self._connections.get(conn.session) is not conn:
            return
        del self._connections[conn.session]
        log.log(
            level,
            "AMI client %s (%s) closed: %s",
            conn.session.address,
            conn.session.username or "not logged in",
            reason,
        )
        if conn.counted:
            self._unauthenticated -= 1
        self._blocked.discard(conn)
        self._touched.discard(conn)
        self._paused.discard(conn)
        if conn.mask:
            self._selector.unregister(conn.sock)
            conn.mask = 0
        conn.sock.close()
        conn.out.clear()
        conn.session.connection_lost()

    def _shutdown(self) -> None:
        self._unsubscribe()
        for conn in list(self._connections.values()):
            self._drop(conn, "server closed", level=logging.DEBUG)
        self._timers.clear()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()


def _load(source: ConfigSource, previous: ManagerConfig | None = None) -> ManagerConfig:
    text = (
        Path(source).read_text(encoding="utf-8")
        if isinstance(source, os.PathLike)
        else (DEFAULT_MANAGER_CONF if source is None else source)
    )
    config = parse_manager_conf(text, previous=previous)
    for warning in config.warnings:
        log.warning("manager.conf %s", warning)
    return config


class SimulatedAsterisk:
    """A simulated Asterisk 22 speaking AMI on a real TCP port, running in a
    background thread from construction until :meth:`close`.

    ``config`` is manager.conf text, a path to a manager.conf file (re-read on
    reload), or None for the course's users (admin and monitor, Step 2). The
    listener binds ``host`` (127.0.0.1 unless told otherwise) and ``port``
    (0 = a free port; see :attr:`port`); the file's bindaddr and port describe
    a real installation and are not used here. ``pbx`` defaults to a fresh
    :class:`~amilab.sim.pbx.PBX`; ``failed_login_delay`` shortens Asterisk's
    1 s pause in tests.

    Use it as a context manager, or call :meth:`close`; both are idempotent
    and leave no thread or socket behind.
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pbx: PBX | None = None,
        actions: Mapping[str, ActionSpec] | None = None,
        failed_login_delay: float = FAILED_LOGIN_DELAY,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
    ) -> None:
        loaded = _load(config)
        if not loaded.enabled:
            raise ConfigError(
                "[general] does not say 'enabled = yes', so Asterisk would not listen for AMI "
                "connections; add that line"
            )
        self._owns_pbx = pbx is None
        self.pbx = PBX() if pbx is None else pbx
        self._closed = False
        try:
            self._server = _ManagerServer(
                config,
                loaded,
                host,
                port,
                self.pbx,
                ACTIONS if actions is None else actions,
                failed_login_delay,
                output_limit,
            )
        except BaseException:
            if self._owns_pbx:
                self.pbx.close()
            raise
        #: The address the listener is bound to.
        self.host: str = self._server.address[0]
        #: The TCP port clients connect to.
        self.port: int = self._server.address[1]

    @property
    def config(self) -> ManagerConfig:
        """The manager.conf in force (new logins use it)."""
        return self._server.config

    @property
    def manager(self) -> ManagerView:
        """The manager side as the PBX's actions see it: ``run_cli("manager show
        connected")`` and friends, ``reload()``."""
        return self._server

    def reload(self, text: str | None = None) -> None:
        """Load new manager.conf text (or re-read the current source) like
        ``manager reload``. Raises ConfigError (OSError for an unreadable file)
        and keeps the old configuration when the text cannot be used."""
        self._server.apply(self._server.source if text is None else text)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Disconnect every client, stop the listener and join its thread."""
        if self._closed:
            return
        self._closed = True
        self._server.stop()
        if self._owns_pbx:
            self.pbx.close()

    def __enter__(self) -> SimulatedAsterisk:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"listening on {self.host}:{self.port}"
        users = ", ".join(user.name for user in self.config.users.values())
        return f"<SimulatedAsterisk {state}, users {users}>"
