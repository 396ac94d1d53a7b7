"""manager.conf for the simulated Asterisk: text in, :class:`ManagerConfig` out.

The file reads as Asterisk 22 reads it (main/config.c, main/manager.c
``__init_manager``, main/acl.c): ``[general]`` options, one section per AMI
user, keys repeated where Asterisk allows it (``deny``/``permit`` lines build
the ACL in file order), permission lists parsed by
:func:`amilab.sim.classes.parse_perms` (case-sensitive, no trimming:
``read = system, call`` grants only ``system``).

Where Asterisk merely logs a problem and carries on with something the author
did not mean (a malformed line, an invalid ACL entry — Asterisk deletes the
user —, a bad port, an event filter that does not compile), the simulator
raises :class:`ConfigError` naming the line and the reason, because a silent
difference is what a learner cannot debug. Where Asterisk accepts the file and
only the effect may surprise (an unknown key, a yes/no value that is neither,
a class name that matches nothing), the file loads and
:attr:`ManagerConfig.warnings` says what happened.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from amilab.errors import AMIError
from amilab.sim.classes import CLASSES, parse_perms

#: The course's users (Step 2 and Step 9 of the guide), bound to loopback as
#: Step 9 recommends. The secrets are the course's own, printed in the guide.
DEFAULT_MANAGER_CONF = """\
; manager.conf as the course writes it (Steps 2 and 9), bound to loopback.
[general]
enabled = yes
bindaddr = 127.0.0.1
port = 5038

[admin]
secret = mysecretpassword
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.0
permit = 192.168.0.0/255.255.0.0
permit = 10.0.0.0/255.0.0.0
read = system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate
write = system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate

[monitor]
secret = monitor-password
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.0
read = system,call,reporting
write =
"""

#: Defaults from Asterisk 22 main/manager.c (manager_set_defaults, __init_manager).
DEFAULT_PORT = 5038
DEFAULT_AUTHLIMIT = 50
DEFAULT_AUTHTIMEOUT = 30
#: Per-user write timeout in milliseconds; smaller values are refused (main/manager.c).
DEFAULT_WRITETIMEOUT_MS = 100

_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})  # ast_true, main/utils.c
_FALSE = frozenset({"no", "false", "n", "f", "0", "off"})  # ast_false

#: [general] keys Asterisk 22 knows but the simulator does not act on.
_GENERAL_NOT_SIMULATED = frozenset(
    {
        "webenabled",
        "httptimeout",
        "brokeneventsaction",
        "debug",
        "channelvars",
        "disabledevents",
        "tlsenable",
        "sslenable",
        "tlsbindaddr",
        "sslbindaddr",
        "tlscertfile",
        "tlscert",
        "sslcert",
        "tlsprivatekey",
        "sslprivatekey",
        "tlscipher",
        "sslcipher",
        "tlsservercipherorder",
        "tlsdisablev1",
        "tlsdisablev11",
        "tlsdisablev12",
    }
)


class ConfigError(AMIError, ValueError):
    """manager.conf cannot be used as written. ``line`` is the 1-based line
    number (None when the problem is not one line); ``reason`` the why.
    The text never contains a secret."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.line = line
        self.reason = reason
        super().__init__(
            f"manager.conf line {line}: {reason}" if line else f"manager.conf: {reason}"
        )


# -- ACL (main/acl.c) ----------------------------------------------------------


@dataclass(frozen=True)
class AclRule:
    """One deny/permit entry, address already masked as Asterisk stores it."""

    allow: bool
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    netmask: ipaddress.IPv4Address | ipaddress.IPv6Address

    def matches(self, client: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return int(client) & int(self.netmask) == int(self.address)

    def __str__(self) -> str:
        """As ``manager show user`` prints it (main/acl.c ast_ha_output)."""
        return f"{'allow' if self.allow else ' deny'} - {self.address}/{self.netmask}"


@dataclass(frozen=True)
class Acl:
    """A user's deny/permit rules in file order. Evaluation as ast_apply_ha:
    start with allow, every matching rule overwrites the result (last match
    wins), no match allows; IPv4 rules see IPv4 and IPv4-mapped IPv6 clients,
    IPv6 rules only true IPv6 clients."""

    rules: tuple[AclRule, ...] = ()

    def allows(self, client_address: str) -> bool:
        client = ipaddress.ip_address(client_address.split("%", 1)[0])
        mapped = client.ipv4_mapped if isinstance(client, ipaddress.IPv6Address) else None
        allowed = True
        for rule in self.rules:
            if rule.address.version == 4:
                candidate = client if client.version == 4 else mapped
            else:
                candidate = client if client.version == 6 and mapped is None else None
            if candidate is not None and rule.matches(candidate):
                allowed = rule.allow
        return allowed


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # Asterisk converts a mapped rule to an IPv4 rule
    return address


def parse_acl_entries(keyword: str, value: str) -> list[AclRule]:
    """The rules one ``deny =``/``permit =`` line adds (append_ha_core): a comma
    list of ``addr``, ``addr/dotted-mask`` or ``addr/CIDR``, each optionally
    prefixed with ``!`` to invert it. A keyword starting with ``p`` permits,
    anything else denies. Raises ValueError with the reason."""
    allow = keyword[:1].lower() == "p"
    rules = []
    for entry in value.split(","):
        entry = entry.strip()
        sense = allow
        if entry.startswith("!"):
            sense = not allow
            entry = entry[1:].strip()
        text, slash, mask_text = entry.partition("/")
        try:
            address = _parse_ip(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address") from None
        bits = address.max_prefixlen
        if not slash:
            netmask = type(address)((1 << bits) - 1)
        elif "." in mask_text or ":" in mask_text:
            try:
                netmask = _parse_ip(mask_text)
            except ValueError:
                raise ValueError(f"{mask_text!r} is not a netmask") from None
            if netmask.version != address.version:
                raise ValueError(f"address {text!r} and mask {mask_text!r} are not the same family")
        else:
            if not mask_text.strip().isdecimal() or int(mask_text) > bits:
                raise ValueError(f"{mask_text!r} is not a CIDR netmask (0-{bits})")
            prefix = int(mask_text)
            netmask = type(address)(((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1))
        masked = type(address)(int(address) & int(netmask))
        rules.append(AclRule(sense, masked, netmask))
    return rules


# -- event filters (main/manager.c manager_add_filter, filter_cmp_fn) -----------

_FILTER_METHODS = ("regex", "exact", "starts_with", "ends_with", "contains", "none")
_ASTERISK_BLANKS = "".join(map(chr, range(0x21)))  # ast_skip_blanks


class FilterFormatError(ValueError):
    """The filter or its criteria are malformed (Asterisk: FILTER_FORMAT_ERROR)."""


class FilterCompileError(ValueError):
    """The filter's regular expression does not compile (FILTER_COMPILE_FAIL)."""


@dataclass(frozen=True)
class EventFilter:
    """One include or exclude filter of a session (Filter action or a user's
    ``eventfilter`` lines).

    Legacy form: a regex over the whole event text, ``!`` in front excludes.
    Advanced form (``MatchCriteria`` / ``eventfilter(...)``): ``action(include|exclude)``,
    ``name(<Event>)``, ``header(<Header>)``, ``method(regex|exact|starts_with|
    ends_with|contains|none)`` — the spelling the C code accepts, not the
    XML doc's ``startsWith``. Regexes use Python's ``re`` with ``.`` matching
    line ends (POSIX extended without REG_NEWLINE behaves so); exotic POSIX
    syntax may differ.
    """

    exclude: bool
    method: str
    pattern: str
    event_name: str | None = None
    header: str | None = None
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, criteria: str, pattern: str) -> EventFilter:
        """``criteria`` is ``eventfilter`` or ``eventfilter(<match criteria>)``."""
        exclude = pattern.startswith("!")
        if exclude:
            pattern = pattern[1:]
        method, event_name, header = "regex", None, None
        opening = criteria.find("(")
        if opening < 0:
            if not pattern:
                raise FilterFormatError("a legacy filter needs a pattern")
        else:
            options = criteria[opening + 1 :].strip()
            if not options or not options.endswith(")"):
                raise FilterFormatError("filter options not formatted correctly")
            method = "none"
            found = set()
            for option in filter(None, re.split(r"[ ,)]+", options)):
                keyword, paren, argument = option.partition("(")
                argument = argument.strip()
                if not paren or not argument:
                    raise FilterFormatError(f"filter option {option!r} has no value")
                if keyword.startswith("action"):
                    if argument not in ("include", "exclude"):
                        raise FilterFormatError(f"'action' option {argument!r} is unknown")
                    exclude = argument == "exclude"
                elif keyword.startswith("name"):
                    event_name = argument
                elif keyword.startswith("header"):
                    header = argument if argument.endswith(":") else argument + ":"
                elif keyword.startswith("method"):
                    if argument not in _FILTER_METHODS:
                        raise FilterFormatError(f"'method' option {argument!r} is unknown")
                    method = argument
                else:
                    raise FilterFormatError(f"filter option {option!r} is unknown")
                found.add(keyword[:4])
            if not found:
                raise FilterFormatError("no action, name, header or method option found")
            if not pattern and method != "none":
                raise FilterFormatError(f"method can't be {method!r} with no filter pattern")
            if pattern and method == "none":
                raise FilterFormatError("method can't be 'none' with a filter pattern")
            if event_name is None and header is None and method == "none":
                raise FilterFormatError("no name or header and no filter pattern")
        regex = None
        if pattern and method == "regex":
            try:
                regex = re.compile(pattern, re.DOTALL)
            except re.error as exc:
                raise FilterCompileError(str(exc)) from None
        return cls(exclude, method, pattern, event_name, header, regex)

    def _match_text(self, text: str) -> bool:
        method = self.method
        if method == "regex":
            return self._regex.search(text) is not None  # type: ignore[union-attr]
        if method == "starts_with":
            return text.startswith(self.pattern)
        if method == "ends_with":
            return text.endswith(self.pattern)
        if method == "contains":
            return self.pattern in text
        if method == "exact":
            return text == self.pattern
        return True  # "none"

    def matches(self, event_name: str, event_text: str) -> bool:
        """Does this filter match the event? ``event_text`` is the whole event as
        written on the wire (Event, Privilege, body, final blank line)."""
        if self.event_name is not None and event_name != self.event_name:
            return False
        if self.header is None:
            return self._match_text(event_text)
        for line in event_text.split("\r\n"):
            if line.startswith(self.header):
                value = line[len(self.header) :].lstrip(_ASTERISK_BLANKS)
                if value and self._match_text(value):
                    return True
        return False


def events_pass_filters(
    filters: tuple[EventFilter, ...] | list[EventFilter], event_name: str, event_text: str
) -> bool:
    """Asterisk's should_send_event: no filters pass everything; include filters
    only: one must match; exclude filters only: none may match; both: an
    include must match and then no exclude."""
    if not filters:
        return True
    includes = [f for f in filters if not f.exclude]
    excludes = [f for f in filters if f.exclude]
    if includes and not any(f.matches(event_name, event_text) for f in includes):
        return False
    return not any(f.matches(event_name, event_text) for f in excludes)


# -- the configuration ---------------------------------------------------------


@dataclass(frozen=True)
class ManagerUser:
    """One ``[username]`` section. ``read``/``write`` are class masks; the
    secret never appears in the repr."""

    name: str
    secret: str | None = field(default=None, repr=False)
    read: int = 0
    write: int = 0
    acl: Acl = Acl()
    eventfilters: tuple[EventFilter, ...] = ()
    writetimeout_ms: int = DEFAULT_WRITETIMEOUT_MS
    allowmultiplelogin: bool = True
    displayconnects: bool = True


@dataclass(frozen=True)
class ManagerConfig:
    """A parsed manager.conf.

    ``bindaddr`` is None when the file does not set it: Asterisk would then
    listen on every address, the simulator listens on 127.0.0.1. ``users``
    maps the lower-cased name to the user (Asterisk matches names
    case-insensitively), in file order.
    """

    enabled: bool = False
    bindaddr: str | None = None
    port: int = DEFAULT_PORT
    authlimit: int = DEFAULT_AUTHLIMIT
    authtimeout: int = DEFAULT_AUTHTIMEOUT
    timestampevents: bool = False
    allowmultiplelogin: bool = True
    displayconnects: bool = True
    users: Mapping[str, ManagerUser] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def user(self, name: str) -> ManagerUser | None:
        """The user called ``name``, any case, or None."""
        return self.users.get(name.lower())


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, content) with ``;`` comments, ``;-- --;`` block comments
    and ``\\;`` escapes handled as main/config.c does; blank lines skipped."""
    in_block = False
    for number, raw in enumerate(text.splitlines(), start=1):
        out = []
        i = 0
        while i < len(raw):
            if in_block:
                end = raw.find("--;", i)
                if end < 0:
                    break
                in_block = False
                i = end + 3
                continue
            char = raw[i]
            if char == "\\" and raw[i + 1 : i + 2] == ";":
                out.append(";")
                i += 2
            elif char == ";":
                if raw.startswith(";--", i):
                    in_block = True
                    i += 3
                else:
                    break
            else:
                out.append(char)
                i += 1
        line = "".join(out).strip()
        if line:
            yield number, line
    if in_block:
        raise ConfigError("a ';--' block comment is never closed with '--;'")


def _bool(key: str, value: str, number: int, warnings: list[str]) -> bool:
    lowered = value.lower()
    if lowered not in _TRUE and lowered not in _FALSE:
        warnings.append(
            f"line {number}: {key} = {value!r} is neither yes nor no; Asterisk reads it as no"
        )
    return lowered in _TRUE


def _positive_int(key: str, value: str, number: int, minimum: int) -> int:
    if not value.isdecimal() or int(value) < minimum:
        raise ConfigError(
            f"{key} = {value!r}: must be a whole number of at least {minimum}", number
        )
    return int(value)


def _check_perms(key: str, value: str, number: int, warnings: list[str]) -> None:
    """Warn about list items that grant nothing (a space after a comma, a capital)."""
    items = value.split(",")
    for index, item in enumerate(items):
        last = index == len(items) - 1
        if not item or item == "none":
            continue
        if parse_perms(item if last else item + ",") == 0:
            hint = ""
            if item != item.strip():
                hint = " (Asterisk does not trim spaces)"
            elif item.lower() in CLASSES:
                hint = " (class names are case-sensitive)"
            warnings.append(f"line {number}: {key}: {item!r} matches no permission class{hint}")


@dataclass
class _UserDraft:
    name: str
    first_line: int
    secret: str | None = field(default=None, repr=False)
    read: int = 0
    write: int = 0
    rules: list[AclRule] = field(default_factory=list)
    eventfilters: list[EventFilter] = field(default_factory=list)
    writetimeout_ms: int = DEFAULT_WRITETIMEOUT_MS
    allowmultiplelogin: bool | None = None
    displayconnects: bool | None = None


def _user_option(
    user: _UserDraft, key: str, raw_key: str, value: str, number: int, warnings: list[str]
) -> None:
    if key == "secret":
        user.secret = value
    elif key in ("deny", "permit"):
        try:
            user.rules.extend(parse_acl_entries(key, value))
        except ValueError as exc:
            raise ConfigError(
                f"{key} = {value!r}: {exc} (Asterisk deletes user {user.name!r})", number
            ) from None
    elif key == "acl":
        raise ConfigError(
            f"acl = {value!r}: named ACLs live in acl.conf, which the simulator does not have; "
            "use deny/permit lines",
            number,
        )
    elif key in ("read", "write"):
        _check_perms(key, value, number, warnings)
        setattr(user, key, parse_perms(value))
    elif key in ("allowmultiplelogin", "displayconnects"):
        setattr(user, key, _bool(key, value, number, warnings))
    elif key == "writetimeout":
        user.writetimeout_ms = _positive_int(key, value, number, DEFAULT_WRITETIMEOUT_MS)
    elif raw_key.startswith("eventfilter"):
        try:
            user.eventfilters.append(EventFilter.parse(raw_key, value))
        except (FilterFormatError, FilterCompileError) as exc:
            raise ConfigError(f"{raw_key} = {value!r}: {exc}", number) from None
    elif key == "setvar":
        warnings.append(f"line {number}: setvar is not simulated; ignored")
    else:
        warnings.append(
            f"line {number}: unknown option {raw_key!r} for user {user.name!r}; ignored"
        )


def parse_manager_conf(text: str, *, previous: ManagerConfig | None = None) -> ManagerConfig:
    """Parse manager.conf text; raise :class:`ConfigError` for a line that cannot
    be used. ``previous`` is the configuration being reloaded: like Asterisk,
    ``allowmultiplelogin`` and ``timestampevents`` then keep their old value
    when the file no longer sets them."""
    warnings: list[str] = []
    general: dict[str, object] = {}
    if previous is not None:
        general["allowmultiplelogin"] = previous.allowmultiplelogin
        general["timestampevents"] = previous.timestampevents
    drafts: dict[str, _UserDraft] = {}
    user_lines: list[tuple[_UserDraft, str, str, str, int]] = []
    section: str | None = None
    current: _UserDraft | None = None

    for number, line in _lines(text):
        if line.startswith("#"):
            raise ConfigError(f"{line.split()[0]} is not supported by the simulator", number)
        if line.startswith("["):
            name, bracket, rest = line[1:].partition("]")
            name = name.strip()
            if not bracket or not name:
                raise ConfigError("a section header must look like [name]", number)
            if rest.strip():
                raise ConfigError(f"templates and options after [{name}] are not supported", number)
            section = name.lower()
            if section == "general":
                current = None
            else:
                current = drafts.setdefault(section, _UserDraft(name, number))
            continue
        raw_key, equals, value = line.partition("=")
        if not equals:
            raise ConfigError("expected 'name = value' or '[section]'", number)
        if value.startswith(">"):  # "name => value" is accepted too
            value = value[1:]
        raw_key, value = raw_key.strip(), value.strip()
        if not raw_key:
            raise ConfigError("a line starts with '=' (no option name)", number)
        if raw_key.endswith("+"):
            raise ConfigError(f"'{raw_key[:-1].strip()} +=' (append) is not supported", number)
        if section is None:
            raise ConfigError(f"option {raw_key!r} comes before any [section]", number)
        key = raw_key.lower()
        if current is None:
            _general_option(general, key, raw_key, value, number, warnings)
        else:
            user_lines.append((current, key, raw_key, value, number))

    # Users take their allowmultiplelogin/displayconnects defaults from [general],
    # which Asterisk reads completely before any user section.
    for draft, key, raw_key, value, number in user_lines:
        _user_option(draft, key, raw_key, value, number, warnings)
    default_multi = bool(general.get("allowmultiplelogin", True))
    default_display = bool(general.get("displayconnects", True))
    users = {}
    for lowered, draft in drafts.items():
        if draft.secret is None:
            warnings.append(
                f"line {draft.first_line}: user {draft.name!r} has no secret and can never log in"
            )
        users[lowered] = ManagerUser(
            name=draft.name,
            secret=draft.secret,
            read=draft.read,
            write=draft.write,
            acl=Acl(tuple(draft.rules)),
            eventfilters=tuple(draft.eventfilters),
            writetimeout_ms=draft.writetimeout_ms,
            allowmultiplelogin=default_multi
            if draft.allowmultiplelogin is None
            else draft.allowmultiplelogin,
            displayconnects=default_display
            if draft.displayconnects is None
            else draft.displayconnects,
        )
    return ManagerConfig(users=users, warnings=tuple(warnings), **general)  # type: ignore[arg-type]


def _general_option(
    general: dict[str, object], key: str, raw_key: str, value: str, number: int, warnings: list[str]
) -> None:
    if key in ("enabled", "timestampevents", "allowmultiplelogin", "displayconnects"):
        general[key] = _bool(key, value, number, warnings)
    elif key == "port":
        general[key] = _port(value, number)
    elif key == "bindaddr":
        try:
            general[key] = str(_parse_ip(value))
        except ValueError:
            raise ConfigError(f"bindaddr = {value!r} is not an IP address", number) from None
    elif key in ("authlimit", "authtimeout"):
        general[key] = _positive_int(key, value, number, 1)
    elif key in _GENERAL_NOT_SIMULATED:
        warnings.append(f"line {number}: {raw_key} is not simulated; ignored")
    else:
        warnings.append(f"line {number}: invalid keyword {raw_key!r} in [general]; ignored")


def _port(value: str, number: int) -> int:
    if not value.isdecimal() or not 1024 <= int(value) <= 65535:
        raise ConfigError(f"port = {value!r}: must be a number from 1024 to 65535", number)
    return int(value)
