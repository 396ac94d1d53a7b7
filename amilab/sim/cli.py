"""``amilab serve``: run the simulated Asterisk in a terminal, for nc and for
clients on other machines, as the course's Steps 4-8 use a real one.

Command-line flags override the file; with no file the course's users are
used. It listens on 127.0.0.1 unless told otherwise, and warns as the
course's Step 9 does when told otherwise. Ctrl-C (or SIGTERM) stops it
cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from amilab.sim.config import DEFAULT_MANAGER_CONF, ConfigError, parse_manager_conf
from amilab.sim.server import SimulatedAsterisk
from amilab.sim.session import AMI_VERSION

#: Where the simulator listens when neither --bind nor the file's bindaddr says.
DEFAULT_BIND = "127.0.0.1"


def add_serve_command(commands: Any) -> None:
    """Register ``serve`` on the ``amilab`` command's subparsers."""
    serve = commands.add_parser(
        "serve",
        help="run a simulated Asterisk 22 speaking AMI",
        description="Run a simulated Asterisk 22 speaking AMI on a TCP port (try it with nc).",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="manager.conf to use (default: the course's admin and monitor users)",
    )
    serve.add_argument(
        "--bind",
        metavar="ADDR",
        help=f"address to listen on (default: the file's bindaddr, else {DEFAULT_BIND})",
    )
    serve.add_argument(
        "--port",
        metavar="N",
        type=_port,
        help="TCP port (default: the file's port, else 5038; 0 picks a free one)",
    )
    serve.add_argument(
        "--traffic",
        metavar="RATE",
        type=_rate,
        help="simulate phone traffic: RATE new calls per second (e.g. 0.2)",
    )
    serve.set_defaults(run=serve_command)


def _port(text: str) -> int:
    if not text.isdecimal() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535)")
    return int(text)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of calls per second")
    return rate


def _fail(message: str, status: int) -> int:
    print(f"amilab serve: {message}", file=sys.stderr)
    return status


def serve_command(args: argparse.Namespace) -> int:
    """Run until Ctrl-C or SIGTERM; returns the exit status."""
    with _stop_signals() as stop:
        return _serve(args, stop)


def _serve(args: argparse.Namespace, stop: threading.Event) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        text = (
            DEFAULT_MANAGER_CONF if args.config is None else args.config.read_text(encoding="utf-8")
        )
        config = parse_manager_conf(text)
    except OSError as exc:
        return _fail(f"cannot read {args.config}: {exc.strerror or exc}", 2)
    except ConfigError as exc:
        return _fail(f"{args.config}: {exc}", 2)
    bind = args.bind or config.bindaddr or DEFAULT_BIND
    port = config.port if args.port is None else args.port
    if args.config is None:
        print("No --config given: using admin / monitor (the course's users, see Step 2).")
    warning = _exposure_warning(bind)
    if warning:
        print(warning, file=sys.stderr)
    try:
        sim = SimulatedAsterisk(args.config, host=bind, port=port)
    except ConfigError as exc:
        return _fail(f"{args.config or 'manager.conf'}: {exc}", 2)
    except OSError as exc:
        return _fail(
            f"cannot listen on {bind}:{port}: {exc.strerror or exc} "
            "(is another Asterisk or amilab serve using it? try --port)",
            1,
        )
    with sim:
        if args.traffic:
            sim.pbx.start_traffic(args.traffic)
            print(f"Simulated traffic: about {args.traffic:g} new calls per second.")
        print(
            f"Simulated Asterisk 22 (AMI {AMI_VERSION}) listening on {_show(sim.host)}:{sim.port}"
        )
        print(f"Try it:  nc {_nc_host(sim.host)} {sim.port}")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    print("Stopped.", flush=True)
    return 0


def _exposure_warning(bind: str) -> str | None:
    """Step 9 of the course: AMI belongs on localhost; never 0.0.0.0 in production."""
    try:
        address = ipaddress.ip_address(bind)
    except ValueError:
        return None  # SimulatedAsterisk reports the bad address
    if address.is_loopback:
        return None
    if address.is_unspecified:
        return (
            f"WARNING: listening on {bind}, i.e. on every network interface. AMI gives full "
            "control of the PBX and sends secrets in plain text; the course's Step 9 says: bind "
            "to 127.0.0.1, or to one internal IP if you must allow remote access, never 0.0.0.0 "
            "in production. Keep deny/permit ACLs on every user."
        )
    return (
        f"WARNING: listening on {bind}, reachable from the network. AMI sends secrets in plain "
        "text: keep deny/permit ACLs on every user and a firewall in front (course Steps 9-10)."
    )


def _show(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _nc_host(host: str) -> str:
    if host == "0.0.0.0":
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT (Ctrl-C) or SIGTERM while the block runs. Signal
    handlers only exist in the main thread; elsewhere the event is never set."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
