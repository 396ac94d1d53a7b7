"""``amilab.connect()``: one call that gives a notebook a logged-in AMI client.

With ``AMI_HOST`` in the environment (or ``host=`` given) it connects to that
real Asterisk (``AMI_PORT``, default 5038; ``AMI_USERNAME``, ``AMI_SECRET``).
Otherwise it starts a :class:`~amilab.sim.server.SimulatedAsterisk` inside
this kernel with the course's users and logs in as ``admin``. Either way it
prints one line saying which server it is on, and the client says it too
(:attr:`LabClient.server_kind`). Closing the client (``close()``,
``logoff()``, the end of a ``with`` block) also stops an in-kernel simulator.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from amilab.client import AMIClient
from amilab.errors import AMIError

if TYPE_CHECKING:
    from amilab.sim.server import SimulatedAsterisk

#: The course's admin user (guide Step 2), whom the simulator logs in.
COURSE_USERNAME = "admin"
DEFAULT_AMI_PORT = 5038

ServerKind = Literal["simulated", "asterisk"]


class LabClient(AMIClient):
    """An :class:`~amilab.client.AMIClient` that knows which server it is on.

    ``server_kind`` is ``"simulated"`` (an in-kernel simulator, reachable as
    ``simulator`` for its PBX demo API) or ``"asterisk"`` (a real server;
    ``simulator`` is None). Closing the client also closes the simulator.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        server_kind: ServerKind,
        simulator: SimulatedAsterisk | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.server_kind: ServerKind = server_kind
        self.simulator = simulator

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.simulator is not None:
                self.simulator.close()

    def __repr__(self) -> str:
        kind = "simulated Asterisk" if self.server_kind == "simulated" else "Asterisk"
        return super().__repr__().replace("<AMIClient", f"<LabClient ({kind})", 1)


def connect(
    *,
    host: str | None = None,
    port: int | None = None,
    username: str | None = None,
    secret: str | None = None,
    timeout: float = 10.0,
    events: bool = True,
    auth: Literal["plain", "md5"] = "plain",
) -> LabClient:
    """Connect and log in; returns the logged-in client.

    Keyword arguments override the environment. Raises AuthenticationError
    when the login fails, ConnectionLost when the server cannot be reached,
    and AMIError when a real server is asked for without a username or
    secret. The secret is never printed.
    """
    host = host or os.environ.get("AMI_HOST") or None
    if host is None:
        return _connect_simulated(port, username, secret, timeout, events, auth)
    if port is None:
        port = port_from_environment()
    username = username or os.environ.get("AMI_USERNAME")
    secret = secret if secret is not None else os.environ.get("AMI_SECRET")
    if not username or secret is None:
        raise AMIError(
            f"AMI_HOST is {host}, so amilab connects to that Asterisk, but "
            f"{'AMI_USERNAME' if not username else 'AMI_SECRET'} is not set: set it in the "
            "environment (or pass username=/secret=) to the values of the user's section "
            "in manager.conf"
        )
    client = LabClient(host, port, server_kind="asterisk", timeout=timeout).connect()
    _login(client, username, secret, events, auth)
    print(
        f"amilab: connected to Asterisk at {client.address} as {username} "
        f"(AMI {client.ami_version})"
    )
    return client


def _connect_simulated(
    port: int | None,
    username: str | None,
    secret: str | None,
    timeout: float,
    events: bool,
    auth: Literal["plain", "md5"],
) -> LabClient:
    # Imported here: a notebook on a real Asterisk never loads the simulator.
    from amilab.sim.server import SimulatedAsterisk

    simulator = SimulatedAsterisk(port=port or 0)
    try:
        client = LabClient(
            simulator.host,
            simulator.port,
            server_kind="simulated",
            simulator=simulator,
            timeout=timeout,
        ).connect()
    except BaseException:
        simulator.close()
        raise
    username = username or COURSE_USERNAME
    if secret is None:  # the course's users and secrets are public (guide Steps 2 and 9)
        user = simulator.config.user(username)
        secret = user.secret if user is not None and user.secret is not None else ""
    _login(client, username, secret, events, auth)
    print(
        f"amilab: connected to a simulated Asterisk 22 in this kernel ({client.address}) as "
        f"{username}; set AMI_HOST to use a real one"
    )
    return client


def _login(
    client: LabClient, username: str, secret: str, events: bool, auth: Literal["plain", "md5"]
) -> None:
    try:
        client.login(username, secret, events=events, auth=auth)
    except BaseException:
        client.close()  # a failed login closes the connection (and the simulator)
        raise


def port_from_environment() -> int:
    """``AMI_PORT`` (5038 when unset); AMIError naming the value when it is not a port."""
    text = os.environ.get("AMI_PORT") or str(DEFAULT_AMI_PORT)
    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise AMIError(f"AMI_PORT is {text!r}, which is not a TCP port (1-65535)")
    return int(text)
