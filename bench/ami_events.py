"""A deterministic stream of Asterisk 22 call events, as a server writes them.

Each simulated call replays the event sequence that a real Asterisk 22.10.1
sent for one PJSIP call (tests/data/transcripts/demo2_call_1001_to_1002.txt):
the same event names, header names, header order and kinds of values, with
fresh channel names, unique ids, bridge ids and timings per call. Only events
with 16 to 31 headers are kept (the channel-snapshot events), so the short
DeviceStateChange/BridgeCreate/BridgeDestroy events of the real run are left
out. Some calls are not answered (DialStatus NOANSWER, cause 19) and some
carry DTMF, so the mix is not one fixed pattern.
"""

from __future__ import annotations

import random
import uuid

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CHUNK_SIZE = 4096

# The 14 channel-snapshot fields, in Asterisk 22's order (main/manager_channels.c).
_SNAPSHOT = (
    "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
    "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context",
    "Exten", "Priority", "Uniqueid", "Linkedid",
)
_STATE_CODES = {"Down": "0", "Ring": "4", "Ringing": "5", "Up": "6"}
_QOS_VARIABLES = (
    ("RTPAUDIOQOS", "ssrc={ssrc};themssrc={themssrc};lp=0;rxjitter=0.000000;rxcount={rx};"
     "txjitter=0.000000;txcount={tx};rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000"),
    ("RTPAUDIOQOSJITTER", "minrxjitter=000.000000;maxrxjitter=000.000000;avgrxjitter=000.000000;"
     "stdevrxjitter=000.000000;mintxjitter=000.000000;maxtxjitter=000.000000;"
     "avgtxjitter=000.000000;stdevtxjitter=000.000000;"),
    ("RTPAUDIOQOSLOSS", "  minrxlost=000.000000;  maxrxlost=000.000000;  avgrxlost=000.000000;"
     "  stdevrxlost=000.000000;  mintxlost=000.000000;  maxtxlost=000.000000;"
     "  avgtxlost=000.000000;  stdevtxlost=000.000000;"),
    ("RTPAUDIOQOSRTT", "     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;"
     "     stdevrtt=000.000000;"),
    ("RTPAUDIOQOSMES", "   minrxmes=000.000000;   maxrxmes=000.000000;   avgrxmes=000.000000;"
     "   stdevrxmes=000.000000;   mintxmes=000.000000;   maxtxmes=000.000000;"
     "   avgtxmes=000.000000;   stdevtxmes=000.000000;"),
)


class _Channel:
    """The mutable snapshot of one channel, rendered into event headers."""

    def __init__(self, name, number, caller_name, connected, exten, uniqueid, linkedid, state):
        self.fields = {
            "Channel": name, "CallerIDNum": number, "CallerIDName": caller_name,
            "ConnectedLineNum": connected[0], "ConnectedLineName": connected[1],
            "Language": "en", "AccountCode": "", "Context": "internal", "Exten": exten,
            "Priority": "1", "Uniqueid": uniqueid, "Linkedid": linkedid,
        }
        self.state(state)

    def state(self, desc: str) -> None:
        self.fields["ChannelState"] = _STATE_CODES[desc]
        self.fields["ChannelStateDesc"] = desc

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        return [(prefix + name, self.fields[name]) for name in _SNAPSHOT]


def _event(name: str, privilege: str, *blocks: list[tuple[str, str]]) -> bytes:
    lines = [f"Event: {name}\r\nPrivilege: {privilege}\r\n"]
    for block in blocks:
        lines.extend(f"{key}: {value}\r\n" for key, value in block)
    lines.append("\r\n")
    return "".join(lines).encode()


def _call(rng: random.Random, serial: int, epoch: int) -> list[bytes]:
    """The events of one call from one extension to another, in Asterisk's order."""
    a, b = rng.sample(range(1001, 1100), 2)
    caller_uid, callee_uid = f"{epoch}.{2 * serial}", f"{epoch}.{2 * serial + 1}"
    caller = _Channel(f"PJSIP/{a}-{2 * serial:08x}", str(a), str(a), ("<unknown>", "<unknown>"),
                      str(b), caller_uid, caller_uid, "Ring")
    callee = _Channel(f"PJSIP/{b}-{2 * serial + 1:08x}", str(b), "<unknown>", (str(a), str(a)),
                      "s", callee_uid, caller_uid, "Down")
    answered = rng.random() < 0.8
    out = []

    def varset(chan: _Channel, variable: str, value: str) -> None:
        out.append(_event("VarSet", "dialplan,all", chan.snapshot(),
                          [("Variable", variable), ("Value", value)]))

    def dial(event: str, status: list[tuple[str, str]]) -> None:
        out.append(_event(event, "call,all", caller.snapshot(), callee.snapshot("Dest"), status))

    out.append(_event("Newchannel", "call,all", caller.snapshot()))
    varset(caller, "SIPDOMAIN", "127.0.0.1")
    out.append(_event("Newexten", "dialplan,all", caller.snapshot(), [
        ("Extension", str(b)), ("Application", "Dial"), ("AppData", f"PJSIP/{b},20")]))
    for variable in ("DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME",
                     "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME",
                     "RINGTIME_MS", "PROGRESSTIME", "PROGRESSTIME_MS"):
        varset(caller, variable, "")
    out.append(_event("Newchannel", "call,all", callee.snapshot()))
    varset(callee, "DIALEDPEERNUMBER", str(b))
    callee.fields["Exten"] = str(b)
    out.append(_event("Newexten", "dialplan,all", callee.snapshot(), [
        ("Extension", str(b)), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")]))
    out.append(_event("NewCallerid", "call,all", callee.snapshot(),
                      [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]))
    out.append(_event("NewConnectedLine", "call,all", callee.snapshot()))
    dial("DialBegin", [("DialString", str(b))])
    caller.fields["ConnectedLineNum"], caller.fields["ConnectedLineName"] = str(b), "<unknown>"
    out.append(_event("NewConnectedLine", "call,all", caller.snapshot()))
    callee.state("Ringing")
    out.append(_event("Newstate", "call,all", callee.snapshot()))
    ring_ms = rng.randrange(20, 20000)
    varset(caller, "RINGTIME", str(ring_ms // 1000))
    varset(caller, "RINGTIME_MS", str(ring_ms))
    dial("DialState", [("DialStatus", "RINGING")])
    if not answered:
        dial("DialEnd", [("DialStatus", "NOANSWER")])
        callee.fields["Exten"] = ""
        out.append(_event("Hangup", "call,all", callee.snapshot(),
                          [("Cause", "19"), ("Cause-txt", "No user responding")]))
        varset(caller, "DIALSTATUS", "NOANSWER")
        out.append(_event("Hangup", "call,all", caller.snapshot(),
                          [("Cause", "19"), ("Cause-txt", "No user responding")]))
        return out

    callee.state("Up")
    out.append(_event("Newstate", "call,all", callee.snapshot()))
    varset(caller, "DIALSTATUS", "ANSWER")
    varset(caller, "DIALEDPEERNAME", callee.fields["Channel"])
    varset(caller, "DIALEDPEERNUMBER", str(b))
    dial("DialEnd", [("DialStatus", "ANSWER")])
    caller.state("Up")
    out.append(_event("Newstate", "call,all", caller.snapshot()))
    callee.fields["Exten"] = ""
    out.append(_event("Newexten", "dialplan,all", callee.snapshot(), [
        ("Extension", ""), ("Application", "AppDial"), ("AppData", "(Outgoing Line)")]))
    bridge = [
        ("BridgeUniqueid", str(uuid.UUID(int=rng.getrandbits(128), version=4))),
        ("BridgeType", "basic"), ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"), ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", "1"), ("BridgeVideoSourceMode", "none"),
    ]
    out.append(_event("BridgeEnter", "call,all", bridge, callee.snapshot()))
    bridge[5] = ("BridgeNumChannels", "2")
    out.append(_event("BridgeEnter", "call,all", bridge, caller.snapshot()))
    call_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    varset(caller, "BRIDGEPEER", callee.fields["Channel"])
    varset(caller, "BRIDGEPVTCALLID", call_id)
    varset(callee, "BRIDGEPEER", caller.fields["Channel"])
    varset(callee, "BRIDGEPVTCALLID", f"{rng.getrandbits(64):016x}@127.0.0.1")
    for _ in range(rng.randrange(0, 3)):  # DTMF digits pressed during the call
        digit = rng.choice("0123456789*#")
        for sender, receiver in ((caller, "Received"), (callee, "Sent")):
            out.append(_event("DTMFBegin", "dtmf,all", sender.snapshot(),
                              [("Digit", digit), ("Direction", receiver)]))
        for sender, receiver in ((caller, "Received"), (callee, "Sent")):
            out.append(_event("DTMFEnd", "dtmf,all", sender.snapshot(), [
                ("Digit", digit), ("DurationMs", str(rng.randrange(40, 400))),
                ("Direction", receiver)]))
    hanger, other = (callee, caller) if rng.random() < 0.5 else (caller, callee)
    ssrc, themssrc = rng.getrandbits(32), rng.getrandbits(32)
    packets = rng.randrange(1, 5000)
    for chan in (callee, caller):
        for variable, template in _QOS_VARIABLES:
            value = template.format(ssrc=ssrc, themssrc=themssrc, rx=packets, tx=packets + 1)
            varset(chan, variable, value)
            if chan is caller:
                varset(chan, variable + "BRIDGED", value)
    out.append(_event("HangupRequest", "call,all", hanger.snapshot(), [("Cause", "16")]))
    for chan in (callee, caller):
        varset(chan, "BRIDGEPEER", "")
        varset(chan, "BRIDGEPVTCALLID", "")
    bridge[1:] = bridge[1:2] + [("BridgeTechnology", "native_rtp")] + bridge[3:]
    bridge[5] = ("BridgeNumChannels", "1")
    out.append(_event("BridgeLeave", "call,all", bridge, hanger.snapshot()))
    out.append(_event("Hangup", "call,all", hanger.snapshot(),
                      [("Cause", "16"), ("Cause-txt", "Normal Clearing")]))
    bridge[5] = ("BridgeNumChannels", "0")
    out.append(_event("BridgeLeave", "call,all", bridge, other.snapshot()))
    talk_ms = rng.randrange(500, 600_000)
    for variable, value in (("ANSWEREDTIME", str(talk_ms // 1000)),
                            ("ANSWEREDTIME_MS", str(talk_ms)),
                            ("DIALEDTIME", str((talk_ms + ring_ms) // 1000)),
                            ("DIALEDTIME_MS", str(talk_ms + ring_ms)),
                            ("DIALSTATUS", "ANSWER")):
        varset(caller, variable, value)
    out.append(_event("SoftHangupRequest", "call,all", other.snapshot(), [("Cause", "16")]))
    out.append(_event("Hangup", "call,all", other.snapshot(),
                      [("Cause", "16"), ("Cause-txt", "Normal Clearing")]))
    return out


def event_stream(min_events: int, seed: int = 22) -> tuple[list[bytes], int]:
    """The banner and at least ``min_events`` events cut into 4 KiB chunks
    (a recv() size), and the exact number of events."""
    rng = random.Random(seed)
    epoch = 1795750432
    events: list[bytes] = []
    serial = 0
    while len(events) < min_events:
        events.extend(_call(rng, serial, epoch + serial // 10))
        serial += 1
    stream = BANNER + b"".join(events)
    chunks = [stream[i:i + CHUNK_SIZE] for i in range(0, len(stream), CHUNK_SIZE)]
    return chunks, len(events)
