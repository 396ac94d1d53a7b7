"""``amilab serve``: starts, says where it listens, works with nc, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from amilab.__main__ import main
from amilab.sim.cli import _exposure_warning

ROOT = Path(__file__).resolve().parent.parent


def start_serve(*args: str) -> tuple[subprocess.Popen[str], int]:
    """Start ``python -m amilab serve`` and wait for the line saying where it listens
    (the lines read so far are kept in ``process.seen``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "amilab", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if found:
            process.seen = "".join(lines)  # type: ignore[attr-defined]
            return process, int(found[1])
    process.kill()
    raise AssertionError(f"serve never said where it listens: {lines} {process.stderr.read()}")


def stop(process: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[int, str, str]:
    """Send ``sig``; return the exit status, all of stdout and stderr."""
    process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    with process:  # closes the pipes
        out = process.seen + process.stdout.read()  # type: ignore[attr-defined]
        return process.returncode, out, process.stderr.read()


def test_serve_listens_on_loopback_works_with_nc_and_stops_on_ctrl_c():
    process, port = start_serve("--port", "0")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as nc:
            assert nc.recv(100) == b"Asterisk Call Manager/11.0.0\r\n"
            nc.sendall(b"Action: Login\nUsername: admin\nSecret: mysecretpassword\n\n")
            reply = b""
            while b"Fully Booted" not in reply:
                reply += nc.recv(4096)
            assert reply.startswith(
                b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
            )
    finally:
        status, out, err = stop(process)
    assert status == 0
    assert "Traceback" not in err
    assert f"nc 127.0.0.1 {port}" in out
    assert "admin / monitor (the course's users, see Step 2)" in out
    assert "mysecretpassword" not in out + err
    assert out.rstrip().endswith("Stopped.")


def test_serve_stops_cleanly_on_sigterm_and_reads_the_config_file(tmp_path):
    conf = tmp_path / "manager.conf"
    conf.write_text(
        "[general]\nenabled = yes\nbindaddr = 127.0.0.1\n[student]\nsecret = s\nread = call\n"
    )
    process, port = start_serve("--config", str(conf), "--port", "0")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as nc:
            nc.recv(100)
            nc.sendall(b"Action: Login\nUsername: student\nSecret: s\n\n")
            assert b"Authentication accepted" in nc.recv(4096)
    finally:
        status, out, err = stop(process, signal.SIGTERM)
    assert status == 0 and "Traceback" not in err
    assert "course's users" not in out


def test_serve_with_traffic_makes_calls_happen():
    process, port = start_serve("--port", "0", "--traffic", "20")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as nc:
            nc.recv(100)
            nc.sendall(b"Action: Login\nUsername: admin\nSecret: mysecretpassword\n\n")
            seen = b""
            while b"Event: Newchannel\r\n" not in seen:
                data = nc.recv(65536)
                assert data
                seen += data
    finally:
        status, out, err = stop(process)
    assert status == 0 and "Traceback" not in err
    assert "20 new calls per second" in out


def test_serve_refuses_a_missing_or_broken_config(tmp_path, capsys):
    assert main(["serve", "--config", str(tmp_path / "nope.conf")]) == 2
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "manager.conf"
    broken.write_text("[general]\nenabled = yes\nport = 80\n")
    assert main(["serve", "--config", str(broken)]) == 2
    assert "line 3" in capsys.readouterr().err
    disabled = tmp_path / "disabled.conf"
    disabled.write_text("[general]\n[u]\nsecret = s\n")
    assert main(["serve", "--config", str(disabled), "--port", "0"]) == 2
    assert "enabled = yes" in capsys.readouterr().err


def test_serve_reports_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = subprocess.run(
            [sys.executable, "-m", "amilab", "serve", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert process.returncode == 1
    assert (
        f"cannot listen on 127.0.0.1:{port}" in process.stderr and "Traceback" not in process.stderr
    )


@pytest.mark.parametrize("args", [["--port", "70000"], ["--traffic", "-1"], ["--traffic", "lots"]])
def test_serve_rejects_bad_flags(args, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", *args])
    assert exited.value.code == 2
    assert "serve: error" in capsys.readouterr().err


def test_binding_every_interface_warns_like_step_9():
    warning = _exposure_warning("0.0.0.0")
    assert "never 0.0.0.0 in production" in warning and "127.0.0.1" in warning
    assert "ACL" in _exposure_warning("10.0.1.5")
    assert _exposure_warning("127.0.0.1") is None and _exposure_warning("::1") is None


def test_python_dash_m_amilab_shows_help():
    process = subprocess.run(
        [sys.executable, "-m", "amilab", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert process.returncode == 0
    for flag in ("--config FILE", "--bind ADDR", "--port N", "--traffic RATE"):
        assert flag in process.stdout
