"""``amilab.connect()``: the simulator by default, a real Asterisk when AMI_HOST says so."""

from __future__ import annotations

import threading

import pytest

import amilab
from amilab.connect import LabClient
from amilab.errors import AMIError, AuthenticationError
from amilab.sim.server import SimulatedAsterisk


@pytest.fixture(autouse=True)
def no_ami_environment(monkeypatch):
    for name in ("AMI_HOST", "AMI_PORT", "AMI_USERNAME", "AMI_SECRET"):
        monkeypatch.delenv(name, raising=False)


def sim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("amilab-sim")]


def test_without_ami_host_it_logs_in_to_an_in_kernel_simulator_as_admin(capsys):
    client = amilab.connect()
    try:
        assert isinstance(client, LabClient)
        assert client.server_kind == "simulated" and client.simulator is not None
        assert client.username == "admin"
        assert client.ping()["Ping"] == "Pong"
        client.simulator.pbx.register("1001")  # the PBX's clock thread starts: it must stop too
        line = capsys.readouterr().out
        assert line.count("\n") == 1 and "simulated Asterisk 22" in line and "as admin" in line
        assert "mysecretpassword" not in line
        assert "simulated" in repr(client)
    finally:
        client.close()
    assert client.simulator.closed
    assert not sim_threads()


def test_logoff_also_stops_the_simulator():
    client = amilab.connect(username="monitor")  # the course's monitor user and secret
    assert client.username == "monitor"
    client.logoff()
    assert not sim_threads()


def test_a_failed_login_stops_the_simulator_too():
    with pytest.raises(AuthenticationError):
        amilab.connect(secret="wrong")
    assert not sim_threads()


def test_with_ami_host_it_connects_to_that_server(monkeypatch, capsys):
    with SimulatedAsterisk() as real:  # stands in for a real Asterisk
        monkeypatch.setenv("AMI_HOST", real.host)
        monkeypatch.setenv("AMI_PORT", str(real.port))
        monkeypatch.setenv("AMI_USERNAME", "monitor")
        monkeypatch.setenv("AMI_SECRET", "monitor-password")
        with amilab.connect() as client:
            assert client.server_kind == "asterisk" and client.simulator is None
            assert client.username == "monitor"
            out = capsys.readouterr().out
            assert f"connected to Asterisk at {real.host}:{real.port} as monitor" in out
            assert "monitor-password" not in out


def test_ami_host_without_credentials_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("AMI_HOST", "192.0.2.1")
    with pytest.raises(AMIError, match="AMI_USERNAME is not set"):
        amilab.connect()
    monkeypatch.setenv("AMI_USERNAME", "admin")
    with pytest.raises(AMIError, match="AMI_SECRET is not set"):
        amilab.connect()
    monkeypatch.setenv("AMI_SECRET", "x")
    monkeypatch.setenv("AMI_PORT", "fifty")
    with pytest.raises(AMIError, match="AMI_PORT"):
        amilab.connect()
