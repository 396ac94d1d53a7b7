"""Clients we did not write, and our own, against the simulated Asterisk.

panoramisk (an asyncio AMI library used with real Asterisk servers) logs in,
runs actions, gets events through its callbacks and logs off, exactly as it
would against Asterisk 22; then :class:`~amilab.client.AMIClient` does the same
with an MD5 login. The PBX runs on a manual clock: calls move only when a test
advances it, and every wait is bounded.
"""

from __future__ import annotations

import asyncio

import panoramisk
import pytest

from amilab.client import AMIClient
from amilab.sim.clicommands import VERSION_LINE
from amilab.sim.clock import ManualClock
from amilab.sim.pbx import PBX
from amilab.sim.server import SimulatedAsterisk

WAIT = 5.0  # seconds: the bound on every wait (a hang fails, it never blocks the run)
ADMIN = {"username": "admin", "secret": "mysecretpassword"}


@pytest.fixture
def pbx():
    pbx = PBX(clock=ManualClock(), endpoints=("1001", "1002"))
    yield pbx
    pbx.close()


@pytest.fixture
def sim(pbx):
    with SimulatedAsterisk(pbx=pbx, failed_login_delay=0.05) as server:
        yield server


def connected_users(sim: SimulatedAsterisk) -> int:
    return int(sim.manager.run_cli("manager show connected").splitlines()[-1].split()[0])


# -- panoramisk ---------------------------------------------------------------------------------


class Panoramisk:
    """A panoramisk Manager on the running loop, with what its callbacks saw."""

    def __init__(self, sim: SimulatedAsterisk, **credentials: str) -> None:
        loop = asyncio.get_running_loop()
        self.logged_in = loop.create_future()
        self.disconnected = loop.create_future()
        self.events: asyncio.Queue = asyncio.Queue()
        self.manager = panoramisk.Manager(
            loop=loop,
            host=sim.host,
            port=sim.port,
            ping_delay=3600,  # no keepalive Ping in the middle of a test
            reconnect_timeout=3600,  # and no reconnection after the end
            on_login=lambda manager: self.logged_in.set_result(True),
            on_disconnect=lambda manager, exc: self.disconnected.set_result(exc),
            **credentials,
        )
        self.manager.register_event("*", lambda manager, event: self.events.put_nowait(event))

    async def connect(self) -> None:
        await asyncio.wait_for(self.manager.connect(), WAIT)

    async def send(self, action: dict[str, str]):
        return await asyncio.wait_for(self.manager.send_action(dict(action)), WAIT)

    async def next_event(self, name: str):
        """The next event called ``name``; the ones before it are skipped."""
        while True:
            event = await asyncio.wait_for(self.events.get(), WAIT)
            if event.event == name:
                return event


def run(coroutine) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


def test_panoramisk_logs_in_runs_actions_gets_events_and_logs_off(sim, pbx):
    calls = []

    async def scenario() -> None:
        client = Panoramisk(sim, **ADMIN)
        await client.connect()
        await asyncio.wait_for(client.logged_in, WAIT)
        assert client.manager.protocol.version == "11.0.0"
        booted = await client.next_event("FullyBooted")
        assert booted.privilege == "system,all" and booted.status == "Fully Booted"

        pong = await client.send({"Action": "Ping"})
        assert pong.success and pong.ping == "Pong"
        status = await client.send({"Action": "CoreStatus"})
        assert status.response == "Success" and status.corecurrentcalls == "0"
        version = await client.send({"Action": "Command", "Command": "core show version"})
        assert version.response == "Success" and version.output == VERSION_LINE

        pbx.register("1001")  # a softphone registers: panoramisk's callbacks fire
        contact = await client.next_event("ContactStatus")
        assert (contact.aor, contact.contactstatus) == ("1001", "NonQualified")
        pbx.register("1002")
        call = pbx.call("1001", "1002", answer_after=None, talk_for=None)
        calls.append(call)
        pbx.clock.advance(0.1)  # 1002 rings
        newchannel = await client.next_event("Newchannel")
        assert newchannel.channel.startswith("PJSIP/1001-") and newchannel.exten == "1002"
        listing = await client.send({"Action": "CoreShowChannels"})
        assert [m.event or m.response for m in listing] == [
            "Success", "CoreShowChannel", "CoreShowChannel", "CoreShowChannelsComplete"
        ]
        assert listing[-1].listitems == "2"
        call.answer()
        call.hangup("callee")
        hangup = await client.next_event("Hangup")
        assert hangup["cause-txt"] == "Normal Clearing"

        goodbye = await client.send({"Action": "Logoff"})
        assert goodbye.response == "Goodbye" and goodbye.message == "Thanks for all the fish."
        await asyncio.wait_for(client.disconnected, WAIT)  # the server closed the connection
        client.manager.close()

    run(scenario())
    assert connected_users(sim) == 0
    assert calls[0].done


def test_panoramisk_sees_a_failed_login_as_asterisk_reports_it(sim):
    async def scenario() -> None:
        client = Panoramisk(sim, username="admin", secret="wrong")
        await client.connect()
        reply = await asyncio.wait_for(client.manager.authenticated_future, WAIT)
        assert not reply.success and reply.message == "Authentication failed"
        await asyncio.wait_for(client.disconnected, WAIT)
        assert not client.manager.authenticated
        client.manager.close()

    run(scenario())


def test_panoramisk_events_follow_the_users_read_classes(sim, pbx):
    """monitor reads system,call,reporting: registrations and channels, never
    the dialplan's Newexten/VarSet."""

    async def scenario() -> None:
        client = Panoramisk(sim, username="monitor", secret="monitor-password")
        await client.connect()
        await asyncio.wait_for(client.logged_in, WAIT)
        pbx.register("1001")
        pbx.echo_test("1001", duration=1.0)
        pbx.clock.advance(2)
        seen = []
        while not seen or seen[-1].event != "Hangup":
            seen.append(await asyncio.wait_for(client.events.get(), WAIT))
        assert {e.privilege for e in seen} == {"system,all", "call,all"}
        assert "Newexten" not in {e.event for e in seen}
        denied = await client.send({"Action": "CoreStatus"})
        assert denied.response == "Error" and denied.message == "Permission denied"
        client.manager.close()

    run(scenario())


# -- AMIClient ----------------------------------------------------------------------------------


def test_amiclient_md5_login_actions_events_and_logoff(sim, pbx):
    with AMIClient(sim.host, sim.port, timeout=WAIT) as ami:
        ami.login("admin", "mysecretpassword", auth="md5")
        assert ami.next_event(timeout=WAIT).name == "FullyBooted"
        assert ami.ping()["Ping"] == "Pong"
        assert ami.send_action("CoreStatus")["CoreCurrentCalls"] == "0"
        assert ami.command("core show version") == VERSION_LINE
        contacts = []
        ami.on_event("ContactStatus", contacts.append)
        pbx.register("1001")
        pbx.register("1002")
        call = pbx.call("1001", "1002", answer_after=None, talk_for=None)
        pbx.clock.advance(0.1)
        listing = ami.send_list_action("CoreShowChannels")
        phones = sorted(e["Channel"].split("-")[0] for e in listing.events)
        assert phones == ["PJSIP/1001", "PJSIP/1002"]
        assert listing.complete["ListItems"] == "2"
        call.answer()
        call.hangup("callee")
        names = []
        while "Hangup" not in names or names.count("Hangup") < 2:
            names.append(ami.next_event(timeout=WAIT).name)
        assert names[0] == "PeerStatus" and "DialBegin" in names and "BridgeEnter" in names
        assert [e["AOR"] for e in contacts] == ["1001", "1002"]
        sent = "".join(entry.text for entry in ami.transcript if entry.direction == "send")
        assert "Key: ********" in sent and "Secret" not in sent
    assert ami.closed
    assert connected_users(sim) == 0
