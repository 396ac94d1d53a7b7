"""The Asterisk CLI behind the simulated AMI ``Command`` action.

:func:`run` answers one CLI line the way Asterisk 22 prints it: ``core show
version|channels|uptime``, ``dialplan show [context]``, ``pjsip show
endpoints|contacts``, ``module reload [name ...]``; anything else gets
Asterisk's ``No such command`` text. The ``manager ...`` commands belong to the
manager half (ManagerView.run_cli) and are tried before this module.
:func:`reload_module` is the module loader both the Reload action and ``module
reload`` use. Formats come from main/cli.c, main/asterisk.c, main/pbx.c,
main/loader.c and res/res_pjsip; exact texts where the Asterisk 22.10.1
recordings (tests/data/transcripts/i_command.txt) show them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from amilab.sim.pbx import CHANNEL_STATES, DEVICE_STATES

if TYPE_CHECKING:
    from amilab.sim.actions import ManagerView
    from amilab.sim.pbx import PBX, Contact

log = logging.getLogger(__name__)

#: The recorded Asterisk (tests/data/transcripts/i_command.txt).
ASTERISK_VERSION = "22.10.1"
VERSION_LINE = (
    f"Asterisk {ASTERISK_VERSION} built by root @ vm on a x86_64 running Linux"
    " on 2026-11-27 03:05:24 UTC"
)

#: Commands AMI refuses to run (main/manager.c command_blacklist).
COMMAND_BLACKLIST = (("module", "load"), ("module", "unload"), ("restart", "gracefully"))

#: ast_module_reload results (include/asterisk/module.h); also the Reload event's Status.
RELOAD_SUCCESS, RELOAD_QUEUED, RELOAD_NOT_FOUND, RELOAD_ERROR = 0, 1, 2, 3
RELOAD_IN_PROGRESS, RELOAD_UNINITIALIZED, RELOAD_NOT_IMPLEMENTED = 4, 5, 6

#: Subsystems Asterisk reloads by name (main/loader.c reload_classes; the
#: ModuleLoad enum in main/manager_doc.xml).
BUILTIN_RELOADERS = (
    "cdr", "dnsmgr", "extconfig", "enum", "acl", "manager", "http", "logger",
    "features", "dsp", "udptl", "indications", "cel", "plc",
)  # fmt: skip
#: Loaded modules of the lab Asterisk, and whether each has a reload callback.
MODULES = {
    "pbx_config": True,
    "app_queue": True,
    "res_pjsip": True,
    "chan_pjsip": True,
    "app_dial": False,
    "app_echo": False,
}


@dataclass(frozen=True)
class CliResult:
    """A CLI command's output (LF-terminated lines, as the CLI writes them) and
    whether it succeeded (AMI answers ``Response: Error`` otherwise)."""

    output: str
    success: bool = True


def is_blacklisted(line: str) -> bool:
    """Whether AMI must refuse ``line`` (main/manager.c check_blacklist): its
    first words are ``module load``, ``module unload`` or ``restart gracefully``."""
    words = [word.lower() for word in line.split()]
    return any(tuple(words[: len(entry)]) == entry for entry in COMMAND_BLACKLIST)


def run(line: str, pbx: PBX, manager: ManagerView) -> CliResult:
    """Run one CLI line against the simulated PBX."""
    words = line.split()
    entry = _find(words)
    if entry is None:
        best = " ".join(_best_match(words))
        return CliResult(
            f"No such command '{line}' (type 'core show help {best}'"
            " for other possible commands)\n",
            success=False,
        )
    return entry.handler(_Invocation(words[len(entry.words) :], pbx, manager))


def reload_module(pbx: PBX, manager: ManagerView, name: str | None) -> int:
    """Reload ``name`` (None: everything) as main/loader.c ast_module_reload does,
    publish the ``Reload`` event with the result, and return the result."""
    if name is None:
        error = manager.reload()
        if error:
            log.warning("reload: manager.conf was not reloaded: %s", error)
        pbx.emit_reload("All", RELOAD_SUCCESS)
        return RELOAD_SUCCESS
    key = name.lower().removesuffix(".so")
    if key in BUILTIN_RELOADERS:
        status = RELOAD_SUCCESS
        if key == "manager":
            error = manager.reload()
            if error:
                log.warning("reload manager: %s", error)
                status = RELOAD_ERROR
    elif key in MODULES:
        status = RELOAD_SUCCESS if MODULES[key] else RELOAD_NOT_IMPLEMENTED
    else:
        status = RELOAD_NOT_FOUND
    pbx.emit_reload(name, status)
    return status


# -- the command table ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Invocation:
    args: list[str]  #: the words after the command's own
    pbx: PBX
    manager: ManagerView


@dataclass(frozen=True)
class _Entry:
    words: tuple[str, ...]
    handler: Callable[[_Invocation], CliResult]
    usage: str


_COMMANDS: list[_Entry] = []


def _command(
    words: str, usage: str
) -> Callable[[Callable[[_Invocation], CliResult]], Callable[[_Invocation], CliResult]]:
    def register(handler: Callable[[_Invocation], CliResult]) -> Callable[[_Invocation], CliResult]:
        _COMMANDS.append(_Entry(tuple(words.split()), handler, usage))
        return handler

    return register


def _find(words: Sequence[str]) -> _Entry | None:
    """The command whose words start ``words`` (case-insensitive), the longest
    if several do (main/cli.c find_cli with an exact match)."""
    lowered = [word.lower() for word in words]
    matches = [e for e in _COMMANDS if tuple(lowered[: len(e.words)]) == e.words]
    return max(matches, key=lambda e: len(e.words), default=None)


#: Some of Asterisk 22's other CLI commands. The simulator does not run them
#: (they get the ``No such command`` reply); they only shape the ``core show
#: help`` hint, which depends on which commands exist.
_OTHER_COMMANDS = tuple(
    tuple(words.split())
    for words in (
        "core waitfullybooted", "core show help", "core show settings", "core show sysinfo",
        "core show threads", "core show taskprocessors", "core show hints", "core show channel",
        "core show calls", "core set verbose", "core stop now", "core restart now",
        "dialplan reload", "dialplan set global", "module show", "module load", "module unload",
        "pjsip reload", "pjsip show endpoint", "pjsip show aors", "pjsip show auths",
        "pjsip show registrations", "pjsip show channels", "queue show", "logger reload",
        "channel request hangup", "database show", "cdr show status",
    )
)  # fmt: skip


def _has_candidate(prefix: Sequence[str]) -> bool:
    """find_cli(prefix, -1): is there a command of exactly len(prefix) words
    agreeing with all but (possibly) the last word?"""
    lowered = tuple(word.lower() for word in prefix)
    known = (*(e.words for e in _COMMANDS), *_OTHER_COMMANDS)
    return any(len(words) == len(lowered) and words[:-1] == lowered[:-1] for words in known)


def _best_match(words: Sequence[str]) -> list[str]:
    """main/cli.c find_best: the words up to and including the first one that
    leads nowhere, for the ``core show help <best>`` hint."""
    best: list[str] = []
    for word in words:
        best.append(word)
        if not _has_candidate(best):
            break
    return best


def _usage(command: str) -> CliResult:
    """The command's usage text, as the CLI prints it for CLI_SHOWUSAGE (a failure)."""
    entry = next(e for e in _COMMANDS if e.words == tuple(command.split()))
    return CliResult(entry.usage, success=False)


@_command("!", "Usage: !<command>\n       Executes a given shell command\n")
def _bang(invocation: _Invocation) -> CliResult:
    """Asterisk registers ``!`` (main/asterisk.c); over AMI it does nothing. It is
    why the ``core show help`` hint always keeps a second word."""
    return CliResult("")


# -- core show ... -------------------------------------------------------------------------


@_command(
    "core show version", "Usage: core show version\n       Shows Asterisk version information.\n"
)
def _core_show_version(invocation: _Invocation) -> CliResult:
    if invocation.args:
        return _usage("core show version")
    return CliResult(VERSION_LINE + "\n")


_CHANNELS_USAGE = (
    "Usage: core show channels [concise|verbose|count]\n"
    "       Lists currently defined channels and some information about them. If\n"
    "       'concise' is specified, the format is abridged and in a more easily\n"
    "       machine parsable format. If 'verbose' is specified, the output includes\n"
    "       more and longer fields. If 'count' is specified only the channel and call\n"
    "       count is output.\n"
)
#: main/cli.c handle_chanlist column formats.
_CHANNEL_ROW = "{:<20.20} {:<20.20} {:<7.7} {:<30.30}\n"


def _ess(count: int) -> str:
    return "" if count == 1 else "s"


@_command("core show channels", _CHANNELS_USAGE)
def _core_show_channels(invocation: _Invocation) -> CliResult:
    args = [arg.lower() for arg in invocation.args]
    if args not in ([], ["count"]):
        return _usage("core show channels")
    pbx = invocation.pbx
    lines = []
    with pbx.lock:
        channels = list(reversed(pbx.channels()))
        if not args:
            lines.append(_CHANNEL_ROW.format("Channel", "Location", "State", "Application(Data)"))
            for channel in channels:
                location = f"{channel.exten}@{channel.context}:{channel.priority}"
                application = (
                    f"{channel.application}({channel.app_data})"
                    if channel.application
                    else "(None)"
                )
                lines.append(
                    _CHANNEL_ROW.format(
                        channel.name, location, _state_text(channel.state), application
                    )
                )
        calls = len({channel.linkedid for channel in channels})
        processed = pbx.processed_calls
    lines.append(f"{len(channels)} active channel{_ess(len(channels))}\n")
    lines.append(f"{calls} active call{_ess(calls)}\n")
    lines.append(f"{processed} call{_ess(processed)} processed\n")
    return CliResult("".join(lines))


def _state_text(state: int) -> str:
    return CHANNEL_STATES.get(state, f"Unknown ({state})")


def _uptime_text(seconds: int) -> str:
    """main/asterisk.c print_uptimestr: years, weeks, days, hours, minutes and
    seconds, zero parts left out (note the strict ``>``: 60 s stay seconds)."""
    parts = []
    for unit, size in (
        ("year", 365 * 86400),
        ("week", 7 * 86400),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if seconds > size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count} {unit}{_ess(count)}")
    if seconds > 0 or not parts:
        parts.append(f"{seconds} second{_ess(seconds)}")
    return ", ".join(parts)


@_command(
    "core show uptime",
    "Usage: core show uptime [seconds]\n       Shows Asterisk uptime information.\n"
    "       The seconds word returns the uptime in seconds only.\n",
)
def _core_show_uptime(invocation: _Invocation) -> CliResult:
    args = [arg.lower() for arg in invocation.args]
    if args not in ([], ["seconds"]):
        return _usage("core show uptime")
    pbx = invocation.pbx
    uptime, reload = pbx.uptime_seconds(), pbx.last_reload_seconds()
    if args:
        return CliResult(f"System uptime: {uptime}\nLast reload: {reload}\n")
    return CliResult(
        f"System uptime: {_uptime_text(uptime)}\nLast reload: {_uptime_text(reload)}\n"
    )


# -- dialplan show -------------------------------------------------------------------------

#: First line of each extension in the recorded lab's extensions.conf
#: (tests/data/transcripts/i_command.txt); other extensions are numbered after them.
_RECORDED_LINES = {
    ("internal", "9999"): 9,
    ("internal", "1000"): 14,
    ("internal", "8000"): 20,
    ("internal", "1001"): 24,
    ("internal", "1002"): 26,
}


def _config_lines(
    dialplan: dict[str, dict[str, list[tuple[int, str, str]]]],
) -> dict[tuple[str, str], int]:
    """Where each extension starts in the simulated extensions.conf."""
    lines = dict(_RECORDED_LINES)
    following = max(
        (
            first + len(dialplan.get(context, {}).get(exten, []))
            for (context, exten), first in lines.items()
        ),
        default=1,
    )
    for context, extensions in dialplan.items():
        for exten, priorities in extensions.items():
            if (context, exten) not in lines:
                lines[(context, exten)] = following
                following += len(priorities)
    return lines


def _extension_sort_key(exten: str) -> tuple[int, str]:
    """Asterisk lists literal extensions before patterns (``_X.``), each sorted."""
    return (exten.startswith("_"), exten)


@_command(
    "dialplan show",
    "Usage: dialplan show [[exten@]context]\n       Show dialplan\n",
)
def _dialplan_show(invocation: _Invocation) -> CliResult:
    if len(invocation.args) > 1:
        return _usage("dialplan show")
    wanted_exten, wanted_context = None, None
    if invocation.args:
        target = invocation.args[0]
        if "@" in target:
            wanted_exten, _, wanted_context = target.partition("@")
            wanted_context = wanted_context or None
        else:
            wanted_context = target
    pbx = invocation.pbx
    with pbx.lock:
        dialplan = {context: dict(extensions) for context, extensions in pbx.dialplan.items()}
    lines_of = _config_lines(dialplan)
    out: list[str] = []
    contexts = priorities = extensions_shown = 0
    exten_seen = False
    for context in sorted(dialplan):
        if wanted_context is not None and context != wanted_context:
            continue
        contexts += 1
        out.append(f"[ Context '{context}' created by 'pbx_config' ]\n")
        for exten in sorted(dialplan[context], key=_extension_sort_key):
            if wanted_exten is not None and exten != wanted_exten:
                continue
            exten_seen = True
            extensions_shown += 1
            label = f"'{exten}' =>"
            first = lines_of[(context, exten)]
            for offset, (priority, app, data) in enumerate(dialplan[context][exten]):
                step = f"{priority}. {app}({data})"
                out.append(f"  {label:<17} {step:<45} [extensions.conf:{first + offset}]\n")
                label = ""
                priorities += 1
        out.append("\n")
    if wanted_context is not None and contexts == 0:
        return CliResult(f"There is no existence of '{wanted_context}' context\n", success=False)
    if wanted_exten is not None and not exten_seen:
        where = f"{wanted_exten}@{wanted_context}" if wanted_context else wanted_exten
        return CliResult(f"There is no existence of {where} extension\n", success=False)
    out.append(
        f"-= {extensions_shown} {'extension' if extensions_shown == 1 else 'extensions'}"
        f" ({priorities} {'priority' if priorities == 1 else 'priorities'})"
        f" in {contexts} {'context' if contexts == 1 else 'contexts'}. =-\n"
    )
    return CliResult("".join(out))


# -- pjsip show ... (res/res_pjsip/pjsip_cli.c and the object formatters) ----------------

_PJSIP_RULE = "=" * 90 + "\n"
_ENDPOINT_HEADER = (
    "\n"
    " Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>\n"
    "    I/OAuth:  <AuthId/UserName...........................................................>\n"
    "        Aor:  <Aor............................................>  <MaxContact>\n"
    "      Contact:  <Aor/ContactUri..........................> <Hash....> <Status> <RTT(ms)..>\n"
    "  Transport:  <TransportId........>  <Type>  <cos>  <tos>  <BindAddress..................>\n"
    "   Identify:  <Identify/Endpoint.........................................................>\n"
    "        Match:  <criteria.........................>\n"
    "    Channel:  <ChannelId......................................>  <State.....>  <Time.....>\n"
    "        Exten: <DialedExten...........>  CLCID: <ConnectedLineCID.......>\n" + _PJSIP_RULE
)
_CONTACT_HEADER = (
    "\n"
    "  Contact:  <Aor/ContactUri..........................> <Hash....> <Status> <RTT(ms)..>\n"
    + _PJSIP_RULE
)
#: Contact status as the CLI abbreviates it (res/res_pjsip/pjsip_options.c short_status_map).
_SHORT_STATUS = {
    "Reachable": "Avail",
    "Unreachable": "Unavail",
    "NonQualified": "NonQual",
    "Unknown": "Unknown",
    "Removed": "Removed",
}


def _contact_row(indent: str, contact: Contact) -> str:
    rtt = contact.rtt_usec / 1000 if contact.status == "Reachable" else math.nan
    hash_part = contact.object_name.rpartition("@")[2]
    aor_uri = f"{contact.aor}/{contact.uri}"
    status = _SHORT_STATUS.get(contact.status, contact.status)
    return f"{indent}Contact:  {aor_uri:<42.42} {hash_part:<10.10} {status:<7.7} {rtt:11.3f}\n"


@_command(
    "pjsip show endpoints",
    "Usage: pjsip show endpoints [ like <pattern> ]\n       List(s) endpoint(s)\n",
)
def _pjsip_show_endpoints(invocation: _Invocation) -> CliResult:
    if invocation.args:
        return _usage("pjsip show endpoints")
    pbx = invocation.pbx
    with pbx.lock:
        endpoints = pbx.endpoints()
        if not endpoints:
            return CliResult("\nNo objects found.\n\n")
        out = [_ENDPOINT_HEADER]
        for endpoint in endpoints:
            state = DEVICE_STATES.get(endpoint.device_state, "Unknown")
            out.append(
                f" Endpoint:  {endpoint.name:<53.53}  {state:<12.12}"
                f"  {endpoint.active_channels} of inf\n"
            )
            for auth in (a.strip() for a in endpoint.auths.split(",") if a.strip()):
                out.append(f"     InAuth:  {auth}/{auth}\n")
            for aor in (a.strip() for a in endpoint.aor.split(",") if a.strip()):
                out.append(f"        Aor:  {aor:<51.51}  1\n")
                for contact in endpoint.contacts:
                    if contact.aor == aor:
                        out.append(_contact_row("      ", contact))
            out.append("\n")
        out.append(f"\nObjects found: {len(endpoints)}\n\n")
    return CliResult("".join(out))


@_command(
    "pjsip show contacts",
    "Usage: pjsip show contacts [ like <pattern> ]\n       List(s) contact(s)\n",
)
def _pjsip_show_contacts(invocation: _Invocation) -> CliResult:
    if invocation.args:
        return _usage("pjsip show contacts")
    pbx = invocation.pbx
    with pbx.lock:
        contacts = pbx.contacts()
        if not contacts:
            return CliResult("\nNo objects found.\n\n")
        rows = [_contact_row("  ", contact) for contact in contacts]
    return CliResult(_CONTACT_HEADER + "".join(rows) + f"\nObjects found: {len(contacts)}\n\n")


# -- module reload (main/loader.c, main/cli.c handle_reload) -------------------------------

_RELOAD_TEXTS = {
    RELOAD_NOT_FOUND: "No such module '{0}'\n",
    RELOAD_NOT_IMPLEMENTED: "The module '{0}' does not support reloads\n",
    RELOAD_QUEUED: "Asterisk cannot reload a module yet; request queued\n",
    RELOAD_ERROR: "The module '{0}' reported a reload failure\n",
    RELOAD_IN_PROGRESS: "A module reload request is already in progress; please be patient\n",
}


@_command(
    "module reload",
    "Usage: module reload [module ...]\n"
    "       Reloads configuration files for all listed modules which support reloading,\n"
    "       or for all supported modules if none are listed.\n",
)
def _module_reload(invocation: _Invocation) -> CliResult:
    if not invocation.args:
        reload_module(invocation.pbx, invocation.manager, None)
        return CliResult("")
    out = []
    for name in invocation.args:
        status = reload_module(invocation.pbx, invocation.manager, name)
        if status in _RELOAD_TEXTS:
            out.append(_RELOAD_TEXTS[status].format(name))
    return CliResult("".join(out))
