"""ConnectionPanel: Steps 4, 5 and 8 as a form: connect, log in, log off.

When nothing answers at the host and port given, the panel starts the
simulated Asterisk 22 inside the kernel and says so, so a notebook works on
Binder or a laptop with no Asterisk.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd

from amilab.connect import COURSE_USERNAME, LabClient, port_from_environment
from amilab.errors import AMIError, ConnectionLost
from amilab.panels.base import Panel

log = logging.getLogger(__name__)


class ConnectionPanel(Panel):
    """Host, port, username and secret, with Connect, Log in and Log off.

    Defaults come from ``AMI_HOST``, ``AMI_PORT``, ``AMI_USERNAME`` and
    ``AMI_SECRET`` when set (as :func:`amilab.connect` reads them), else
    127.0.0.1:5038 and the course's ``admin`` user.

    What a caller can rely on:

    * :attr:`client` is the connected :class:`~amilab.connect.LabClient` (None
      before Connect and after Log off): give it to the other panels.
    * If nothing answers at host:port (refused, unreachable, no answer within
      ``timeout``), the panel connects to a simulated Asterisk it starts in
      this kernel, and the status line says so; ``client.server_kind`` is then
      ``"simulated"`` and :attr:`simulator` is that server. Something that
      answers but is not AMI is an error, not a reason to fall back.
    * On the simulator an empty secret logs in with the simulated user's own
      (the course's users and secrets are public: guide Step 2).
    * A typed secret lives only in the Password field: no other widget, status
      text or log line ever holds it. A secret from ``AMI_SECRET`` or the
      ``secret=`` argument is not put in the field either (a saved widget state
      would keep it in the notebook): it is used when the field is left empty.
    * Buttons run on a worker thread (a failed login takes Asterisk's 1 s),
      so the kernel stays free; :meth:`connect`, :meth:`login` and
      :meth:`logoff` do the same work synchronously and never raise for the
      outcome: it is in :attr:`status`.
    """

    css_class = "amilab-connection-panel"

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        secret: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self._timeout = timeout
        self._client: LabClient | None = None
        self._fallback = ""  # why the client is on the simulator, repeated in every status
        self._busy = threading.Lock()
        self._host = widgets.Text(
            value=host or os.environ.get("AMI_HOST") or "127.0.0.1", description="Host"
        )
        self._host.add_class("amilab-connection-host")
        self._port = widgets.BoundedIntText(
            value=port or port_from_environment(), min=1, max=65535, description="Port"
        )
        self._port.add_class("amilab-connection-port")
        self._username = widgets.Text(
            value=username or os.environ.get("AMI_USERNAME") or COURSE_USERNAME,
            description="Username",
        )
        self._username.add_class("amilab-connection-username")
        self._given_secret = secret if secret is not None else os.environ.get("AMI_SECRET", "")
        self._secret = widgets.Password(value="", description="Secret")
        self._secret.add_class("amilab-connection-secret")
        self._buttons = {
            label: widgets.Button(description=label, icon=icon)
            for label, icon in (("Connect", "plug"), ("Log in", "sign-in"), ("Log off", "sign-out"))
        }
        for (label, button), action in zip(
            self._buttons.items(), (self.connect, self.login, self.logoff)
        ):
            button.add_class("amilab-connection-" + label.lower().replace(" ", ""))
            button.on_click(lambda _, run=action: self._in_background(run))
        self._widget = self._root(
            widgets.HBox([self._host, self._port]),
            widgets.HBox([self._username, self._secret]),
            widgets.HBox(list(self._buttons.values())),
        )
        self._set_status("Not connected. Connect opens the TCP connection (Step 4); "
                         "Log in also connects first (Step 5).")

    # -- what other panels use ------------------------------------------------------

    @property
    def client(self) -> LabClient | None:
        """The connected client (logged in or not), or None."""
        client = self._client
        return client if client is not None and not client.closed else None

    @property
    def simulator(self):  # -> SimulatedAsterisk | None (imported lazily)
        """The in-kernel simulated Asterisk the panel fell back to, or None."""
        client = self.client
        return client.simulator if client is not None else None

    @property
    def logged_in(self) -> bool:
        client = self.client
        return client is not None and client.username is not None

    def frame(self) -> pd.DataFrame:
        """The connection as one row: the form's ``Host``, ``Port`` and
        ``Username``; then ``Server`` ("asterisk", "simulated" or "" when not
        connected), the ``Address`` actually connected to, the ``Banner`` and
        ``LoggedIn``. Never the secret."""
        client = self.client
        row = {
            "Host": self._host.value,
            "Port": self._port.value,
            "Username": self._username.value,
            "Server": client.server_kind if client is not None else "",
            "Address": client.address if client is not None else "",
            "Banner": (client.banner or "") if client is not None else "",
            "LoggedIn": self.logged_in,
        }
        return pd.DataFrame([row]).astype({"Port": "int64", "LoggedIn": "bool"})

    # -- the buttons ----------------------------------------------------------------

    def connect(self) -> LabClient | None:
        """Open the connection and read the banner (falling back to the simulator
        when nothing answers). Returns the client, or None after an error."""
        if self.client is not None:
            self._set_status(f"Already connected: {self._where(self.client)}.")
            return self.client
        host, port = self._host.value.strip(), self._port.value
        self._set_status(f"Connecting to {host}:{port}…")
        try:
            client = LabClient(host, port, server_kind="asterisk", timeout=self._timeout).connect()
            fallback = ""
        except ConnectionLost as err:
            try:
                client = _simulated_client(self._timeout)
            except (AMIError, OSError) as sim_err:
                self._set_status(f"{err} The simulated Asterisk could not start either: {sim_err}",
                                 error=True)
                return None
            fallback = (f"Nothing answered at {host}:{port} ({_reason(err, self._timeout)}), so "
                        "this panel started a simulated Asterisk 22 inside this kernel. ")
        except AMIError as err:
            self._set_status(str(err), error=True)
            return None
        self._client = client
        self._fallback = fallback
        self._set_status(f"{fallback}Connected: {self._where(client)}, banner "
                         f"'{client.banner}'. Not logged in yet.")
        return client

    def login(self) -> LabClient | None:
        """Log in with the form's username and secret (connecting first if
        needed). Returns the client, or None when it failed (see :attr:`status`)."""
        client = self.client or self.connect()
        if client is None:
            return None
        if client.username is not None:
            self._set_status(f"Already logged in as {client.username}: {self._where(client)}.")
            return client
        username = self._username.value.strip()
        # A given secret is for the server asked for, not for a fallback simulator.
        secret = self._secret.value or ("" if client.simulator is not None else self._given_secret)
        if secret == "" and client.simulator is not None:
            user = client.simulator.config.user(username)
            secret = user.secret if user is not None and user.secret is not None else ""
        try:
            client.login(username, secret)
        except AMIError as err:
            hint = ""
            if client.server_kind == "simulated":
                hint = (" The simulated Asterisk has the course's users (guide Step 2): leave "
                        "the secret empty to log in with the user's own.")
            self._set_status(f"{err}.{hint}", error=True)
            return None
        self._set_status(f"{self._fallback}Logged in as {username}: {self._where(client)}.")
        return client

    def logoff(self) -> None:
        """Send Logoff (Step 8): Asterisk answers Goodbye and closes the connection
        (and a simulated Asterisk the panel started stops)."""
        client = self.client
        if client is None:
            self._set_status("Not connected.")
            return
        try:
            goodbye = client.logoff()
        except AMIError as err:
            self._set_status(f"Logoff: {err}", error=True)
            return
        finally:
            self._client = None
        self._set_status(f"Logged off: Response: {goodbye.get('Response')}, "
                         f"Message: {goodbye.get('Message')}")

    def close(self) -> None:
        """Close the connection (no Logoff) and the widgets."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        super().close()

    def _where(self, client: LabClient) -> str:
        if client.server_kind == "simulated":
            return f"simulated Asterisk 22 in this kernel at {client.address}"
        return f"Asterisk at {client.address}"

    def _in_background(self, action: Callable[[], object]) -> None:
        if not self._busy.acquire(blocking=False):
            return

        def run() -> None:
            try:
                action()
            except Exception:
                log.exception("ConnectionPanel: %s failed", action.__name__)
                self._set_status(f"{action.__name__} failed in the panel (see the log)",
                                 error=True)
            finally:
                for button in self._buttons.values():
                    button.disabled = False
                self._busy.release()

        for button in self._buttons.values():
            button.disabled = True
        threading.Thread(target=run, name="amilab-connection-panel", daemon=True).start()


def _simulated_client(timeout: float) -> LabClient:
    from amilab.sim.server import SimulatedAsterisk  # only when falling back

    simulator = SimulatedAsterisk()
    try:
        return LabClient(simulator.host, simulator.port, server_kind="simulated",
                         simulator=simulator, timeout=timeout).connect()
    except BaseException:
        simulator.close()
        raise


def _reason(err: ConnectionLost, timeout: float) -> str:
    """A few words for why nothing answered (the client's message gives advice at length)."""
    cause = err.__cause__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, TimeoutError):
        return f"no answer within {timeout:g} s"
    return str(cause or err)

