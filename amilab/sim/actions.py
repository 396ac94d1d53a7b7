"""The PBX-facing AMI actions of the simulated Asterisk, and their registry.

The session (amilab/sim/session.py) handles Login, Logoff, Challenge, Events,
Filter and ListCommands itself; every other action is looked up here by name
(case-insensitively, as Asterisk's action_find does) and run with an
:class:`ActionCall`. Handlers build Asterisk 22's exact replies: header names,
order, texts, and the ActionID where Asterisk puts it. Sources: main/manager.c,
main/manager_doc.xml, apps/app_queue.c, res/res_pjsip/*.c, compared byte for
byte with the Asterisk 22.10.1 recordings in tests/data/transcripts.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from amilab.protocol import Message
from amilab.sim import classes, clicommands
from amilab.sim.pbx import DEVICE_STATES, PbxEvent

if TYPE_CHECKING:
    from amilab.sim.pbx import PBX, Channel, Contact, Endpoint

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]

#: CoreSettings values as the recorded Asterisk 22.10.1 reports them
#: (tests/data/transcripts/f_coresettings.txt); AMIversion from include/asterisk/manager.h.
AMI_VERSION = "11.0.0"
ASTERISK_VERSION = clicommands.ASTERISK_VERSION

#: Longest ChannelId/OtherChannelId Originate accepts (AST_MAX_PUBLIC_UNIQUEID,
#: include/asterisk/channel.h).
MAX_PUBLIC_UNIQUEID = 149

#: The lab's pjsip.conf gives auth ``1001`` the password ``1001pass``
#: (tests/data/transcripts/h_pjsip_show.txt, AuthDetail).
LAB_PASSWORD_SUFFIX = "pass"

#: Originate's reason codes (main/pbx.c pbx_dial_reason via include/asterisk/frame.h).
REASON_ANSWERED = 4


@dataclass(frozen=True)
class Caller:
    """Who runs the action, as far as a handler may need to know."""

    username: str
    write: int  #: the user's write class mask (Originate's app blacklist, GetVar SHELL)
    address: str


class ManagerView(Protocol):
    """What the manager half offers to actions (implemented by the server)."""

    def run_cli(self, line: str) -> str | None:
        """Output of a ``manager ...`` CLI command; None when it is not one."""

    def reload(self) -> str:
        """Re-read manager.conf; "" on success, else the error text."""


@dataclass
class ActionCall:
    """One action being run.

    Handlers call :attr:`reply` exactly once with every message of the answer
    (response first, then list items and the Complete event), each a list of
    ``(name, value)`` in wire order with the ActionID already placed. It may be
    called later from another thread (a sync Originate answers when the callee
    does); until then the session runs no further action and holds its events,
    like Asterisk's blocked session thread.
    """

    request: Message
    caller: Caller
    pbx: PBX
    manager: ManagerView
    reply: Callable[[list[Headers]], None]


@dataclass(frozen=True)
class ActionSpec:
    name: str  #: registered spelling, e.g. "CoreShowChannels"
    privilege: int  #: write classes; any shared bit suffices; 0 = anyone logged in
    synopsis: str  #: the ListCommands text
    handler: Callable[[ActionCall], None]


#: Every PBX action, keyed by ``name.lower()``.
ACTIONS: dict[str, ActionSpec] = {}


def _action(
    name: str, privilege: int, synopsis: str
) -> Callable[[Callable[[ActionCall], None]], Callable[[ActionCall], None]]:
    """Register a handler under Asterisk's name, write class and ListCommands synopsis."""

    def register(handler: Callable[[ActionCall], None]) -> Callable[[ActionCall], None]:
        ACTIONS[name.lower()] = ActionSpec(name, privilege, synopsis, handler)
        return handler

    return register


# -- reply helpers -------------------------------------------------------------------------


def _header(call: ActionCall, name: str) -> str:
    """The first value of ``name`` in the request, "" if absent (astman_get_header)."""
    return call.request.get(name) or ""


def _action_id(call: ActionCall) -> Headers:
    """``[("ActionID", id)]`` if the request had a non-empty ActionID, else []."""
    value = _header(call, "ActionID")
    return [("ActionID", value)] if value else []


def _response(call: ActionCall, response: str, message: str | None = None) -> Headers:
    """``Response:``, ``[ActionID]``, ``[Message:]`` (astman_send_response_full)."""
    pairs = [("Response", response), *_action_id(call)]
    if message is not None:
        pairs.append(("Message", message))
    return pairs


def _error(call: ActionCall, message: str) -> None:
    """Answer ``Response: Error`` with ``message`` (astman_send_error)."""
    call.reply([_response(call, "Error", message)])


def _ack(call: ActionCall, message: str) -> None:
    """Answer ``Response: Success`` with ``message`` (astman_send_ack)."""
    call.reply([_response(call, "Success", message)])


def _item(call: ActionCall, event: str, body: Iterable[tuple[str, str]]) -> Headers:
    """A list item with the ActionID right after ``Event:``, where main/manager.c
    and res_pjsip put it."""
    return [("Event", event), *_action_id(call), *body]


def _send_list(call: ActionCall, message: str, items: list[Headers], complete: str) -> None:
    """Answer a list action: the ``EventList: start`` ack, the items as given
    (their ActionID already placed), and ``<complete>`` with ``ListItems``
    (astman_send_listack, astman_send_list_complete_start)."""
    ack = [("Response", "Success"), *_action_id(call), ("EventList", "start"), ("Message", message)]
    end = [
        ("Event", complete),
        *_action_id(call),
        ("EventList", "Complete"),
        ("ListItems", str(len(items))),
    ]
    call.reply([ack, *items, end])


# -- helpers -------------------------------------------------------------------------------


def _leading_int(text: str) -> int | None:
    """sscanf("%30d") as Asterisk uses it: the integer a string starts with, or None."""
    match = re.match(r"\s*([+-]?\d{1,30})", text)
    return int(match[1]) if match else None


def _is_true(text: str) -> bool:
    """ast_true (main/utils.c)."""
    return text.strip().lower() in ("yes", "true", "y", "t", "1", "on")


def _find_channel(pbx: PBX, name: str) -> Channel | None:
    """ast_channel_get_by_name: the channel of that name (any case), or with that Uniqueid."""
    channel = pbx.find_channel(name)
    if channel is None:
        lowered = name.lower()
        channel = next(
            (c for c in pbx.channels() if c.name.lower() == lowered or c.uniqueid == name), None
        )
    return channel


def _listing_order(pbx: PBX) -> list[Channel]:
    """Channels in the order Asterisk 22's channel container hands them out:
    newest first, as every recording shows (g, n, p, demo2)."""
    return list(reversed(pbx.channels()))


def _duration(seconds: float) -> str:
    whole = max(int(seconds), 0)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


# -- core ----------------------------------------------------------------------------------


@_action("Ping", 0, "Keepalive command.")
def ping(call: ActionCall) -> None:
    now = call.pbx.clock.wall()
    seconds = int(now)
    micros = min(int(round((now - seconds) * 1_000_000)), 999_999)
    call.reply(
        [[*_response(call, "Success"), ("Ping", "Pong"), ("Timestamp", f"{seconds}.{micros:06d}")]]
    )


@_action("CoreStatus", classes.SYSTEM | classes.REPORTING, "Show PBX core status variables.")
def core_status(call: ActionCall) -> None:
    pbx = call.pbx
    with pbx.lock:
        started, reloaded = time.localtime(pbx.started_at), time.localtime(pbx.reloaded_at)
        current, processed = len(pbx.channels()), pbx.processed_calls
    call.reply(
        [
            [
                *_response(call, "Success"),
                ("CoreStartupDate", time.strftime("%Y-%m-%d", started)),
                ("CoreStartupTime", time.strftime("%H:%M:%S", started)),
                ("CoreReloadDate", time.strftime("%Y-%m-%d", reloaded)),
                ("CoreReloadTime", time.strftime("%H:%M:%S", reloaded)),
                ("CoreCurrentCalls", str(current)),
                ("CoreProcessedCalls", str(processed)),
            ]
        ]
    )


@_action(
    "CoreSettings", classes.SYSTEM | classes.REPORTING, "Show PBX core settings (version etc)."
)
def core_settings(call: ActionCall) -> None:
    call.reply(
        [
            [
                *_response(call, "Success"),
                ("AMIversion", AMI_VERSION),
                ("AsteriskVersion", ASTERISK_VERSION),
                ("SystemName", ""),
                ("CoreMaxCalls", "0"),
                ("CoreMaxLoadAvg", "0.000000"),
                ("CoreRunUser", ""),
                ("CoreRunGroup", ""),
                ("CoreMaxFilehandles", "0"),
                ("CoreRealTimeEnabled", "No"),
                ("CoreCDRenabled", "Yes"),
                ("CoreHTTPenabled", "No"),
                ("SoundsSearchCustomDir", "No"),
            ]
        ]
    )


@_action("CoreShowChannels", classes.SYSTEM | classes.REPORTING, "List currently active channels.")
def core_show_channels(call: ActionCall) -> None:
    pbx = call.pbx
    with pbx.lock:
        now = pbx.clock.monotonic()
        items = [
            _item(
                call,
                "CoreShowChannel",
                [
                    *channel.snapshot(),
                    ("Application", channel.application),
                    ("ApplicationData", channel.app_data),
                    ("Duration", _duration(now - channel.created)),
                    ("BridgeId", channel.bridge_id),
                ],
            )
            for channel in _listing_order(pbx)
        ]
    _send_list(call, "Channels will follow", items, "CoreShowChannelsComplete")


@_action("Command", classes.COMMAND, "Execute Asterisk CLI Command.")
def command(call: ActionCall) -> None:
    line = _header(call, "Command")
    if not line:
        _error(call, "No command provided")
        return
    if clicommands.is_blacklisted(line):
        _error(call, "Command blacklisted")
        return
    output = call.manager.run_cli(line)
    if output is not None:
        result = clicommands.CliResult(output, success=not output.startswith("Usage:"))
    else:
        result = clicommands.run(line, call.pbx, call.manager)
    # One Output header per line; the CLI's final newline ends the last line.
    text = result.output[:-1] if result.output.endswith("\n") else result.output
    head = _response(call, "Success" if result.success else "Error", "Command output follows")
    call.reply([[*head, *(("Output", output) for output in text.split("\n"))]])


@_action("Reload", classes.CONFIG | classes.SYSTEM, "Send a reload event.")
def reload(call: ActionCall) -> None:
    status = clicommands.reload_module(call.pbx, call.manager, _header(call, "Module") or None)
    if status in (clicommands.RELOAD_SUCCESS, clicommands.RELOAD_QUEUED):
        _ack(call, "Module Reloaded")
    else:
        _error(call, _RELOAD_ERRORS[status])


#: Reload's error texts by loader result (main/manager.c action_reload).
_RELOAD_ERRORS = {
    clicommands.RELOAD_NOT_FOUND: "No such module",
    clicommands.RELOAD_NOT_IMPLEMENTED: "Module does not support reload",
    clicommands.RELOAD_ERROR: "An unknown error occurred",
    clicommands.RELOAD_IN_PROGRESS: "A reload is in progress",
    clicommands.RELOAD_UNINITIALIZED: "Module not initialized",
}


# -- variables -----------------------------------------------------------------------------


def _allowed_with_auths(text: str, write: int) -> bool:
    """function_capable_string_allowed_with_auths (main/manager.c): SHELL and EVAL
    need the system class."""
    return bool(write & classes.SYSTEM) or ("SHELL" not in text and "EVAL" not in text)


def _variable_scope(call: ActionCall, name: str) -> tuple[bool, Channel | None]:
    """Where GetVar/SetVar act: the named channel, or None (globals) with no name.
    ``(False, None)`` once ``No such channel`` has been answered. Call under pbx.lock."""
    if not name:
        return True, None
    channel = _find_channel(call.pbx, name)
    if channel is None:
        _error(call, "No such channel")
        return False, None
    return True, channel


@_action("Getvar", classes.CALL | classes.REPORTING, "Gets a channel variable or function value.")
def getvar(call: ActionCall) -> None:
    name, variable = _header(call, "Channel"), _header(call, "Variable")
    if not variable:
        _error(call, "No variable specified")
        return
    if not _allowed_with_auths(variable, call.caller.write):
        _error(call, "GetVar Access Forbidden: Variable")
        return
    pbx = call.pbx
    with pbx.lock:
        found, channel = _variable_scope(call, name)
        if not found:
            return
        value = pbx.get_var(channel, variable)
    call.reply([[*_response(call, "Success"), ("Variable", variable), ("Value", value)]])


@_action("Setvar", classes.CALL, "Sets a channel variable or function value.")
def setvar(call: ActionCall) -> None:
    name, variable, value = (
        _header(call, "Channel"),
        _header(call, "Variable"),
        _header(call, "Value"),
    )
    if not variable:
        _error(call, "No variable specified")
        return
    pbx = call.pbx
    with pbx.lock:
        found, channel = _variable_scope(call, name)
        if not found:
            return
        try:
            pbx.set_var(channel, variable, value)
        except ValueError:
            _error(call, "Variable not set")
            return
    _ack(call, "Variable Set")


# -- channel control -----------------------------------------------------------------------


@_action("Hangup", classes.SYSTEM | classes.CALL, "Hangup channel.")
def hangup(call: ActionCall) -> None:
    name = _header(call, "Channel")
    if not name:
        _error(call, "No channel specified")
        return
    cause = 0  # 0 = leave the channel's hangup cause alone, as an invalid Cause does
    if _header(call, "Cause"):
        try:
            cause = int(_header(call, "Cause"))
        except ValueError:
            cause = 0
        if not 0 <= cause <= 127:
            log.info("Invalid 'Cause: %s' in manager action Hangup", _header(call, "Cause"))
            cause = 0
    pbx = call.pbx
    if not name.startswith("/"):
        with pbx.lock:
            channel = _find_channel(pbx, name)
            if channel is None:
                log.info("Request to hangup non-existent channel: %s", name)
                _error(call, "No such channel")
                return
            pbx.hangup(channel, cause)
        _ack(call, "Channel Hungup")
        return
    if len(name) < 2 or not name.endswith("/"):
        _error(call, "Regex format invalid, Channel param should be /regex/")
        return
    try:
        pattern = re.compile(name[1:-1])
    except re.error:
        _error(call, f"Regex compile failed on: {name}")
        return
    with pbx.lock:
        matched = [channel for channel in _listing_order(pbx) if pattern.search(channel.name)]
        for channel in matched:
            pbx.hangup(channel, cause)
    items = [[("Event", "ChannelHungup"), ("Channel", c.name), *_action_id(call)] for c in matched]
    _send_list(call, "Channels hung up will follow", items, "ChannelsHungupListComplete")


def _priority(text: str) -> int:
    """Redirect's priority: the number, or -1 for anything else, as
    ast_findlabel_extension answers for a label the lab dialplan does not have."""
    number = _leading_int(text)
    return -1 if number is None else number


def _publish(pbx: PBX, event: PbxEvent) -> None:
    """Send an event the action itself raises (OriginateResponse) to every
    listener of the PBX's event stream. Runs under the PBX lock, like the
    PBX's own events."""
    publish = getattr(pbx, "publish", None)
    if publish is not None:
        publish(event)
    else:  # INTERIM: pbx.py has no public publish() yet (asked for in the report)
        pbx._emit(event.name, event.privilege, event.body)


def _extension_exists(pbx: PBX, context: str, exten: str, priority: int) -> bool:
    """ast_exists_extension over the simulated dialplan."""
    steps = pbx.dialplan.get(context, {}).get(exten, [])
    return any(number == priority for number, _, _ in steps)


@_action("Redirect", classes.CALL, "Redirect (transfer) a call.")
def redirect(call: ActionCall) -> None:
    name, name2 = _header(call, "Channel"), _header(call, "ExtraChannel")
    exten, exten2 = _header(call, "Exten"), _header(call, "ExtraExten")
    context, context2 = _header(call, "Context"), _header(call, "ExtraContext")
    priority, priority2 = _header(call, "Priority"), _header(call, "ExtraPriority")
    pbx = call.pbx
    for value, missing in (
        (name, "Channel"),
        (context, "Context"),
        (exten, "Exten"),
        (priority, "Priority"),
    ):
        if not value:
            _error(call, f"{missing} not specified")
            return
    with pbx.lock:
        pi = _priority(priority)
        if pi < 1:
            _error(call, "Priority is invalid")
            return
        pi2 = pi
        if name2 and context2:
            if not exten2:
                _error(call, "ExtraExten not specified")
                return
            if not priority2:
                _error(call, "ExtraPriority not specified")
                return
            pi2 = _priority(priority2)
            if pi2 < 1:
                _error(call, "ExtraPriority is invalid")
                return
        channel = _find_channel(pbx, name)
        if channel is None:
            _error(call, f"Channel does not exist: {name}")
            return
        if not name2:
            _ack(call, "Redirect successful") if pbx.redirect(
                channel, context, exten, pi
            ) else _error(call, "Redirect failed")
            return
        channel2 = _find_channel(pbx, name2)
        if channel2 is None:
            _error(call, f"ExtraChannel does not exist: {name2}")
            return
        if not pbx.redirect(channel, context, exten, pi):
            _error(call, "Redirect failed")
            return
        if context2:
            moved = pbx.redirect(channel2, context2, exten2, pi2)
        else:
            moved = pbx.redirect(channel2, context, exten, pi)
    _ack(call, "Dual Redirect successful") if moved else _error(call, "Secondary redirect failed")


# -- Originate -----------------------------------------------------------------------------

#: Applications that need the system class on top of originate (first match
#: decides; case-insensitive substrings). Asterisk 22 main/manager.c.
_SYSTEM_APPS = (
    "agi",
    "dbdeltree",
    "exec",
    "externalivr",
    "mixmonitor",
    "originate",
    "reload",
    "system",
)
#: Data substrings (case-sensitive) that need the system class: dialplan
#: functions that reach outside the PBX. Asterisk 22 main/manager.c.
_SYSTEM_DATA = ("CURL", "DB", "EVAL", "FILE", "ODBC", "REALTIME", "SHELL")
#: Queue()'s AGI argument is its sixth (apps/app_queue.c).
_QUEUE_AGI_ARG = 5


def _app_allowed(app: str, data: str, write: int) -> bool:
    """Asterisk 22's originate blacklist: may a user with ``write`` run ``app(data)``?"""
    lowered = app.lower()
    if any(word in lowered for word in _SYSTEM_APPS):
        return bool(write & classes.SYSTEM)
    if lowered == "queue":
        args = data.split(",")
        if len(args) > _QUEUE_AGI_ARG and args[_QUEUE_AGI_ARG].strip():
            return bool(write & (classes.SYSTEM | classes.AGI))
    if any(word in data for word in _SYSTEM_DATA):
        return bool(write & classes.SYSTEM)
    return True


def parse_callerid(text: str) -> tuple[str, str]:
    """``(name, number)`` from ``"Name" <number>`` (ast_callerid_parse)."""
    text = text.strip()
    if "<" in text and ">" in text[text.index("<") :]:
        start = text.index("<")
        number = text[start + 1 : text.index(">", start)].strip()
        name = text[:start].strip().strip('"').strip()
        return name, number
    if text and re.fullmatch(r"[0-9#*+()\- .]+", text):
        return "", text
    return text.strip('"'), ""


def _variables(request: Message) -> dict[str, str]:
    """Every ``Variable:`` header, each a comma list of ``name=value``
    (astman_get_variables_order)."""
    variables: dict[str, str] = {}
    for header in request.getall("Variable"):
        for item in header.split(","):
            name, sep, value = item.partition("=")
            if sep and name.strip():
                variables[name.strip()] = value
    return variables


@_action("Originate", classes.ORIGINATE, "Originate a call.")
def originate(call: ActionCall) -> None:
    name = _header(call, "Channel")
    exten, context, priority = (
        _header(call, "Exten"),
        _header(call, "Context"),
        _header(call, "Priority"),
    )
    timeout, app, data = (
        _header(call, "Timeout"),
        _header(call, "Application"),
        _header(call, "Data"),
    )
    channel_id, other_id = _header(call, "ChannelId"), _header(call, "OtherChannelId")
    pbx = call.pbx
    if not name:
        _error(call, "Channel not specified")
        return
    if len(channel_id) > MAX_PUBLIC_UNIQUEID or len(other_id) > MAX_PUBLIC_UNIQUEID:
        _error(call, f"Uniqueid length exceeds maximum of {MAX_PUBLIC_UNIQUEID}\n")
        return
    pi = 0
    if priority:
        # A number is taken as it is (even 0 or negative); anything else must
        # be a label, and the lab dialplan has none (ast_findlabel_extension).
        number = _leading_int(priority)
        if number is None:
            _error(call, "Invalid priority")
            return
        pi = number
    timeout_ms = 30000
    if timeout:
        parsed = _leading_int(timeout)
        if parsed is None:
            _error(call, "Invalid timeout")
            return
        timeout_ms = parsed
    tech, slash, resource = name.partition("/")
    if not slash:
        _error(call, "Invalid channel")
        return
    cid_name, cid_num = parse_callerid(_header(call, "CallerID"))
    if app and not _app_allowed(app, data, call.caller.write):
        _error(call, "Originate Access Forbidden: app or data blacklisted")
        return
    if pi and not _extension_exists(pbx, context, exten, pi):
        _error(call, "Extension does not exist.")
        return
    if not app and not pi:
        _error(call, "Originate with 'Exten' requires 'Context' and 'Priority'")
        return
    is_async = _is_true(_header(call, "Async"))
    action_id = _action_id(call)

    def answered_sync(reason: int, channel: Channel | None) -> None:
        if reason == REASON_ANSWERED:
            _ack(call, "Originate successfully queued")
        else:
            _error(call, "Originate failed")

    def answered_async(reason: int, channel: Channel | None) -> None:
        destination = (
            [("Application", app), ("Data", data)]
            if app
            else [("Context", context), ("Exten", exten)]
        )
        body = [
            *action_id,
            ("Response", "Success" if reason == REASON_ANSWERED else "Failure"),
            ("Channel", channel.name if channel else f"{tech}/{resource}"),
            *destination,
            ("Reason", str(reason)),
            ("Uniqueid", channel.uniqueid if channel else channel_id or "<unknown>"),
            ("CallerIDNum", cid_num or "<unknown>"),
            ("CallerIDName", cid_name or "<unknown>"),
        ]
        _publish(pbx, PbxEvent("OriginateResponse", classes.CALL, tuple(body)))

    try:
        pbx.originate(
            channel=name,
            context=context or None,
            exten=exten or None,
            priority=pi or 1,
            application=app or None,
            data=data,
            timeout_ms=timeout_ms,
            caller_id=_header(call, "CallerID"),
            variables=_variables(call.request),
            account=_header(call, "Account"),
            channel_id=channel_id or None,
            on_done=answered_async if is_async else answered_sync,
        )
    except ValueError as exc:
        _error(call, str(exc) or "Originate failed")
        return
    if is_async:
        _ack(call, "Originate successfully queued")


# -- PJSIP ---------------------------------------------------------------------------------


def _aor_names(endpoint: Endpoint) -> list[str]:
    return [name.strip() for name in endpoint.aor.split(",") if name.strip()]


def _contacts_text(contacts: Iterable[Contact]) -> str:
    """``<aor>/<uri>,`` for each contact, trailing comma included
    (res/res_pjsip/location.c ast_sip_contact_to_str)."""
    return "".join(f"{contact.aor}/{contact.uri}," for contact in contacts)


@_action("PJSIPShowEndpoints", classes.SYSTEM, "Lists PJSIP endpoints.")
def pjsip_show_endpoints(call: ActionCall) -> None:
    pbx = call.pbx
    with pbx.lock:
        endpoints = pbx.endpoints()
        if not endpoints:
            _error(call, "No endpoints found\n")
            return
        items = []
        for endpoint in endpoints:
            contacts = [
                ("Contacts", _contacts_text(c for c in endpoint.contacts if c.aor == aor))
                for aor in _aor_names(endpoint)
            ]
            items.append(
                _item(
                    call,
                    "EndpointList",
                    [
                        ("ObjectType", "endpoint"),
                        ("ObjectName", endpoint.name),
                        ("Transport", endpoint.transport),
                        ("Aor", endpoint.aor),
                        ("Auths", endpoint.auths),
                        ("OutboundAuths", endpoint.outbound_auths),
                        *contacts,
                        ("DeviceState", _device_state_text(endpoint.device_state)),
                        ("ActiveChannels", str(endpoint.active_channels)),
                    ],
                )
            )
    _send_list(
        call,
        "A listing of Endpoints follows, presented as EndpointList events",
        items,
        "EndpointListComplete",
    )


def _device_state_text(token: str) -> str:
    return DEVICE_STATES.get(token, "Unknown")


def _contact_fields(contact: Contact) -> Headers:
    """A contact's configuration in sorcery's hash-bucket order, as the
    recording h2 shows it (res/res_pjsip/location.c)."""
    return [
        ("ViaAddr", contact.via_addr),
        ("QualifyTimeout", f"{contact.qualify_timeout:.6f}"),
        ("Qualify2xxOnly", "false"),
        ("CallId", contact.call_id),
        ("RegServer", contact.reg_server),
        ("PruneOnBoot", "no"),
        ("Path", ""),
        ("Endpoint", contact.endpoint),
        ("ViaPort", str(contact.via_port)),
        ("AuthenticateQualify", "no"),
        ("Uri", contact.uri),
        ("QualifyFrequency", str(contact.qualify_frequency)),
        ("UserAgent", contact.user_agent),
        ("ExpirationTime", str(contact.expiration)),
        ("OutboundProxy", ""),
    ]


def _roundtrip(contact: Contact) -> str:
    return str(contact.rtt_usec) if contact.status == "Reachable" else "N/A"


@_action("PJSIPShowContacts", classes.SYSTEM, "Lists PJSIP Contacts.")
def pjsip_show_contacts(call: ActionCall) -> None:
    pbx = call.pbx
    with pbx.lock:
        contacts = pbx.contacts()
        if not contacts:
            _error(call, "No Contacts found\n")
            return
        items = [
            _item(
                call,
                "ContactList",
                [
                    ("ObjectType", "contact"),
                    ("ObjectName", contact.object_name),
                    *_contact_fields(contact),
                    ("Status", contact.status),
                    ("RoundtripUsec", _roundtrip(contact)),
                ],
            )
            for contact in contacts
        ]
    _send_list(
        call,
        "A listing of Contacts follows, presented as ContactList events",
        items,
        "ContactListComplete",
    )


def _aor_fields(name: str, contacts: list[Contact]) -> Headers:
    """An AOR's configuration in sorcery's hash-bucket order, as recording h
    shows it; the lab's AORs are ``max_contacts=1`` with qualify set per
    registration (res/res_pjsip/location.c)."""
    frequency = contacts[0].qualify_frequency if contacts else 0
    return [
        ("ObjectType", "aor"),
        ("ObjectName", name),
        ("MinimumExpiration", "60"),
        ("DefaultExpiration", "3600"),
        ("QualifyTimeout", "3.000000"),
        ("Qualify2xxOnly", "false"),
        ("Mailboxes", ""),
        ("SupportPath", "false"),
        ("RemoveUnavailable", "false"),
        ("VoicemailExtension", ""),
        ("MaxContacts", "1"),
        ("AuthenticateQualify", "false"),
        ("Contacts", _contacts_text(contacts)),
        ("MaximumExpiration", "7200"),
        ("QualifyFrequency", str(frequency)),
        ("RemoveExisting", "false"),
        ("OutboundProxy", ""),
    ]


@_action("PJSIPShowAors", classes.SYSTEM, "Lists PJSIP AORs.")
def pjsip_show_aors(call: ActionCall) -> None:
    pbx = call.pbx
    with pbx.lock:
        items = [
            _item(call, "AorList", _aor_fields(aor, [c for c in endpoint.contacts if c.aor == aor]))
            for endpoint in pbx.endpoints()
            for aor in _aor_names(endpoint)
        ]
    if not items:
        _error(call, "No AORs found\n")
        return
    _send_list(
        call, "A listing of AORs follows, presented as AorList events", items, "AorListComplete"
    )


@_action("PJSIPShowEndpoint", classes.SYSTEM, "Detail listing of an endpoint and its objects.")
def pjsip_show_endpoint(call: ActionCall) -> None:
    name = _header(call, "Endpoint")
    if not name:
        _error(call, "PJSIPShowEndpoint requires an endpoint name\n")
        return
    if name.lower().startswith("pjsip/"):
        name = name[6:]
    pbx = call.pbx
    with pbx.lock:
        endpoint = next((e for e in pbx.endpoints() if e.name == name), None)
        if endpoint is None:
            _error(call, f"Unable to retrieve endpoint {name}\n")
            return
        items = [_item(call, "EndpointDetail", _endpoint_detail(endpoint))]
        for auth in (a.strip() for a in endpoint.auths.split(",") if a.strip()):
            items.append(_item(call, "AuthDetail", _auth_detail(auth, endpoint)))
        for aor in _aor_names(endpoint):
            contacts = [c for c in endpoint.contacts if c.aor == aor]
            detail = [
                *_aor_fields(aor, contacts),
                ("TotalContacts", str(len(contacts))),
                ("ContactsRegistered", str(len(contacts))),
                ("EndpointName", endpoint.name),
            ]
            items.append(_item(call, "AorDetail", detail))
            for contact in contacts:
                items.append(_item(call, "ContactStatusDetail", _contact_status_detail(contact)))
    _send_list(
        call,
        "Following are Events for each object associated with the Endpoint",
        items,
        "EndpointDetailComplete",
    )


def _auth_detail(auth: str, endpoint: Endpoint) -> Headers:
    """An auth section as AuthDetail lists it (recording h). Asterisk sends the
    SIP password in clear to any user with the system class; the simulator shows
    the lab's made-up one."""
    return [
        ("ObjectType", "auth"),
        ("ObjectName", auth),
        ("OauthSecret", ""),
        ("PasswordDigest", ""),
        ("SupportedAlgorithmsUas", "MD5"),
        ("RefreshToken", ""),
        ("Username", auth),
        ("Md5Cred", ""),
        ("Realm", ""),
        ("AuthType", "userpass"),
        ("Password", f"{auth}{LAB_PASSWORD_SUFFIX}"),
        ("SupportedAlgorithmsUac", "MD5"),
        ("NonceLifetime", "32"),
        ("OauthClientid", ""),
        ("EndpointName", endpoint.name),
    ]


def _contact_status_detail(contact: Contact) -> Headers:
    """ContactStatusDetail (res/res_pjsip/pjsip_options.c); field order
    UNCONFIRMED, no recording shows one."""
    return [
        ("AOR", contact.aor),
        ("URI", contact.uri),
        ("UserAgent", contact.user_agent),
        ("RegExpire", str(contact.expiration)),
        ("ViaAddress", f"{contact.via_addr}:{contact.via_port}"),
        ("CallID", contact.call_id),
        ("Status", contact.status),
        ("RoundtripUsec", _roundtrip(contact)),
        ("EndpointName", contact.endpoint),
        ("ID", contact.object_name),
        ("AuthenticateQualify", "0"),
        ("OutboundProxy", ""),
        ("Path", ""),
        ("QualifyFrequency", str(contact.qualify_frequency)),
        ("QualifyTimeout", f"{contact.qualify_timeout:.3f}"),
    ]


#: EndpointDetail of a lab endpoint in res_pjsip's field order, as recording h
#: shows endpoint 1001 (res/res_pjsip/pjsip_configuration.c); ``{aors}``,
#: ``{auth}``, ``{context}`` and ``{transport}`` are filled in per endpoint.
_ENDPOINT_DETAIL = """\
RpidImmediate: false
Webrtc: no
Ignore183WithoutSdp: false
SendAoc: false
DeviceStateBusyAt: 0
T38UdptlMaxdatagram: 0
CodecPrefsIncomingAnswer: prefer:pending, operation:intersect, keep:all, transcode:allow
SecurityNegotiation: no
DtlsRekey: 0
RtpPortEnd: 0
NamedPickupGroup:
DirectMediaMethod: invite
SendRpid: false
PickupGroup:
SdpSession: Asterisk
DtlsVerify: No
MessageContext:
Tenantid:
Mailboxes:
RecordOnFeature: automixmon
DtlsPrivateKey:
DtlsFingerprint: SHA-256
OverlapContext:
OutgoingCallOfferPref: remote_merge
RtpPortStart: 0
FromDomain:
TimersSessExpires: 1800
NamedCallGroup:
DtlsCipher:
MediaEncryptionOptimistic: false
SuppressQ850ReasonHeaders: false
Aors: {aors}
IdentifyBy: username,ip
CalleridPrivacy: allowed_not_screened
MwiSubscribeReplacesUnsolicited: no
CosAudio: 0
FollowEarlyMediaFork: true
Context: {context}
RtpSymmetric: false
Transport: {transport}
MohSuggest: default
T38Udptl: false
FaxDetect: false
T38BindUdptlToMediaAddress: false
TosVideo: 0
SrtpTag32: false
ReferBlindProgress: true
MaxAudioStreams: 1
Bundle: false
UseAvpf: false
CallGroup:
SendConnectedLine: yes
FaxDetectTimeout: 0
SdpOwner: -
ForceRport: true
CalleridTag:
RtpTimeoutHold: 0
SuppressMohOnSendonly: false
UsePtime: false
MediaAddress:
VoicemailExtension:
RtpTimeout: 0
StirShaken: no
SetVar:
ContactAcl:
PreferredCodecOnly: false
GeolocOutgoingCallProfile:
ForceAvp: false
RecordOffFeature: automixmon
FromUser:
SendDiversion: true
SendHistoryInfo: false
T38UdptlIpv6: false
ToneZone:
Language:
AllowSubscribe: true
RtpIpv6: false
Callerid: <unknown>
MohPassthrough: false
CosVideo: 0
DtlsAutoGenerateCert: No
AsymmetricRtpCodec: false
GeolocIncomingCallProfile:
IceSupport: false
AggregateMwi: true
OneTouchRecording: false
MwiFromUser:
RedirectMethod: user
Accountcode:
CodecPrefsOutgoingAnswer: prefer:pending, operation:intersect, keep:all, transcode:allow
Allow: (ulaw)
RewriteContact: false
UserEqPhone: false
RtpEngine: asterisk
FollowRedirectMethods:
SubscribeContext:
NotifyEarlyInuseRinging: false
IncomingMwiMailbox:
IncomingCallOfferPref: local
AllowUnauthenticatedOptions: false
Auth: {auth}
DirectMediaGlareMitigation: none
TrustIdInbound: false
StirShakenProfile:
BindRtpToMediaAddress: false
DisableDirectMediaOnNat: false
MediaEncryption: no
MediaUseReceivedTransport: false
AllowOverlap: true
DtmfMode: rfc4733
OutboundAuth:
TosAudio: 0
DtlsCertFile:
DtlsCaPath:
DtlsSetup: active
ConnectedLineMethod: invite
G726NonStandard: false
100rel: yes
Timers: yes
DirectMedia: true
Acl:
TimersMinSe: 90
TrustIdOutbound: false
SubMinExpiry: 0
RtcpMux: false
MaxVideoStreams: 1
AcceptMultipleSdpAnswers: false
CodecPrefsIncomingOffer: prefer:pending, operation:intersect, keep:all, transcode:allow
CodecPrefsOutgoingOffer: prefer:pending, operation:union, keep:all, transcode:allow
TrustConnectedLine: yes
SendPai: false
RtpKeepalive: 0
T38UdptlEc: none
T38UdptlNat: false
AllowTransfer: true
DtlsCaFile:
OutboundProxy:
InbandProgress: false
"""


def _endpoint_detail(endpoint: Endpoint) -> Headers:
    filled = _ENDPOINT_DETAIL.format(
        aors=endpoint.aor,
        auth=endpoint.auths,
        context=endpoint.context,
        transport=endpoint.transport,
    )
    fields = [
        (name, value.lstrip())
        for name, _, value in (line.partition(":") for line in filled.splitlines())
    ]
    return [
        ("ObjectType", "endpoint"),
        ("ObjectName", endpoint.name),
        *fields,
        ("DeviceState", _device_state_text(endpoint.device_state)),
        ("ActiveChannels", str(endpoint.active_channels)),
    ]


# -- queues (apps/app_queue.c; class 0) ---------------------------------------------------


@_action("QueueStatus", 0, "Show queue status.")
def queue_status(call: ActionCall) -> None:
    queue_filter, member_filter = _header(call, "Queue"), _header(call, "Member")
    last = _action_id(call)  # app_queue.c writes ActionID as the last field
    items: list[Headers] = []
    pbx = call.pbx
    with pbx.lock:
        for queue in pbx.queues():
            if queue_filter and queue.name.lower() != queue_filter.lower():
                continue
            if not member_filter:
                items.append(
                    [
                        ("Event", "QueueParams"),
                        ("Queue", queue.name),
                        ("Max", str(queue.max)),
                        ("Strategy", queue.strategy),
                        ("Calls", str(queue.calls)),
                        ("Holdtime", str(queue.holdtime)),
                        ("TalkTime", str(queue.talktime)),
                        ("Completed", str(queue.completed)),
                        ("Abandoned", str(queue.abandoned)),
                        ("ServiceLevel", str(queue.service_level)),
                        ("ServicelevelPerf", f"{queue.service_level_perf:2.1f}"),
                        ("ServicelevelPerf2", f"{queue.service_level_perf2:2.1f}"),
                        ("Weight", str(queue.weight)),
                        *last,
                    ]
                )
            for member in queue.members:
                if member_filter and member_filter not in (member.location, member.name):
                    continue
                items.append(
                    [
                        ("Event", "QueueMember"),
                        ("Queue", queue.name),
                        ("Name", member.name),
                        ("Location", member.location),
                        ("StateInterface", member.state_interface),
                        ("Membership", member.membership),
                        ("Penalty", str(member.penalty)),
                        ("CallsTaken", str(member.calls_taken)),
                        ("LastCall", str(member.last_call)),
                        ("LastPause", str(member.last_pause)),
                        ("LoginTime", str(member.login_time)),
                        ("InCall", str(int(member.in_call))),
                        ("Status", str(member.status)),
                        ("Paused", str(int(member.paused))),
                        ("PausedReason", member.paused_reason),
                        ("Wrapuptime", str(member.wrapuptime)),
                        *last,
                    ]
                )
            for entry in queue.entries:
                items.append(
                    [
                        ("Event", "QueueEntry"),
                        ("Queue", queue.name),
                        ("Position", str(entry.position)),
                        ("Channel", entry.channel),
                        ("Uniqueid", entry.uniqueid),
                        ("CallerIDNum", entry.caller_num or "unknown"),
                        ("CallerIDName", entry.caller_name or "unknown"),
                        ("ConnectedLineNum", entry.connected_num or "unknown"),
                        ("ConnectedLineName", entry.connected_name or "unknown"),
                        ("Wait", str(entry.wait)),
                        ("Priority", str(entry.priority)),
                        *last,
                    ]
                )
    _send_list(call, "Queue status will follow", items, "QueueStatusComplete")


#: Device states (numeric, main/devicestate.c) in which a member counts as
#: logged in / available for QueueSummary.
_DEVICE_INVALID, _DEVICE_UNAVAILABLE = 4, 5
_DEVICE_IDLE = (0, 1)  # unknown, not in use


@_action("QueueSummary", 0, "Show queue summary.")
def queue_summary(call: ActionCall) -> None:
    queue_filter = _header(call, "Queue")
    items: list[Headers] = []
    pbx = call.pbx
    with pbx.lock:
        for queue in pbx.queues():
            if queue_filter and queue.name.lower() != queue_filter.lower():
                continue
            logged_in = [
                m for m in queue.members if m.status not in (_DEVICE_INVALID, _DEVICE_UNAVAILABLE)
            ]
            available = [m for m in logged_in if m.status in _DEVICE_IDLE and not m.paused]
            items.append(
                [
                    ("Event", "QueueSummary"),
                    ("Queue", queue.name),
                    ("LoggedIn", str(len(logged_in))),
                    ("Available", str(len(available))),
                    ("Callers", str(len(queue.entries))),
                    ("HoldTime", str(queue.holdtime)),
                    ("TalkTime", str(queue.talktime)),
                    ("LongestHoldTime", str(max((e.wait for e in queue.entries), default=0))),
                    *_action_id(call),
                ]
            )
    _send_list(call, "Queue summary will follow", items, "QueueSummaryComplete")
