"""The simulated telephone system behind the simulated Asterisk.

What it models, and where the facts come from: endpoints 1001-1003 with their
AORs, auths and registered contacts; channels named like Asterisk 22 names them
(``PJSIP/1001-00000008``, ``Local/9999@internal-00000002;1``) with Uniqueids
``<epoch>.<counter>``; the lab's dialplan ``internal``; bridges; the queue
``support``; global variables; device states. Every event sequence follows the
real Asterisk 22.10.1 recordings in ``tests/data/transcripts`` (event names,
field order, the VarSets, who gets ``HangupRequest`` and who
``SoftHangupRequest``, the causes), not the simplified course text. Where no
recording exists (busy, no answer, the caller hanging up, originating a PJSIP
channel) the sequence is inferred from those recordings and Asterisk's source;
the docstrings say so.

How it runs: all state lives behind :attr:`PBX.lock` (an ``RLock``). Timed steps
(ringing, answering, hanging up) are scheduled on the :class:`~amilab.sim.clock.Clock`;
with a :class:`~amilab.sim.clock.ManualClock` nothing happens until the test
advances time. Events are delivered to listeners **inside the lock**, in the
order they happen, from whatever thread made them happen (the caller of a demo
method, or the clock's thread). Listeners must be quick and must not call back
into the PBX to change state (reading is fine); the AMI server's listener only
enqueues.

Event bodies are built as tuples from per-channel cached snapshots, so an event
costs a few microseconds: the traffic generator can produce tens of thousands
of events per second of simulated time.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from amilab.sim import classes
from amilab.sim.clock import Clock, RealClock, Timer

log = logging.getLogger(__name__)

Body = tuple[tuple[str, str], ...]

_CALL = classes.CALL
_DIALPLAN = classes.DIALPLAN
_DTMF = classes.DTMF
_SYSTEM = classes.SYSTEM
_AGENT = classes.AGENT


@dataclass(frozen=True, slots=True)
class PbxEvent:
    """One AMI event: the session adds ``Event:``, ``Privilege:`` and ``Timestamp:``."""

    name: str
    privilege: int  #: class bits, e.g. classes.CALL (written "call,all")
    body: Body  #: the headers after Event/Privilege[/Timestamp], in wire order


#: Channel states and their names: Asterisk 22 include/asterisk/channelstate.h,
#: main/channel.c ast_state2str.
CHANNEL_STATES: dict[int, str] = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
    8: "Dialing Offhook",
    9: "Pre-ring",
}

#: Q.850 hangup causes and the texts Asterisk writes in ``Cause-txt``:
#: Asterisk 22 include/asterisk/causes.h and main/channel.c ``causes[]``
#: (0, not in the table, is written "Unknown").
HANGUP_CAUSES: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    5: "Misdialed trunk prefix",
    6: "Channel unacceptable",
    7: "Call awarded and being delivered in an established channel",
    8: "Pre-empted",
    14: "Number ported elsewhere",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    30: "Response to STATus ENQuiry",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested channel not available",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    57: "Bearer capability not authorized",
    58: "Bearer capability not available",
    65: "Bearer capability not implemented",
    66: "Channel not implemented",
    69: "Facility not implemented",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message unspecified",
    96: "Mandatory information element is missing",
    97: "Message type nonexist.",
    98: "Wrong message",
    99: "Info. element nonexist or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recover on timer expiry",
    103: "Mandatory IE length error",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}

#: Device state tokens (DeviceStateChange ``State:``) and the text PJSIPShowEndpoints
#: writes (``DeviceState:``): Asterisk 22 main/devicestate.c. Their numbers, in
#: this order (0-8), are QueueMember's ``Status:``.
DEVICE_STATES: dict[str, str] = {
    "UNKNOWN": "Unknown",
    "NOT_INUSE": "Not in use",
    "INUSE": "In use",
    "BUSY": "Busy",
    "INVALID": "Invalid",
    "UNAVAILABLE": "Unavailable",
    "RINGING": "Ringing",
    "RINGINUSE": "Ring+Inuse",
    "ONHOLD": "On Hold",
}
DEVICE_STATE_NUMBERS: dict[str, int] = {token: n for n, token in enumerate(DEVICE_STATES)}

#: The lab's SIP side, as in the recordings: Asterisk on 127.0.0.1:5060, the
#: softphones on 127.0.0.1 with their own ports.
SIP_DOMAIN = "127.0.0.1"
USER_AGENT = "amilab-sip-probe"
REGISTER_EXPIRES = 300  #: the softphones' ``Expires:``
QUALIFY_FREQUENCY = 30  #: AOR qualify_frequency in the qualify recording
QUALIFY_TIMEOUT = 3.0  #: res_pjsip default
DIAL_TIMEOUT = 20  #: Dial(PJSIP/100x,20) in the lab dialplan
#: 180 Ringing came 51 ms after the INVITE in demo2.
RING_DELAY = 0.05
#: Answer() on a Local channel waits 500 ms for media before the next priority
#: (main/channel.c __ast_answer); the g/o/p recordings show 501 ms in all.
#: A SIP phone sends media at once.
LOCAL_ANSWER_DELAY = 0.501
_QOS_KINDS = ("min", "max", "avg", "stdev")


def _qos_block(pad: str, stats: tuple[str, ...], numbers: tuple[tuple[float, ...], ...]) -> str:
    """One RTPAUDIOQOS<X> value as res_rtp_asterisk.c writes it (padding and
    ``%010.6f`` numbers as recorded), e.g. ``minrxjitter=000.000000;…``."""
    return "".join(
        f"{pad}{kind}{stat}={value:010.6f};"
        for stat, values in zip(stats, numbers)
        for kind, value in zip(_QOS_KINDS, values)
    )


#: Dial()'s variables, cleared in this order when Dial starts (demo2).
_DIAL_VARS = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)
_CID_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
_DTMF_DIGITS = frozenset("0123456789ABCD*#")
_SNAPSHOT_NAMES = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)
_C_ESCAPES = str.maketrans(
    {
        '"': '\\"',
        "'": "\\'",
        "\\": "\\\\",
        "?": "\\?",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\v": "\\v",
    }
)


def c_escape(text: str) -> str:
    """Asterisk's ast_escape_c (main/utils.c): what CallerIDName, ConnectedLineName
    and VarSet ``Value`` look like on the wire."""
    return text.translate(_C_ESCAPES)


def lab_dialplan(endpoints: Sequence[str]) -> dict[str, dict[str, list[tuple[int, str, str]]]]:
    """The lab's extensions.conf (``dialplan show internal`` in i_command): one
    Dial(PJSIP/<n>,20) + Hangup extension per endpoint, and 1000, 8000, 9999."""
    internal: dict[str, list[tuple[int, str, str]]] = {
        "1000": [(1, "NoOp", "short call"), (2, "Answer", ""), (3, "Wait", "1"), (4, "Hangup", "")],
    }
    for name in sorted(endpoints):
        internal[name] = [(1, "Dial", f"PJSIP/{name},{DIAL_TIMEOUT}"), (2, "Hangup", "")]
    internal["8000"] = [(1, "Answer", ""), (2, "Wait", "30"), (3, "Hangup", "")]
    internal["9999"] = [
        (1, "NoOp", "echo test"),
        (2, "Answer", ""),
        (3, "Echo", ""),
        (4, "Hangup", ""),
    ]
    return {"internal": dict(sorted(internal.items()))}


# -- state objects ------------------------------------------------------------------------------

_SNAPSHOT_FIELDS = frozenset(
    {
        "name",
        "state",
        "caller_num",
        "caller_name",
        "connected_num",
        "connected_name",
        "language",
        "account_code",
        "context",
        "exten",
        "priority",
        "uniqueid",
        "linkedid",
    }
)


@dataclass(eq=False)
class Channel:
    """A live channel. The PBX hands these out under :attr:`PBX.lock`; treat them
    as read-only (change them through PBX methods)."""

    name: str
    state: int
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    language: str = "en"
    account_code: str = ""
    context: str = "internal"
    exten: str = "s"
    priority: int = 1
    uniqueid: str = ""
    linkedid: str = ""
    application: str = ""
    app_data: str = ""
    created: float = 0.0  #: clock.monotonic() at creation (CoreShowChannels Duration)
    bridge_id: str = ""  #: "" if not bridged
    variables: dict[str, str] = field(default_factory=dict)
    device: str = ""  #: "PJSIP/1001" or "Local/9999@internal"
    endpoint: str = ""  #: the PJSIP endpoint, "" for Local channels

    # Internal bookkeeping (not part of the snapshot).
    _cache: dict[str, Body] | None = field(default=None, repr=False)
    _runs_pbx: bool = field(default=False, repr=False)
    _gen: int = field(default=0, repr=False)
    _partner: Channel | None = field(default=None, repr=False)  # the other Local half
    _dial: _Dial | None = field(default=None, repr=False)  # the Dial this channel is part of
    _echo: bool = field(default=False, repr=False)
    _sip_call_id: str = field(default="", repr=False)
    _hangupcause: int = field(default=0, repr=False)
    _alive: bool = field(default=True, repr=False)
    _call: Call | None = field(default=None, repr=False)
    _originate: _Originate | None = field(default=None, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _SNAPSHOT_FIELDS:
            object.__setattr__(self, "_cache", None)

    def snapshot_body(self, prefix: str = "") -> Body:
        """The §5.1 snapshot block as a tuple (cached until a snapshot field changes)."""
        cache = self._cache
        if cache is None:
            cache = {}
            object.__setattr__(self, "_cache", cache)
        body = cache.get(prefix)
        if body is None:
            values = (
                self.name,
                str(self.state),
                CHANNEL_STATES.get(self.state, f"Unknown ({self.state})"),
                self.caller_num or "<unknown>",
                c_escape(self.caller_name) if self.caller_name else "<unknown>",
                self.connected_num or "<unknown>",
                c_escape(self.connected_name) if self.connected_name else "<unknown>",
                self.language,
                self.account_code,
                self.context,
                self.exten,
                str(self.priority),
                self.uniqueid,
                self.linkedid,
            )
            body = tuple(zip([prefix + n for n in _SNAPSHOT_NAMES], values))
            cache[prefix] = body
        return body

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        """The §5.1 block in Asterisk's order (Channel … Linkedid), ``<unknown>``
        for empty caller/connected fields, C-escaped names; ``prefix`` e.g. "Dest"."""
        return list(self.snapshot_body(prefix))


@dataclass
class Contact:
    """A registered contact, with the fields PJSIPShowContacts shows."""

    aor: str
    uri: str
    endpoint: str
    status: str  #: "NonQualified", "Reachable", …
    rtt_usec: int
    user_agent: str
    expiration: int  #: epoch seconds
    via_addr: str
    via_port: int
    call_id: str
    qualify_frequency: int
    qualify_timeout: float
    reg_server: str
    object_name: str  #: "<aor>;@<hash>" as in PJSIPShowContacts


@dataclass
class Endpoint:
    name: str
    aor: str
    auths: str
    outbound_auths: str
    transport: str
    context: str
    contacts: list[Contact] = field(default_factory=list)  #: empty if not registered
    device_state: str = "UNAVAILABLE"  #: token, e.g. "NOT_INUSE", "INUSE", "RINGING"
    active_channels: int = 0
    _ringing: int = field(default=0, repr=False)  # live channels in state Ringing
    _busy: int = field(default=0, repr=False)  # live channels in any other non-Down state


@dataclass
class QueueMember:
    name: str
    location: str
    state_interface: str
    membership: str
    penalty: int
    calls_taken: int
    last_call: int
    last_pause: int
    login_time: int
    in_call: int
    status: int  #: numeric device state (DEVICE_STATE_NUMBERS)
    paused: int
    paused_reason: str
    wrapuptime: int
    ringinuse: int = 1


@dataclass
class QueueEntry:
    position: int
    channel: str
    uniqueid: str
    caller_num: str
    caller_name: str
    connected_num: str
    connected_name: str
    wait: int
    priority: int


@dataclass
class Queue:
    name: str
    max: int
    strategy: str
    calls: int
    holdtime: int
    talktime: int
    completed: int
    abandoned: int
    service_level: int
    service_level_perf: float
    service_level_perf2: float
    weight: int
    members: list[QueueMember] = field(default_factory=list)
    entries: list[QueueEntry] = field(default_factory=list)
    avail_state: str = "UNKNOWN"  #: the Queue:<name>_avail device


@dataclass(eq=False)
class _Bridge:
    uniqueid: str
    technology: str = "simple_bridge"
    channels: list[Channel] = field(default_factory=list)

    def body(self) -> Body:
        return (
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(len(self.channels))),
            ("BridgeVideoSourceMode", "none"),
        )


@dataclass
class _PhoneScript:
    """What the called phone does: ``answer_after`` seconds after the INVITE (None:
    wait for Call.answer()), then hang up after ``talk_for`` (None: never) on
    side ``hangup_by``; ``outcome`` "busy" answers 486 instead."""

    answer_after: float | None = 2.0
    talk_for: float | None = None
    hangup_by: str = "callee"
    outcome: str = "answer"


@dataclass(eq=False)
class _Dial:
    """One Dial() from channel ``a`` to endpoint ``target``."""

    a: Channel
    target: str
    timeout: float
    script: _PhoneScript
    started: float
    b: Channel | None = None
    ringing_at: float | None = None
    answered_at: float | None = None
    bridge: _Bridge | None = None
    status: str = ""
    timers: list[Timer] = field(default_factory=list)


@dataclass(eq=False)
class _Originate:
    """An Originate in progress: ``one`` is the originated channel (``;1`` for Local)."""

    one: Channel | None
    context: str | None
    exten: str | None
    priority: int
    application: str | None
    data: str
    on_done: Callable[[int, Channel | None], None] | None
    timer: Timer | None = None
    finished: bool = False


class Call:
    """A call started by :meth:`PBX.call` or :meth:`PBX.echo_test`.

    ``caller_channel``/``callee_channel`` are channel names (``callee_channel``
    is None until the callee's channel exists, and stays None for the echo test
    or when the callee is unreachable); ``linkedid`` is the Linkedid all its
    channels share; ``dial_status`` is Dial's DIALSTATUS once known (ANSWER,
    BUSY, NOANSWER, CANCEL, CHANUNAVAIL; "" before, and for the echo test);
    ``done`` is True once every channel of the call is gone; ``state`` says
    where it is.
    """

    def __init__(
        self, pbx: PBX, caller: str, callee: str, channel: Channel, script: _PhoneScript
    ) -> None:
        self._pbx = pbx
        self.script = script
        self.caller = caller
        self.callee = callee
        self._a = channel
        self.caller_channel = channel.name
        self.linkedid = channel.linkedid
        self.callee_channel: str | None = None
        self.dial_status = ""

    @property
    def done(self) -> bool:
        with self._pbx.lock:
            dial = self._a._dial
            return not self._a._alive and (dial is None or dial.b is None or not dial.b._alive)

    @property
    def state(self) -> str:
        """ "dialing", "ringing" (the callee's phone rings), "up" (answered, or the
        caller is inside an extension such as the echo test) or "done"."""
        with self._pbx.lock:
            a = self._a
            if self.done:
                return "done"
            dial = a._dial
            if dial is not None and dial.b is not None and dial.b._alive:
                if dial.answered_at is not None:
                    return "up"
                return "ringing" if dial.b.state == 5 else "dialing"
            return "up" if a.state == 6 else "dialing"

    def answer(self) -> None:
        """The callee picks up now. Raises RuntimeError unless the callee's phone is ringing."""
        self._pbx._answer_call(self)

    def hangup(self, by: str = "caller") -> None:
        """``by`` ("caller" or "callee") hangs up: a BYE once answered; before
        that the caller cancels, or the callee declines (603). No effect once done."""
        if by not in ("caller", "callee"):
            raise ValueError("by must be 'caller' or 'callee'")
        self._pbx._hangup_call(self, by)

    def __repr__(self) -> str:
        state = "done" if self.done else "live"
        return (
            f"<Call {self.caller}->{self.callee} {self.caller_channel} {state} {self.dial_status}>"
        )


# -- the PBX ------------------------------------------------------------------------------------


class PBX:
    """The simulated PBX. See the module docstring for threading and event order.

    ``clock``: the PBX's time; by default a :class:`RealClock` that the PBX owns
    (closed by :meth:`close`). ``endpoints``: the PJSIP endpoint names; each gets
    an AOR and an auth of the same name (as in the lab's pjsip.conf) and a
    ``Dial`` extension in ``internal``. No endpoint is registered at start.
    """

    #: Seconds after which a phone answers a call that no demo script drives
    #: (Originate to PJSIP/..., a Dial from the dialplan); None = never answer.
    auto_answer_after: float | None = 2.0

    def __init__(
        self, clock: Clock | None = None, endpoints: Sequence[str] = ("1001", "1002", "1003")
    ) -> None:
        names = [str(e) for e in endpoints]
        if len(set(names)) != len(names) or not all(n and n.isalnum() for n in names):
            raise ValueError(f"endpoint names must be distinct and alphanumeric: {names!r}")
        self._own_clock = clock is None
        self.clock: Clock = clock if clock is not None else RealClock()
        self.lock = threading.RLock()
        self.started_at = self.clock.wall()
        self.reloaded_at = self.started_at
        self.processed_calls = 0
        self.globals: dict[str, str] = {"LABGLOBAL": "hello"}
        self.dialplan = lab_dialplan(names)
        self._endpoints: dict[str, Endpoint] = {
            n: Endpoint(name=n, aor=n, auths=n, outbound_auths="", transport="", context="internal")
            for n in names
        }
        self._channels: dict[str, Channel] = {}
        self._listeners: tuple[Callable[[PbxEvent], None], ...] = ()
        self._name_seq = 0
        self._uid_seq = 0
        self._rng = random.Random()
        self._timers: set[Timer] = set()
        self._closed = False
        self._traffic_token = 0
        self._traffic_rng: random.Random | None = None
        self._traffic_rate = 0.0
        login = int(self.started_at)
        self._queues = [
            Queue(
                name="support",
                max=0,
                strategy="ringall",
                calls=0,
                holdtime=0,
                talktime=0,
                completed=0,
                abandoned=0,
                service_level=0,
                service_level_perf=0.0,
                service_level_perf2=0.0,
                weight=0,
                members=[
                    QueueMember(
                        name="Local/1000@internal",
                        location="Local/1000@internal",
                        state_interface="Local/1000@internal",
                        membership="static",
                        penalty=0,
                        calls_taken=0,
                        last_call=0,
                        last_pause=0,
                        login_time=login,
                        in_call=0,
                        status=DEVICE_STATE_NUMBERS["NOT_INUSE"],
                        paused=0,
                        paused_reason="",
                        wrapuptime=0,
                    )
                ],
            )
        ]

    # -- contract basics ------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[PbxEvent], None]) -> Callable[[], None]:
        """Call ``listener`` for every event, in order, from whatever thread produced
        it, while the PBX lock is held. Returns an unsubscribe function. Listeners
        must not block; an exception in one is logged and does not stop the others."""
        with self.lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self.lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def publish(self, event: PbxEvent) -> None:
        """Send an event raised outside the PBX (the actions' OriginateResponse) to
        every listener, in order with the PBX's own events."""
        with self.lock:
            self._emit(event.name, event.privilege, event.body)

    def uptime_seconds(self) -> int:
        return int(self.clock.wall() - self.started_at)

    def last_reload_seconds(self) -> int:
        return int(self.clock.wall() - self.reloaded_at)

    def emit_reload(self, module: str, status: int = 0) -> None:
        """Event: Reload (class system), as main/loader.c sends it. A successful
        reload of everything (``module="All"``) re-reads the dialplan's globals
        first, which Asterisk shows as a global VarSet (q_reload)."""
        with self.lock:
            if status == 0:
                self.reloaded_at = self.clock.wall()
                if module == "All":
                    self._set_global("LABGLOBAL", "hello")
            self._emit("Reload", _SYSTEM, (("Module", module), ("Status", str(status))))

    def close(self) -> None:
        """Stop the traffic generator and every pending step; idempotent. A clock
        the PBX created itself is closed too."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._traffic_token += 1
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        if self._own_clock:
            self.clock.close()

    # -- state queries --------------------------------------------------------------------------

    def channels(self) -> list[Channel]:
        """Live channels in creation order."""
        with self.lock:
            return list(self._channels.values())

    def find_channel(self, name: str) -> Channel | None:
        with self.lock:
            return self._channels.get(name)

    def endpoints(self) -> list[Endpoint]:
        with self.lock:
            return list(self._endpoints.values())

    def contacts(self) -> list[Contact]:
        with self.lock:
            return [c for ep in self._endpoints.values() for c in ep.contacts]

    def queues(self) -> list[Queue]:
        with self.lock:
            return list(self._queues)

    def get_var(self, channel: Channel | None, name: str) -> str:
        """A channel variable (falling back to globals, like pbx_retrieve_variable),
        a global when ``channel`` is None, or one of the functions CHANNEL(...),
        CALLERID(...) and the builtins CHANNEL, UNIQUEID, CONTEXT, EXTEN, PRIORITY,
        EPOCH. Unset → ""."""
        with self.lock:
            if channel is None:
                if name == "EPOCH":
                    return str(int(self.clock.wall()))
                return self.globals.get(name, "")
            if name in channel.variables:
                return channel.variables[name]
            builtin = self._builtin_var(channel, name)
            if builtin is not None:
                return builtin
            return self.globals.get(name, "")

    def _builtin_var(self, chan: Channel, name: str) -> str | None:
        upper = name.upper()
        simple = {
            "CHANNEL": chan.name,
            "UNIQUEID": chan.uniqueid,
            "CONTEXT": chan.context,
            "EXTEN": chan.exten,
            "PRIORITY": str(chan.priority),
            "EPOCH": str(int(self.clock.wall())),
            "HANGUPCAUSE": str(chan._hangupcause),
        }
        if upper in simple:
            return simple[upper]
        if upper.endswith(")") and "(" in upper:
            func, _, arg = upper[:-1].partition("(")
            arg = arg.strip().lower()
            if func == "CHANNEL":
                return {
                    "state": CHANNEL_STATES.get(chan.state, ""),
                    "name": chan.name,
                    "uniqueid": chan.uniqueid,
                    "linkedid": chan.linkedid,
                    "language": chan.language,
                    "accountcode": chan.account_code,
                    "context": chan.context,
                    "exten": chan.exten,
                    "channeltype": chan.name.split("/", 1)[0],
                }.get(arg, "")
            if func == "CALLERID":
                return {"num": chan.caller_num, "name": chan.caller_name}.get(arg, "")
            if func == "CONNECTEDLINE":
                return {"num": chan.connected_num, "name": chan.connected_name}.get(arg, "")
            return ""
        return None

    def set_var(self, channel: Channel | None, name: str, value: str) -> None:
        """Set a channel variable (or a global when ``channel`` is None) and emit
        VarSet, as Setvar does. ``CALLERID(num|name)`` changes the caller ID
        (NewCallerid). Other functions raise ValueError."""
        with self.lock:
            if name.endswith(")") and "(" in name:
                func, _, arg = name[:-1].partition("(")
                arg = arg.strip().lower()
                if channel is not None and func.upper() == "CALLERID" and arg in ("num", "name"):
                    if arg == "num":
                        channel.caller_num = value
                    else:
                        channel.caller_name = value
                    self._emit("NewCallerid", _CALL, channel.snapshot_body() + (_CID_PRES,))
                    return
                raise ValueError(f"cannot set function {name}")
            if channel is None:
                self._set_global(name, value)
            else:
                self._setvar(channel, name, value)

    # -- event helpers --------------------------------------------------------------------------

    def _emit(self, name: str, privilege: int, body: Body) -> None:
        listeners = self._listeners
        if not listeners:
            return
        event = PbxEvent(name, privilege, body)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("PBX event listener %r failed", listener)

    def _chan_event(
        self, name: str, chan: Channel, *extra: tuple[str, str], privilege: int = _CALL
    ) -> None:
        if self._listeners:
            self._emit(name, privilege, chan.snapshot_body() + extra)

    def _setvar(self, chan: Channel, name: str, value: str) -> None:
        chan.variables[name] = value
        if self._listeners:
            self._emit(
                "VarSet",
                _DIALPLAN,
                chan.snapshot_body() + (("Variable", name), ("Value", c_escape(value))),
            )

    def _set_global(self, name: str, value: str) -> None:
        self.globals[name] = value
        self._emit(
            "VarSet",
            _DIALPLAN,
            (
                ("Channel", "none"),
                ("Uniqueid", "none"),
                ("Variable", name),
                ("Value", c_escape(value)),
            ),
        )

    def _later(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Schedule a step; it runs under the lock and not at all after close()."""
        box: list[Timer] = []
        timer = self.clock.call_later(delay, self._run_step, box, fn, args)
        box.append(timer)
        self._timers.add(timer)
        return timer

    def _cancel_timers(self, timers: list[Timer]) -> None:
        for timer in timers:
            timer.cancel()
            self._timers.discard(timer)
        timers.clear()

    def _run_step(self, box: list[Timer], fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        with self.lock:
            if box:
                self._timers.discard(box[0])
            if self._closed:
                return
            fn(*args)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the simulated PBX is closed")

    # -- channels -------------------------------------------------------------------------------

    def _new_channel(
        self,
        name: str,
        state: int,
        *,
        context: str,
        exten: str,
        linkedid: str | None = None,
        caller_num: str = "",
        caller_name: str = "",
        device: str = "",
        endpoint: str = "",
        application: str = "",
        app_data: str = "",
    ) -> Channel:
        uid = f"{int(self.clock.wall())}.{self._uid_seq}"
        self._uid_seq += 1
        chan = Channel(
            name=name,
            state=state,
            caller_num=caller_num,
            caller_name=caller_name,
            context=context,
            exten=exten,
            uniqueid=uid,
            linkedid=linkedid or uid,
            application=application,
            app_data=app_data,
            created=self.clock.monotonic(),
            device=device,
            endpoint=endpoint,
        )
        self._channels[name] = chan
        ep = self._endpoints.get(endpoint)
        if ep is not None:
            ep.active_channels += 1
            self._count_state(ep, state, +1)
        self._chan_event("Newchannel", chan)
        return chan

    def _next_name_seq(self) -> str:
        seq = f"{self._name_seq:08x}"
        self._name_seq += 1
        return seq

    @staticmethod
    def _count_state(ep: Endpoint, state: int, delta: int) -> None:
        if state == 5:
            ep._ringing += delta
        elif state != 0:
            ep._busy += delta

    def _set_state(self, chan: Channel, state: int) -> None:
        """Change a channel's state and emit Newstate."""
        if chan.state == state:
            return
        ep = self._endpoints.get(chan.endpoint)
        if ep is not None:
            self._count_state(ep, chan.state, -1)
            self._count_state(ep, state, +1)
        chan.state = state
        self._chan_event("Newstate", chan)

    def _destroy(self, chan: Channel, cause: int, tech_cause: int = 0) -> None:
        """Emit Hangup and forget the channel (the device state is updated by the caller)."""
        if not chan._alive:
            return
        chan._alive = False
        chan._gen += 1
        chan._hangupcause = cause
        extra: Body = (("Cause", str(cause)), ("Cause-txt", HANGUP_CAUSES.get(cause, "Unknown")))
        if tech_cause:
            extra += (("TechCause", str(tech_cause)),)
        self._chan_event("Hangup", chan, *extra)
        self._channels.pop(chan.name, None)
        ep = self._endpoints.get(chan.endpoint)
        if ep is not None:
            ep.active_channels -= 1
            self._count_state(ep, chan.state, -1)

    def _qos(self, chan: Channel, bridged_to: Channel | None = None) -> None:
        """The RTPAUDIOQOS* VarSets chan_pjsip sets when a channel's RTP ends; with
        ``bridged_to``, the peer gets the *BRIDGED copies interleaved (demo2)."""
        if not chan.endpoint:
            return
        seconds = max(0.0, self.clock.monotonic() - chan.created)
        packets = int(seconds * 50)  # 20 ms packets
        rng = self._rng
        jitter = rng.random() * 0.002  # a quiet LAN: up to 2 ms
        first = (
            f"ssrc={rng.getrandbits(31)};themssrc={rng.getrandbits(31)};lp=0;"
            f"rxjitter={jitter:f};rxcount={packets};txjitter=0.000000;txcount={packets};"
            "rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000"
        )
        zeros = (0.0, 0.0, 0.0, 0.0)
        values = (
            ("RTPAUDIOQOS", first),
            (
                "RTPAUDIOQOSJITTER",
                _qos_block(
                    "", ("rxjitter", "txjitter"), ((0.0, jitter * 4, jitter * 2, jitter), zeros)
                ),
            ),
            ("RTPAUDIOQOSLOSS", _qos_block("  ", ("rxlost", "txlost"), (zeros, zeros))),
            ("RTPAUDIOQOSRTT", _qos_block("     ", ("rtt",), (zeros,))),
            ("RTPAUDIOQOSMES", _qos_block("   ", ("rxmes", "txmes"), (zeros, zeros))),
        )
        for name, value in values:
            self._setvar(chan, name, value)
            if bridged_to is not None and bridged_to._alive:
                self._setvar(bridged_to, name + "BRIDGED", value)

    # -- device states --------------------------------------------------------------------------

    def _device_changed(self, endpoint: str) -> None:
        """Recompute a PJSIP endpoint's device state; DeviceStateChange if it changed
        (PJSIP device states are cached, so no repeats)."""
        ep = self._endpoints.get(endpoint)
        if ep is None:
            return
        if ep._ringing and ep._busy:
            token = "RINGINUSE"
        elif ep._ringing:
            token = "RINGING"
        elif ep._busy:
            token = "INUSE"
        elif ep.contacts:
            token = "NOT_INUSE"
        else:
            token = "UNAVAILABLE"
        if token != ep.device_state:
            ep.device_state = token
            self._emit(
                "DeviceStateChange", _CALL, (("Device", f"PJSIP/{ep.name}"), ("State", token))
            )

    def _local_device(self, device: str, token: str) -> None:
        """A Local half was answered ("INUSE") or hung up ("NOT_INUSE"): Local
        device states are not cached, so each half's change is one
        DeviceStateChange (g/o/p). A queue member on that device whose status
        changes gets QueueMemberStatus (class agent), as in g."""
        self._emit("DeviceStateChange", _CALL, (("Device", device), ("State", token)))
        number = DEVICE_STATE_NUMBERS[token]
        for queue in self._queues:
            for member in queue.members:
                if member.state_interface != device or member.status == number:
                    continue
                member.status = number
                self._emit(
                    "QueueMemberStatus",
                    _AGENT,
                    (
                        ("Queue", queue.name),
                        ("MemberName", member.name),
                        ("Interface", member.location),
                        ("StateInterface", member.state_interface),
                        ("Membership", member.membership),
                        ("Penalty", str(member.penalty)),
                        ("CallsTaken", str(member.calls_taken)),
                        ("LastCall", str(member.last_call)),
                        ("LastPause", str(member.last_pause)),
                        ("LoginTime", str(member.login_time)),
                        ("InCall", str(member.in_call)),
                        ("Status", str(member.status)),
                        ("Paused", str(member.paused)),
                        ("PausedReason", member.paused_reason),
                        ("Ringinuse", str(member.ringinuse)),
                        ("Wrapuptime", str(member.wrapuptime)),
                    ),
                )
                avail = (
                    "NOT_INUSE" if member.status not in (4, 5) and not member.paused else "INUSE"
                )
                if avail != queue.avail_state:
                    queue.avail_state = avail
                    self._emit(
                        "DeviceStateChange",
                        _CALL,
                        (("Device", f"Queue:{queue.name}_avail"), ("State", avail)),
                    )

    # -- registration ---------------------------------------------------------------------------

    def _endpoint(self, name: str) -> Endpoint:
        ep = self._endpoints.get(str(name))
        if ep is None:
            raise ValueError(
                f"no such endpoint: {name!r} (endpoints: {', '.join(self._endpoints)})"
            )
        return ep

    def register(self, endpoint: str, *, qualify: bool = False) -> None:
        """The endpoint's softphone REGISTERs (Expires 300) from 127.0.0.1 and a
        port of its own, and keeps re-registering. Events as demo1_registration:
        PeerStatus Reachable, ContactStatus NonQualified, DeviceStateChange; with
        ``qualify`` (AOR qualify_frequency=30) as demo1_registration_qualify:
        ContactStatus NonQualified, PeerStatus Reachable, ContactStatus Reachable
        with a round-trip time, DeviceStateChange. Registering again only
        refreshes the contact (no events)."""
        with self.lock:
            self._check_open()
            ep = self._endpoint(endpoint)
            now = int(self.clock.wall())
            if ep.contacts:
                for contact in ep.contacts:
                    contact.expiration = now + REGISTER_EXPIRES
                return
            port = self._rng.randrange(30000, 60000)
            uri = f"sip:{ep.name}@{SIP_DOMAIN}:{port}"
            contact = Contact(
                aor=ep.aor,
                uri=uri,
                endpoint=ep.name,
                status="NonQualified",
                rtt_usec=0,
                user_agent=USER_AGENT,
                expiration=now + REGISTER_EXPIRES,
                via_addr=SIP_DOMAIN,
                via_port=port,
                call_id=f"{self._rng.getrandbits(64):016x}@{SIP_DOMAIN}",
                qualify_frequency=QUALIFY_FREQUENCY if qualify else 0,
                qualify_timeout=QUALIFY_TIMEOUT,
                reg_server="",
                object_name=f"{ep.aor};@{hashlib.md5(uri.encode()).hexdigest()}",
            )
            ep.contacts.append(contact)
            status = self._contact_status_body(contact, "NonQualified", 0)
            peer = (
                ("ChannelType", "PJSIP"),
                ("Peer", f"PJSIP/{ep.name}"),
                ("PeerStatus", "Reachable"),
            )
            if qualify:
                self._emit("ContactStatus", _SYSTEM, status)
                self._emit("PeerStatus", _SYSTEM, peer)
                contact.status = "Reachable"
                contact.rtt_usec = self._rng.randrange(300, 600)
                self._emit(
                    "ContactStatus",
                    _SYSTEM,
                    self._contact_status_body(contact, "Reachable", contact.rtt_usec),
                )
            else:
                self._emit("PeerStatus", _SYSTEM, peer)
                self._emit("ContactStatus", _SYSTEM, status)
            self._device_changed(ep.name)
            self._later(REGISTER_EXPIRES / 2, self._reregister, contact)

    def _reregister(self, contact: Contact) -> None:
        ep = self._endpoints[contact.endpoint]
        if contact in ep.contacts:
            contact.expiration = int(self.clock.wall()) + REGISTER_EXPIRES
            self._later(REGISTER_EXPIRES / 2, self._reregister, contact)

    @staticmethod
    def _contact_status_body(contact: Contact, status: str, rtt: int) -> Body:
        return (
            ("URI", contact.uri),
            ("ContactStatus", status),
            ("AOR", contact.aor),
            ("EndpointName", contact.endpoint),
            ("RoundtripUsec", str(rtt)),
        )

    def unregister(self, endpoint: str) -> None:
        """The softphone un-REGISTERs (Expires: 0). Events as demo1_registration:
        PeerStatus Unreachable, DeviceStateChange UNAVAILABLE, ContactStatus
        Removed (with qualify, ContactStatus comes before DeviceStateChange, as
        recorded). No effect if the endpoint is not registered."""
        with self.lock:
            self._check_open()
            ep = self._endpoint(endpoint)
            if not ep.contacts:
                return
            contacts, ep.contacts = ep.contacts, []
            self._emit(
                "PeerStatus",
                _SYSTEM,
                (
                    ("ChannelType", "PJSIP"),
                    ("Peer", f"PJSIP/{ep.name}"),
                    ("PeerStatus", "Unreachable"),
                ),
            )
            qualified = any(c.qualify_frequency for c in contacts)
            if not qualified:
                self._device_changed(ep.name)
            for contact in contacts:
                contact.status = "Removed"
                self._emit(
                    "ContactStatus", _SYSTEM, self._contact_status_body(contact, "Removed", 0)
                )
            if qualified:
                self._device_changed(ep.name)

    # -- the dialplan engine --------------------------------------------------------------------

    def _newexten(self, chan: Channel) -> None:
        if self._listeners:
            self._emit(
                "Newexten",
                _DIALPLAN,
                chan.snapshot_body()
                + (
                    ("Extension", chan.exten),
                    ("Application", chan.application),
                    ("AppData", chan.app_data),
                ),
            )

    def _start_pbx(self, chan: Channel) -> None:
        chan._runs_pbx = True
        self.processed_calls += 1
        self._run(chan)

    def _run(self, chan: Channel) -> None:
        """Run the dialplan from the channel's current priority until an
        application waits (Wait, Echo, Dial, Answer on a Local channel) or the
        channel is hung up."""
        while chan._alive:
            steps = self.dialplan.get(chan.context, {}).get(chan.exten)
            step = None
            if steps is not None:
                for priority, app, data in steps:
                    if priority == chan.priority:
                        step = (app, data)
                        break
            if step is None:
                # Ran off the end of the dialplan: the PBX hangs the channel up.
                self._pbx_hangup(chan, chan._hangupcause or 16)
                return
            chan.application, chan.app_data = step
            self._newexten(chan)
            if self._exec(chan, *step):
                return
            chan.priority += 1

    def _continue(self, chan: Channel, gen: int) -> None:
        if chan._alive and chan._gen == gen:
            chan.priority += 1
            self._run(chan)

    def _exec(self, chan: Channel, app: str, data: str) -> bool:
        """Run one application; True if the channel now waits (or is gone)."""
        name = app.lower()
        if name == "answer":
            if chan.state != 6:
                self._answer_channel(chan)
                if chan._partner is not None:  # a Local channel waits for media
                    self._later(LOCAL_ANSWER_DELAY, self._continue, chan, chan._gen)
                    return True
            return False
        if name == "wait":
            try:
                seconds = float(data or 0)
            except ValueError:
                seconds = 0.0
            self._later(seconds, self._continue, chan, chan._gen)
            return True
        if name == "echo":
            if chan.state != 6:
                self._answer_channel(chan)
            chan._echo = True
            return True
        if name == "hangup":
            self._pbx_hangup(chan, chan._hangupcause or 16)
            return True
        if name == "dial":
            target, _, rest = data.partition(",")
            timeout_text = rest.partition(",")[0]
            try:
                timeout = float(timeout_text) if timeout_text else 0.0
            except ValueError:
                timeout = 0.0
            script = chan._call.script if chan._call is not None else self._default_script()
            self._dial(chan, target, timeout, script)
            return True
        return False  # NoOp, Verbose, Set… : nothing the simulation needs to do

    def _default_script(self) -> _PhoneScript:
        return _PhoneScript(answer_after=self.auto_answer_after, talk_for=None)

    def _answer_channel(self, chan: Channel) -> None:
        """The channel goes Up; a Local ;2 answering answers its ;1 (the Originate)."""
        self._set_state(chan, 6)
        if chan.endpoint:
            self._device_changed(chan.endpoint)
        elif chan.device:
            self._local_device(chan.device, "INUSE")
        partner = chan._partner
        if partner is not None and partner._alive and partner.state != 6:
            self._set_state(partner, 6)
            self._originate_answered(partner)

    def _pbx_hangup(self, chan: Channel, cause: int) -> None:
        """The channel's own dialplan ends (Hangup(), end of priorities)."""
        self._end(chan, cause)

    # -- ending channels ------------------------------------------------------------------------

    def hangup(self, channel: Channel, cause: int = 16) -> None:
        """The AMI Hangup action. The action itself publishes no SoftHangupRequest
        (manager.c uses the non-publishing soft hangup); a channel running the
        dialplan still shows one as its PBX loop ends (p_hangup). ``cause`` 0
        leaves the cause unset, as a Hangup without ``Cause:`` does (Hangup
        shows 0 Unknown); a Local partner follows with the same cause."""
        with self.lock:
            if channel._alive:
                self._hangup_from(channel, cause, None)

    def _hangup_from(
        self,
        chan: Channel,
        cause: int,
        request: tuple[tuple[str, str], ...] | None,
        tech_cause: int = 0,
    ) -> None:
        """``chan`` goes away on its own side: a BYE or CANCEL from its phone
        (``request``: the HangupRequest's extra fields; the RTP QoS VarSets come
        first, as recorded) or an AMI Hangup / a finished application
        (``request`` None). The Dial it is part of and its Local partner follow."""
        dial = chan._dial
        if dial is not None and dial.bridge is not None and chan in dial.bridge.channels:
            self._bridge_leave_from(dial, chan, cause, request)
            return
        if dial is not None and dial.b is chan and dial.answered_at is None:
            # The callee's side ends before answering (decline, or AMI Hangup).
            if request is not None:
                self._chan_event("HangupRequest", chan, *request)
            status = "BUSY" if cause in (17, 21) else "CONGESTION" if cause == 34 else "NOANSWER"
            self._dial_fail(dial, status, cause, tech_cause)
            return
        qos = True
        if request is not None:
            self._qos(chan)
            qos = False
            self._chan_event("HangupRequest", chan, *request)
        self._end(chan, cause, tech_cause, qos=qos)

    def _end(
        self,
        chan: Channel,
        cause: int,
        tech_cause: int = 0,
        *,
        qos: bool = True,
        announce: bool = True,
    ) -> None:
        """Hang a channel up once it has been asked to: a Dial it is running is
        cancelled; a channel running the dialplan shows SoftHangupRequest Cause 16
        as its PBX loop ends (every recording: demo2/3, o, p, g; even for an AMI
        Hangup, p); its Local partner is asked to hang up (HangupRequest); then
        QoS VarSets, Hangup, the partner's own end, device states (o/p/g order)."""
        if not chan._alive:
            return
        dial = chan._dial
        if (
            dial is not None
            and dial.a is chan
            and dial.answered_at is None
            and dial.b is not None
            and dial.b._alive
        ):
            # The caller goes away while the callee still rings: Dial is cancelled.
            self._cancel_timers(dial.timers)
            b = dial.b
            self._dial_end_event(dial, "CANCEL")
            self._destroy(b, 16)
            self._device_changed(b.endpoint)
            self._dial_finish_vars(dial, "CANCEL")
        if announce and chan._runs_pbx:
            self._chan_event("SoftHangupRequest", chan, ("Cause", "16"))
        partner = chan._partner
        if partner is not None and partner._alive:
            self._chan_event("HangupRequest", partner, ("Cause", str(cause)))
        if qos:
            self._qos(chan)
        self._destroy(chan, cause, tech_cause)
        self._after_gone(chan, cause)

    def _after_gone(self, chan: Channel, cause: int) -> None:
        """After a channel's Hangup: its Local partner ends too, then the device
        states, then the Originate learns the channel is gone."""
        partner = chan._partner
        if partner is not None and partner._alive:
            self._hangup_from(partner, cause, None)
        if chan.endpoint:
            self._device_changed(chan.endpoint)
        elif chan.device and chan.state == 6:
            self._local_device(chan.device, "NOT_INUSE")
        self._originate_gone(chan)

    # -- Dial -----------------------------------------------------------------------------------

    def _dial(self, a: Channel, target: str, timeout: float, script: _PhoneScript) -> None:
        """Dial(PJSIP/<target>,<timeout>) on channel ``a``: the demo2 sequence."""
        tech, _, resource = target.partition("/")
        dial = _Dial(
            a=a, target=resource, timeout=timeout, script=script, started=self.clock.monotonic()
        )
        a._dial = dial
        for var in _DIAL_VARS:
            self._setvar(a, var, "")
        ep = self._endpoints.get(resource) if tech.upper() == "PJSIP" else None
        if ep is None or not ep.contacts:
            # No contact to call: no channel, Dial ends at once (cause 20).
            self._device_changed(a.endpoint)
            a._hangupcause = 20
            self._dial_finish_vars(dial, "CHANUNAVAIL")
            self._after_dial(a)
            return
        b = self._new_channel(
            f"PJSIP/{ep.name}-{self._next_name_seq()}",
            0,
            context=ep.context,
            exten="s",
            linkedid=a.linkedid,
            device=f"PJSIP/{ep.name}",
            endpoint=ep.name,
            application="AppDial",
            app_data="(Outgoing Line)",
        )
        b._sip_call_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        b._dial = dial
        dial.b = b
        if a._call is not None:
            a._call.callee_channel = b.name
        self._setvar(b, "DIALEDPEERNUMBER", ep.name)
        b.caller_num, b.caller_name = ep.name, ""
        b.connected_num, b.connected_name = a.caller_num, a.caller_name
        b.context, b.exten = a.context, a.exten
        self._newexten(b)
        self._chan_event("NewCallerid", b, _CID_PRES)
        self._chan_event("NewConnectedLine", b)
        if self._listeners:
            self._emit(
                "DialBegin",
                _CALL,
                a.snapshot_body() + b.snapshot_body("Dest") + (("DialString", resource),),
            )
        a.connected_num, a.connected_name = ep.name, ""
        self._chan_event("NewConnectedLine", a)
        if script.outcome == "busy":
            dial.timers.append(self._later(RING_DELAY, self._callee_busy, dial, 17, 486))
        else:
            ring = (
                RING_DELAY if script.answer_after is None else min(RING_DELAY, script.answer_after)
            )
            dial.timers.append(self._later(ring, self._callee_ringing, dial))
        if timeout > 0:
            dial.timers.append(self._later(timeout, self._dial_timeout, dial))

    def _dial_end_event(self, dial: _Dial, status: str) -> None:
        dial.status = status
        call = dial.a._call
        if call is not None:
            call.dial_status = status
        if self._listeners and dial.b is not None:
            self._emit(
                "DialEnd",
                _CALL,
                dial.a.snapshot_body() + dial.b.snapshot_body("Dest") + (("DialStatus", status),),
            )

    def _callee_ringing(self, dial: _Dial) -> None:
        a, b = dial.a, dial.b
        if b is None or not b._alive or b.state != 0:
            return
        dial.ringing_at = self.clock.monotonic()
        self._set_state(b, 5)
        self._set_duration(a, "RINGTIME", dial.ringing_at - dial.started)
        if self._listeners:
            self._emit(
                "DialState",
                _CALL,
                a.snapshot_body() + b.snapshot_body("Dest") + (("DialStatus", "RINGING"),),
            )
        self._device_changed(b.endpoint)
        self._device_changed(a.endpoint)
        answer_after = dial.script.answer_after
        if dial.script.outcome == "answer" and answer_after is not None:
            dial.timers.append(
                self._later(
                    max(0.0, answer_after - (dial.ringing_at - dial.started)),
                    self._callee_answers,
                    dial,
                )
            )

    def _callee_answers(self, dial: _Dial) -> None:
        """The callee picks up: DialEnd ANSWER, the caller is answered and both
        enter a basic bridge (demo2)."""
        a, b = dial.a, dial.b
        if b is None or not b._alive or not a._alive or dial.answered_at is not None:
            return
        self._cancel_timers(dial.timers)
        dial.answered_at = self.clock.monotonic()
        self._set_state(b, 6)
        self._setvar(a, "DIALSTATUS", "ANSWER")
        self._setvar(a, "DIALEDPEERNAME", b.name)
        self._setvar(a, "DIALEDPEERNUMBER", dial.target)
        b.exten = ""
        self._dial_end_event(dial, "ANSWER")
        if a.state != 6:
            self._answer_channel(a)
        self._device_changed(b.endpoint)
        bridge = _Bridge(uniqueid=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)))
        dial.bridge = bridge
        self._emit("BridgeCreate", _CALL, bridge.body())
        self._newexten(b)
        for chan in (b, a):
            bridge.channels.append(chan)
            chan.bridge_id = bridge.uniqueid
            self._emit("BridgeEnter", _CALL, bridge.body() + chan.snapshot_body())
        # Asterisk re-announces the bridge peers each time the bridge changes
        # technology on the way to native RTP: five rounds between two PJSIP phones.
        native = bool(a.endpoint and b.endpoint)
        for _ in range(5 if native else 1):
            for chan, peer in ((a, b), (b, a)):
                self._setvar(chan, "BRIDGEPEER", peer.name)
                if peer._sip_call_id:
                    self._setvar(chan, "BRIDGEPVTCALLID", peer._sip_call_id)
        if native:
            bridge.technology = "native_rtp"
        script = dial.script
        if script.talk_for is not None:
            dial.timers.append(
                self._later(script.talk_for, self._phone_bye, dial, script.hangup_by)
            )

    def _phone_bye(self, dial: _Dial, by: str) -> None:
        chan = dial.b if by == "callee" else dial.a
        if chan is None or not chan._alive:
            return
        self._bye(chan)

    def _bye(self, chan: Channel) -> None:
        """A phone sends BYE (or CANCEL) for its channel. The callee's channel
        (outgoing) gets HangupRequest with Cause 16 (demo2); the caller's
        (incoming) one with no Cause and ends with cause 0 (demo3)."""
        dial = chan._dial
        outgoing = dial is not None and dial.b is chan
        if outgoing:
            self._hangup_from(chan, 16, (("Cause", "16"),))
        else:
            self._hangup_from(chan, 0, ())

    def _bridge_leave_from(
        self, dial: _Dial, chan: Channel, cause: int, request: tuple[tuple[str, str], ...] | None
    ) -> None:
        """``chan`` leaves an answered Dial's bridge and hangs up; the other side
        follows. The callee-side order is demo2's; the caller side mirrors it
        (not recorded): Dial returns on the caller, the bridge dissolves, the
        callee is hung up with the caller's cause."""
        a, b = dial.a, dial.b
        assert b is not None and dial.bridge is not None
        other = a if chan is b else b
        bridge = dial.bridge
        self._cancel_timers(dial.timers)
        self._qos(chan, bridged_to=other)
        if request is not None:
            self._chan_event("HangupRequest", chan, *request)
        for x in (chan, other):
            if x.variables.get("BRIDGEPEER"):
                self._setvar(x, "BRIDGEPEER", "")
                if "BRIDGEPVTCALLID" in x.variables:
                    self._setvar(x, "BRIDGEPVTCALLID", "")
        self._bridge_leave(bridge, chan)
        a._hangupcause = cause
        if chan is b:
            self._destroy(b, cause)
            self._bridge_leave(bridge, a)
            self._emit("BridgeDestroy", _CALL, bridge.body())
            self._dial_finish_vars(dial, "ANSWER")
            if a._runs_pbx:
                self._chan_event("SoftHangupRequest", a, ("Cause", "16"))
            self._device_changed(b.endpoint)
            self._end(a, cause, announce=False)
        else:
            self._dial_finish_vars(dial, "ANSWER")
            self._bridge_leave(bridge, b)
            self._emit("BridgeDestroy", _CALL, bridge.body())
            self._qos(b)
            self._destroy(b, cause)
            self._device_changed(b.endpoint)
            self._end(a, cause, qos=False)

    def _bridge_leave(self, bridge: _Bridge, chan: Channel) -> None:
        bridge.channels.remove(chan)
        chan.bridge_id = ""
        self._emit("BridgeLeave", _CALL, bridge.body() + chan.snapshot_body())

    def _set_duration(self, chan: Channel, name: str, seconds: float) -> None:
        """app_dial's NAME (whole seconds) and NAME_MS variables."""
        ms = int(round(seconds * 1000))
        self._setvar(chan, name, str(ms // 1000))
        self._setvar(chan, name + "_MS", str(ms))

    def _dial_finish_vars(self, dial: _Dial, status: str) -> None:
        """The variables Dial sets on the caller when it returns (demo2's order)."""
        a = dial.a
        if not a._alive:
            return
        now = self.clock.monotonic()
        if dial.answered_at is not None:
            self._set_duration(a, "ANSWEREDTIME", now - dial.answered_at)
        self._set_duration(a, "DIALEDTIME", now - dial.started)
        self._setvar(a, "DIALSTATUS", status)
        dial.status = status
        if a._call is not None:
            a._call.dial_status = status

    def _callee_busy(self, dial: _Dial, cause: int, tech_cause: int) -> None:
        """The callee's phone answers 486 Busy Here (or 603 Decline): Dial ends BUSY."""
        b = dial.b
        if b is None or not b._alive or dial.answered_at is not None:
            return
        self._chan_event("HangupRequest", b, ("Cause", str(cause)), ("TechCause", str(tech_cause)))
        self._dial_fail(dial, "BUSY", cause, tech_cause)

    def _dial_fail(self, dial: _Dial, status: str, cause: int, tech_cause: int) -> None:
        a, b = dial.a, dial.b
        self._cancel_timers(dial.timers)
        if b is not None and b._alive:
            self._dial_end_event(dial, status)
            self._destroy(b, cause, tech_cause)
            self._device_changed(b.endpoint)
        if status in ("BUSY", "CONGESTION"):
            a._hangupcause = cause
        self._device_changed(a.endpoint)
        self._dial_finish_vars(dial, status)
        self._after_dial(a)

    def _dial_timeout(self, dial: _Dial) -> None:
        """Nobody answered within Dial's timeout: DialEnd NOANSWER; Dial hangs
        the callee up with Normal Clearing and the dialplan goes on."""
        if dial.answered_at is not None or dial.b is None or not dial.b._alive:
            return
        self._dial_fail(dial, "NOANSWER", 16, 0)

    def _after_dial(self, a: Channel) -> None:
        """Dial returned without a bridge: the caller's dialplan goes on."""
        if a._alive and a._runs_pbx:
            a.priority += 1
            self._run(a)
        elif a._alive:
            self._end(a, a._hangupcause or 16)

    # -- demo API: calls --------------------------------------------------------------------------

    def call(
        self,
        caller: str,
        callee: str,
        *,
        answer_after: float | None = 2.0,
        talk_for: float | None = 5.0,
        hangup_by: str = "callee",
        outcome: str = "answer",
    ) -> Call:
        """Phone ``caller`` dials ``callee`` (an endpoint, or any extension of
        ``internal`` such as 9999): the demo2 sequence. The callee answers after
        ``answer_after`` seconds (None: when you call ``Call.answer()``; Dial
        gives up after 20 s either way, DIALSTATUS NOANSWER), then ``hangup_by``
        ("caller"/"callee") hangs up after ``talk_for`` seconds (None: when you
        call ``Call.hangup()``). ``outcome``: "answer", "busy" (486, cause 17)
        or "noanswer" (rings until Dial's timeout). A callee that is not
        registered gives CHANUNAVAIL. For an extension like 9999 ``talk_for``
        is how long the caller stays (None: until ``Call.hangup()``)."""
        if outcome not in ("answer", "busy", "noanswer"):
            raise ValueError("outcome must be 'answer', 'busy' or 'noanswer'")
        if hangup_by not in ("caller", "callee"):
            raise ValueError("hangup_by must be 'caller' or 'callee'")
        for value, what in ((answer_after, "answer_after"), (talk_for, "talk_for")):
            if value is not None and not value >= 0:
                raise ValueError(f"{what} must be a number of seconds >= 0 or None")
        with self.lock:
            self._check_open()
            ep = self._endpoint(caller)
            callee = str(callee)
            if callee not in self.dialplan["internal"]:
                raise ValueError(f"no extension {callee!r} in context internal")
            script = _PhoneScript(
                answer_after=None if outcome == "noanswer" else answer_after,
                talk_for=talk_for,
                hangup_by=hangup_by,
                outcome=outcome,
            )
            a = self._new_channel(
                f"PJSIP/{ep.name}-{self._next_name_seq()}",
                4,
                context=ep.context,
                exten=callee,
                caller_num=ep.name,
                caller_name=ep.name,
                device=f"PJSIP/{ep.name}",
                endpoint=ep.name,
            )
            a._sip_call_id = f"{self._rng.getrandbits(64):016x}@{SIP_DOMAIN}"
            call = Call(self, ep.name, callee, a, script)
            a._call = call
            self._setvar(a, "SIPDOMAIN", SIP_DOMAIN)
            if callee not in self._endpoints and talk_for is not None:
                self._later(talk_for, self._caller_bye_if_alive, a)
            self._start_pbx(a)
            return call

    def _caller_bye_if_alive(self, a: Channel) -> None:
        if a._alive:
            self._bye(a)

    def echo_test(self, endpoint: str, duration: float | None = 2.0) -> Call:
        """Phone ``endpoint`` dials 9999 (NoOp, Answer, Echo) and hangs up after
        ``duration`` seconds (None: when you call ``Call.hangup()``): demo3,
        ending with Hangup cause 0 as recorded."""
        return self.call(endpoint, "9999", talk_for=duration)

    def _answer_call(self, call: Call) -> None:
        with self.lock:
            dial = call._a._dial
            if dial is None or dial.b is None or not dial.b._alive or dial.answered_at is not None:
                raise RuntimeError("the callee's phone is not ringing")
            if dial.b.state == 0:
                self._callee_ringing(dial)
            self._callee_answers(dial)

    def _hangup_call(self, call: Call, by: str) -> None:
        with self.lock:
            a = call._a
            dial = a._dial
            if by == "callee" and dial is not None and dial.b is not None and dial.b._alive:
                if dial.answered_at is None:
                    self._callee_busy(dial, 21, 603)
                else:
                    self._bye(dial.b)
            elif a._alive:
                self._bye(a)

    # -- DTMF -----------------------------------------------------------------------------------

    def send_dtmf(self, endpoint_or_channel: str, digits: str, *, duration_ms: int = 120) -> bool:
        """The phone presses ``digits`` during its call, one after the other
        (``duration_ms`` each, 100 ms apart).

        Returns whether Asterisk sees them. Inside Echo() it does: DTMFBegin/
        DTMFEnd ``Direction: Received`` and ``Sent`` on the same channel
        (demo2_dtmf); in another dialplan application, Received only. Between
        two bridged phones it
        does not: the native RTP bridge passes the RFC 4733 packets from phone to
        phone and no AMI event is raised, as both phone-to-phone recordings show;
        then this returns False and nothing is emitted.
        Raises ValueError for a bad digit or when the phone has no answered call."""
        if not digits or any(d not in _DTMF_DIGITS for d in digits):
            raise ValueError(f"DTMF digits must be 0-9, A-D, * or #: {digits!r}")
        if duration_ms < 0:
            raise ValueError("duration_ms must be >= 0")
        with self.lock:
            self._check_open()
            chan = self._channels.get(endpoint_or_channel)
            if chan is None:
                for candidate in reversed(list(self._channels.values())):
                    if candidate.endpoint == endpoint_or_channel and candidate.state == 6:
                        chan = candidate
                        break
            if chan is None or chan.state != 6:
                raise ValueError(f"{endpoint_or_channel} has no answered call to send DTMF on")
            dial = chan._dial
            if not chan._echo and dial is not None and dial.bridge is not None:
                return False
            for i, digit in enumerate(digits):
                self._later(
                    i * (duration_ms / 1000 + 0.1), self._dtmf_begin, chan, digit, duration_ms
                )
            return True

    def _dtmf_begin(self, chan: Channel, digit: str, duration_ms: int) -> None:
        if not chan._alive:
            return
        out = chan if chan._echo else None  # Echo() sends the digit back out
        self._chan_event(
            "DTMFBegin", chan, ("Digit", digit), ("Direction", "Received"), privilege=_DTMF
        )
        if out is not None:
            self._chan_event(
                "DTMFBegin", out, ("Digit", digit), ("Direction", "Sent"), privilege=_DTMF
            )
        self._later(duration_ms / 1000, self._dtmf_end, chan, out, digit, duration_ms)

    def _dtmf_end(self, chan: Channel, out: Channel | None, digit: str, duration_ms: int) -> None:
        ms = str(duration_ms)
        if chan._alive:
            self._chan_event(
                "DTMFEnd",
                chan,
                ("Digit", digit),
                ("DurationMs", ms),
                ("Direction", "Received"),
                privilege=_DTMF,
            )
        if out is not None and out._alive:
            self._chan_event(
                "DTMFEnd",
                out,
                ("Digit", digit),
                ("DurationMs", ms),
                ("Direction", "Sent"),
                privilege=_DTMF,
            )

    # -- Originate ------------------------------------------------------------------------------

    def originate(
        self,
        *,
        channel: str,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str = "",
        timeout_ms: int = 30000,
        caller_id: str = "",
        variables: dict[str, str] | None = None,
        account: str = "",
        channel_id: str | None = None,
        on_done: Callable[[int, Channel | None], None] | None = None,
    ) -> None:
        """Start an originate and call ``on_done(reason, channel)`` once, under the
        lock: 4 answered, 3 no answer, 1 hung up before answering, 0 failure (no
        such endpoint, not registered, unknown technology, Local extension
        missing). Failures and phones answering come later from the clock's
        thread; a Local channel whose dialplan answers at once (Local/9999,
        Local/1000) reports 4 before ``originate`` returns. Raises ValueError with
        Asterisk's text: "Invalid channel" (no ``/``), "Extension does not exist."
        (Exten-style target missing).

        ``Local/<exten>@<context>`` creates the ``;1``/``;2`` pair of o_originate_events
        (LocalBridge, DialBegin without a caller, ``;2`` runs the dialplan, its
        Answer answers ``;1``). ``PJSIP/<endpoint>`` rings that phone, which
        answers after :attr:`auto_answer_after` seconds. Then the originated
        channel runs ``application(data)`` or the dialplan at context/exten/priority.
        ``caller_id`` is ``"Name <num>"`` or a number."""
        if "/" not in channel:
            raise ValueError("Invalid channel")
        if application is None:
            ctx_steps = self.dialplan.get(context or "", {}).get(exten or "")
            if not ctx_steps or not any(p == priority for p, _, _ in ctx_steps):
                raise ValueError("Extension does not exist.")
        name, num = _parse_caller_id(caller_id)
        record = _Originate(
            one=None,
            context=context,
            exten=exten,
            priority=priority,
            application=application,
            data=data,
            on_done=on_done,
        )
        with self.lock:
            self._check_open()
            # The channels appear at once (the AMI session holds their events until
            # the action's reply is out); a failure is reported on the clock, later.
            self._originate_start(
                record, channel, name, num, dict(variables or {}), account, channel_id, timeout_ms
            )

    def _originate_start(
        self,
        record: _Originate,
        channel: str,
        cid_name: str,
        cid_num: str,
        variables: dict[str, str],
        account: str,
        channel_id: str | None,
        timeout_ms: int,
    ) -> None:
        tech, _, resource = channel.partition("/")
        if timeout_ms > 0:
            record.timer = self._later(timeout_ms / 1000, self._originate_timeout, record)
        if tech.lower() == "local":
            lexten, _, lcontext = resource.partition("@")
            lcontext = lcontext or "default"
            if lexten in self.dialplan.get(lcontext, {}):
                self._originate_local(
                    record, lexten, lcontext, cid_name, cid_num, variables, account, channel_id
                )
                return
        elif tech.upper() == "PJSIP":
            ep = self._endpoints.get(resource)
            if ep is not None and ep.contacts:
                self._originate_pjsip(record, ep, cid_name, cid_num, variables, account, channel_id)
                return
        self._later(0.0, self._originate_failed, record, 0)

    def _originate_failed(self, record: _Originate, reason: int) -> None:
        if record.finished:
            return
        record.finished = True
        if record.timer is not None:
            self._cancel_timers([record.timer])
        if record.on_done is not None:
            record.on_done(reason, None)

    def _originate_local(
        self,
        record: _Originate,
        lexten: str,
        lcontext: str,
        cid_name: str,
        cid_num: str,
        variables: dict[str, str],
        account: str,
        channel_id: str | None,
    ) -> None:
        base = f"Local/{lexten}@{lcontext}-{self._next_name_seq()}"
        device = f"Local/{lexten}@{lcontext}"
        one = self._new_channel(
            base + ";1",
            0,
            context=lcontext,
            exten=lexten,
            device=device,
            application="AppDial2",
            app_data="(Outgoing Line)",
        )
        if channel_id:
            one.uniqueid = one.linkedid = channel_id
        two = self._new_channel(
            base + ";2", 4, context=lcontext, exten=lexten, linkedid=one.linkedid, device=device
        )
        one.account_code = two.account_code = account
        one._partner, two._partner = two, one
        record.one = one
        one._originate = record
        self._newexten(one)
        for var, value in variables.items():
            self._setvar(one, var, value)
        if cid_name or cid_num:
            one.caller_num, one.caller_name = cid_num, cid_name
            self._chan_event("NewCallerid", one, _CID_PRES)
            one.connected_num, one.connected_name = cid_num, cid_name
            self._chan_event("NewConnectedLine", one)
        for var, value in variables.items():
            self._setvar(two, var, value)
        if cid_name or cid_num:
            two.caller_num, two.caller_name = cid_num, cid_name
            two.connected_num, two.connected_name = cid_num, cid_name
            self._chan_event("NewCallerid", two, _CID_PRES)
            self._chan_event("NewConnectedLine", two)
        if self._listeners:
            self._emit(
                "LocalBridge",
                _CALL,
                one.snapshot_body("LocalOne")
                + two.snapshot_body("LocalTwo")
                + (("Context", lcontext), ("Exten", lexten), ("LocalOptimization", "Yes")),
            )
            self._emit(
                "DialBegin",
                _CALL,
                one.snapshot_body("Dest") + (("DialString", f"{lexten}@{lcontext}"),),
            )
        self._start_pbx(two)

    def _originate_pjsip(
        self,
        record: _Originate,
        ep: Endpoint,
        cid_name: str,
        cid_num: str,
        variables: dict[str, str],
        account: str,
        channel_id: str | None,
    ) -> None:
        one = self._new_channel(
            f"PJSIP/{ep.name}-{self._next_name_seq()}",
            0,
            context=ep.context,
            exten="s",
            caller_num=cid_num,
            caller_name=cid_name,
            device=f"PJSIP/{ep.name}",
            endpoint=ep.name,
        )
        if channel_id:
            one.uniqueid = one.linkedid = channel_id
        one.account_code = account
        one._sip_call_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        record.one = one
        one._originate = record
        for var, value in variables.items():
            self._setvar(one, var, value)
        self._emit("DialBegin", _CALL, one.snapshot_body("Dest") + (("DialString", ep.name),))
        self._later(RING_DELAY, self._originate_ringing, record, one)

    def _originate_ringing(self, record: _Originate, one: Channel) -> None:
        if record.finished or not one._alive:
            return
        self._set_state(one, 5)
        self._emit("DialState", _CALL, one.snapshot_body("Dest") + (("DialStatus", "RINGING"),))
        self._device_changed(one.endpoint)
        if self.auto_answer_after is not None:
            self._later(
                max(0.0, self.auto_answer_after - RING_DELAY),
                self._originate_phone_answers,
                record,
                one,
            )

    def _originate_phone_answers(self, record: _Originate, one: Channel) -> None:
        if record.finished or not one._alive:
            return
        self._set_state(one, 6)
        self._originate_answered(one)

    def _originate_answered(self, one: Channel) -> None:
        """The originated channel is up: DialEnd ANSWER, on_done(4), then it runs
        the application or the dialplan target."""
        record = one._originate
        if record is None or record.finished:
            return
        record.finished = True
        if record.timer is not None:
            self._cancel_timers([record.timer])
        self._emit("DialEnd", _CALL, one.snapshot_body("Dest") + (("DialStatus", "ANSWER"),))
        if one.endpoint:
            self._device_changed(one.endpoint)
        elif one.device:
            self._local_device(one.device, "INUSE")
        if record.on_done is not None:
            record.on_done(4, one)
        if record.application is not None:
            self._later(
                0.0, self._run_originate_app, one, one._gen, record.application, record.data
            )
        else:
            one.context, one.exten, one.priority = (
                record.context or "",
                record.exten or "",
                record.priority,
            )
            self._later(0.0, self._start_originate_pbx, one, one._gen)

    def _start_originate_pbx(self, one: Channel, gen: int) -> None:
        if one._alive and one._gen == gen:
            self._start_pbx(one)

    def _run_originate_app(self, one: Channel, gen: int, app: str, data: str) -> None:
        """An Originate with Application: the channel runs just that application
        (no dialplan, so no Newexten) and is hung up when it returns."""
        if not one._alive or one._gen != gen:
            return
        one.application, one.app_data = app, data
        name = app.lower()
        if name == "wait":
            try:
                seconds = float(data or 0)
            except ValueError:
                seconds = 0.0
            self._later(seconds, self._app_done, one, one._gen)
        elif name == "echo":
            one._echo = True
        else:
            self._app_done(one, one._gen)

    def _app_done(self, one: Channel, gen: int) -> None:
        if one._alive and one._gen == gen:
            self._hangup_from(one, 16, None)

    def _originate_timeout(self, record: _Originate) -> None:
        """Nobody answered within the Originate's Timeout: reason 3."""
        if record.finished:
            return
        one = record.one
        record.finished = True
        if one is not None and one._alive:
            self._emit("DialEnd", _CALL, one.snapshot_body("Dest") + (("DialStatus", "NOANSWER"),))
            self._hangup_from(one, 16, None)
        if record.on_done is not None:
            record.on_done(3, None)

    def _originate_gone(self, chan: Channel) -> None:
        """The originated channel went away before it was answered: reason 1 (hangup)."""
        record = chan._originate
        if record is None or record.finished or record.one is not chan:
            return
        record.finished = True
        if record.timer is not None:
            self._cancel_timers([record.timer])
        if record.on_done is not None:
            record.on_done(1, None)

    # -- Redirect -------------------------------------------------------------------------------

    def redirect(self, channel: Channel, context: str, exten: str, priority: int) -> bool:
        """Send a channel to context/exten/priority (the Redirect action). A
        bridged channel leaves its bridge (its peer is hung up); the channel then
        runs the dialplan there (and is hung up if nothing is there, as Asterisk
        does). False if the channel is gone."""
        with self.lock:
            if not channel._alive:
                return False
            dial = channel._dial
            if dial is not None:
                other = dial.b if channel is dial.a else dial.a
                bridge = dial.bridge
                self._cancel_timers(dial.timers)
                channel._dial = None
                if bridge is not None and channel in bridge.channels:
                    bridge.channels.remove(channel)
                    channel.bridge_id = ""
                    self._emit("BridgeLeave", _CALL, bridge.body() + channel.snapshot_body())
                if other is not None and other._alive:
                    if bridge is not None and other in bridge.channels:
                        bridge.channels.remove(other)
                        other.bridge_id = ""
                        self._emit("BridgeLeave", _CALL, bridge.body() + other.snapshot_body())
                    if other is dial.b and dial.answered_at is None:
                        self._dial_end_event(dial, "CANCEL")
                    other._dial = None
                    self._end(other, 16)
                if bridge is not None:
                    self._emit("BridgeDestroy", _CALL, bridge.body())
            channel._gen += 1
            channel._echo = False
            channel.context, channel.exten, channel.priority = context, exten, priority
            if channel._runs_pbx:
                self._run(channel)
            else:
                self._start_pbx(channel)
            return True

    # -- traffic --------------------------------------------------------------------------------

    def start_traffic(self, calls_per_second: float, *, seed: int | None = None) -> None:
        """Random calls among the registered endpoints at about ``calls_per_second``
        (Poisson arrivals), until :meth:`stop_traffic`. If fewer than two
        endpoints are registered, all are registered first (with their events).
        Outcomes are weighted like an office: 70 % answered (talk 3-30 s, either
        side hangs up), 12 % no answer (Dial's 20 s), 8 % busy, 5 % the caller
        gives up while it rings, 5 % echo test. ``seed`` makes it repeatable."""
        if not calls_per_second > 0:
            raise ValueError("calls_per_second must be > 0")
        with self.lock:
            self._check_open()
            self._traffic_token += 1
            self._traffic_rng = random.Random(seed)
            self._traffic_rate = float(calls_per_second)
            if sum(1 for ep in self._endpoints.values() if ep.contacts) < 2:
                for name in self._endpoints:
                    self.register(name)
            self._schedule_traffic(self._traffic_token, self.clock.monotonic())

    def stop_traffic(self) -> None:
        """No new generated calls; calls in progress finish normally."""
        with self.lock:
            self._traffic_token += 1

    def _schedule_traffic(self, token: int, after: float) -> None:
        # From when the previous call was due, not when it ran: a busy process
        # catches up instead of slowing the rate down.
        due = after + self._traffic_rng.expovariate(self._traffic_rate)  # type: ignore[union-attr]
        self._later(max(0.0, due - self.clock.monotonic()), self._traffic_tick, token, due)

    def _traffic_tick(self, token: int, due: float) -> None:
        if token != self._traffic_token or self._traffic_rng is None:
            return
        rng = self._traffic_rng
        self._schedule_traffic(token, due)
        registered = [name for name, ep in self._endpoints.items() if ep.contacts]
        if len(registered) < 2:
            return
        caller, callee = rng.sample(registered, 2)
        roll = rng.random()
        if roll < 0.70:
            self.call(
                caller,
                callee,
                answer_after=rng.uniform(1.0, 8.0),
                talk_for=rng.uniform(3.0, 30.0),
                hangup_by=rng.choice(("caller", "callee")),
            )
        elif roll < 0.82:
            self.call(caller, callee, outcome="noanswer", talk_for=None)
        elif roll < 0.90:
            self.call(caller, callee, outcome="busy", talk_for=None)
        elif roll < 0.95:
            call = self.call(caller, callee, answer_after=None, talk_for=None)
            self._later(rng.uniform(2.0, 10.0), self._traffic_give_up, call)
        else:
            self.call(caller, "9999", talk_for=rng.uniform(2.0, 10.0))

    def _traffic_give_up(self, call: Call) -> None:
        self._caller_bye_if_alive(call._a)


def _parse_caller_id(text: str) -> tuple[str, str]:
    """``"Lab <5551234>"`` → ("Lab", "5551234"); ``"5551234"`` → ("", "5551234");
    a bare name → (name, ""), as ast_callerid_parse does."""
    text = text.strip()
    if not text:
        return "", ""
    if "<" in text and text.endswith(">"):
        name, _, num = text[:-1].partition("<")
        return name.strip().strip('"'), num.strip()
    if all(ch in "0123456789+*#-() " for ch in text):
        return "", text
    return text.strip('"'), ""
