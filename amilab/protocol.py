"""The AMI wire format, with no I/O: bytes in, :class:`Message` objects out.

In the spirit of h11: nothing here touches a socket, a thread or a clock, so the
client, the simulated server, the tests and the benchmarks all share this one
parser. Facts about the format come from Asterisk 22's ``main/manager.c`` and
from real recordings (see ``tests/data``):

* a message is ``Name: value`` lines ended by a blank line; the server always
  writes CRLF, clients may send a bare LF;
* on connect the server sends one banner line, ``Asterisk Call Manager/11.0.0``;
* Asterisk 13 and older answer ``Command`` with ``Response: Follows``, raw text
  and ``--END COMMAND--`` instead of headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter
from sys import intern
from typing import Literal, Union

from amilab.errors import ProtocolError

#: The banner's fixed part; the AMI version follows the slash (main/manager.c).
BANNER_PREFIX = "Asterisk Call Manager/"
#: Asterisk reads requests into a 1024-byte buffer: a longer line is discarded
#: and the request answered ``Failed to parse message: line too long`` (main/manager.c).
MAX_REQUEST_LINE = 1024
#: AST_MAX_MANHEADERS: lines per request (include/asterisk/manager.h).
MAX_REQUEST_LINES = 128
#: Default cap on one message, far above anything Asterisk sends (a long
#: ``Command`` output is a few hundred KiB); beyond it the parser raises.
DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024
#: Header names whose values are credentials: masked in reprs and transcripts.
SECRET_HEADERS = frozenset({"secret", "key"})
MASK = "********"

_KINDS = frozenset({"event", "response", "action"})
#: How Asterisk spells the kind headers; they come first in every message it writes.
_KIND_HEADER_NAMES = frozenset({"Event", "Response", "Action"})
_END_COMMAND = b"--END COMMAND--"
_FOLLOWS_BYTES = b"Response: Follows"
#: The same line as the memo sees it (text, CR kept).
_FOLLOWS_LINE = "Response: Follows\r"
#: Bound on the line memo below (about 2 MiB when full).
_MEMO_SIZE = 8192

HeaderValue = Union[str, int, bool, Iterable[Union[str, int, bool]]]


def _line_to_header(line: str) -> tuple[str, str]:
    """Split one received line: the name ends at the first colon, one space after
    it is dropped (Asterisk writes ``Name: value``; more spaces belong to the
    value, e.g. indented ``Output:`` lines). A line without a colon is kept
    with an empty name."""
    name, sep, value = line.partition(":")
    if not sep:
        return ("", line)
    return (name, value[1:] if value[:1] == " " else value)


class _NotPlainLine(Exception):
    """A line the CRLF fast path must leave to the general loop."""


#: What the line memo gives for a blank line (``"\r"``): it ends a message.
_BLANK: tuple[()] = ()


class _HeaderMemo(dict):  # type: ignore[type-arg]
    """Received line (text up to its LF, CR included) -> ``(name, value)``.

    Asterisk repeats the same lines all the time (``Privilege: call,all``, a
    channel's whole snapshot in each of its events), so looking a line up costs
    far less than splitting it again. A pure function's cache: cleared when
    full, safe to share between parsers and threads.

    Only plain lines are stored: ``Name: value`` and a CRLF, no other CR, and
    not the legacy ``Response: Follows``. Such a line is exactly
    ``f"{name}: {value}\r"``, so a message made only of them is rebuilt from its
    headers byte for byte (see :attr:`Message.raw`). Looking up any other line
    raises :class:`_NotPlainLine`: that is how the CRLF fast path notices, at
    no cost, the rare text it must leave to the general loop. The blank line
    maps to :data:`_BLANK`.
    """

    __slots__ = ()

    def __missing__(self, line: str) -> tuple[str, str]:
        name, _, value = line.partition(":")
        if value[:1] != " " or line.find("\r") != len(line) - 1 or line == _FOLLOWS_LINE:
            raise _NotPlainLine
        if len(self) >= _MEMO_SIZE:
            self.clear()
            self["\r"] = _BLANK
        # One name object per header name: a message's names stay in the cache.
        header = self[line] = (intern(name), value[1:-1])
        return header


_memo = _HeaderMemo({"\r": _BLANK})
_header_of_line = _memo.__getitem__


def _parse_follows(text: str) -> list[tuple[str, str]]:
    """Legacy Command output (Asterisk <= 13): the leading Response, Privilege and
    ActionID lines are headers; every line after them up to ``--END COMMAND--``
    is one line of CLI output, kept as an ``Output`` header like Asterisk 14+."""
    headers: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        name, sep, _ = lines[i].rstrip("\r").partition(":")
        if not sep or name.lower() not in ("response", "privilege", "actionid"):
            break
        headers.append(_line_to_header(lines[i].rstrip("\r")))
        i += 1
    for line in lines[i:]:
        line = line.rstrip("\r")
        if line.endswith("--END COMMAND--"):
            line = line[: -len("--END COMMAND--")]
            if line:
                headers.append(("Output", line))
            break
        headers.append(("Output", line))
    return headers


class Message:
    """One AMI message: an action, a response or an event.

    Headers keep their order and their duplicates (several ``Output:``,
    ``Variable:`` or ``ChanVariable:`` lines all survive). Lookups by name are
    case-insensitive and return the first value, as Asterisk's own lookups do.
    ``raw`` is the message exactly as received, terminator included.
    """

    # _raw, _index and _defect stay unset until needed: the parser makes
    # hundreds of thousands of messages a second and sets only what it must.
    __slots__ = ("headers", "name", "_raw", "_index", "_defect")

    #: ``(name, value)`` pairs in wire order, duplicates kept. Treat a message
    #: as a value: ``name``, lookups and ``raw`` are not recomputed if it changes.
    headers: list[tuple[str, str]]
    #: The Event name, the Response value or the Action name (None if none of
    #: those headers is present).
    name: str | None

    def __init__(
        self,
        headers: Iterable[tuple[str, str]],
        raw: bytes | None = None,
        *,
        defect: str | None = None,
    ) -> None:
        self.headers = list(headers)
        self.name = _name_of(self.headers)
        if raw is not None:
            self._raw = raw
        if defect is not None:
            self._defect = defect

    @property
    def defect(self) -> str | None:
        """Why a received request cannot be run (server side only), e.g.
        ``"line too long"``; None for a well-formed message."""
        return getattr(self, "_defect", None)

    @property
    def raw(self) -> bytes:
        """The bytes as received (or as they would be sent, for a built message).

        A message the parser framed on its fast path holds no copy of its bytes
        until asked: its lines were all plain ``Name: value`` CRLF lines (see
        ``_HeaderMemo``), so encoding its headers gives back exactly the bytes
        received.
        """
        try:
            return self._raw
        except AttributeError:
            self._raw = encode_message(self.headers)
            return self._raw

    def _first_values(self) -> dict[str, str]:
        try:
            return self._index
        except AttributeError:
            index: dict[str, str] = {}
            for name, value in self.headers:
                index.setdefault(name.lower(), value)
            self._index = index
            return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), or ``default``."""
        return self._first_values().get(name.lower(), default)

    def getall(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in order."""
        key = name.lower()
        return [value for header, value in self.headers if header.lower() == key]

    def __getitem__(self, name: str) -> str:
        value = self._first_values().get(name.lower())
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first_values()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __len__(self) -> int:
        return len(self.headers)

    @property
    def kind(self) -> Literal["event", "response", "action"] | None:
        """``"event"``, ``"response"`` or ``"action"``, from the first of those
        headers present (an OriginateResponse event also has a Response field)."""
        found = _kind_header(self.headers)
        return None if found is None else found[0]  # type: ignore[return-value]

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def to_dict(self) -> dict[str, str]:
        """A flat mapping for pandas: one key per header name as first written.

        Duplicates rule: a header that appears several times (``Output``,
        ``Variable``, ``ChanVariable``) maps to its values joined by ``"\\n"``
        in wire order. Nothing is lost, since a value never holds a line break.
        Names differing only in case are the same header, as in Asterisk.
        """
        flat: dict[str, str] = {}
        names: dict[str, str] = {}
        for name, value in self.headers:
            key = names.setdefault(name.lower(), name)
            flat[key] = f"{flat[key]}\n{value}" if key in flat else value
        return flat

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.headers == other.headers

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = " ".join(
            f"{name}={MASK if name.lower() in SECRET_HEADERS else value!r}"
            for name, value in self.headers[:6]
        )
        more = f" +{len(self.headers) - 6}" if len(self.headers) > 6 else ""
        return f"<Message {shown}{more}>"

    def masked_text(self) -> str:
        """The message as text with Secret and Key values masked, for display."""
        return "".join(
            f"{name}: {MASK if name.lower() in SECRET_HEADERS else value}\r\n"
            if name
            else f"{value}\r\n"
            for name, value in self.headers
        ) + "\r\n"


def _kind_header(headers: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first Event, Response or Action header, its name lowercased."""
    # The usual case, Asterisk's own spelling first: no need to lowercase names.
    if headers and headers[0][0] in _KIND_HEADER_NAMES:
        return headers[0][0].lower(), headers[0][1]
    for name, value in headers:
        lowered = name.lower()
        if lowered in _KINDS:
            return lowered, value
    return None


def _name_of(headers: list[tuple[str, str]]) -> str | None:
    found = _kind_header(headers)
    return None if found is None else found[1]


def _received(raw: bytes, headers: list[tuple[str, str]]) -> Message:
    """A message the general loop framed: ``raw`` as received, its headers
    decoded. (Skips ``Message.__init__``, which copies the headers.)"""
    msg = _new_object(Message)
    msg.headers = headers
    msg.name = _name_of(headers)
    msg._raw = raw
    return msg


_new_object = object.__new__


class Parser:
    """Turns a byte stream into :class:`Message` objects.

    ``feed()`` may be called with any chunking, one byte at a time or all at
    once: the messages are the same. Work per byte is constant (the buffer is
    never re-scanned from its start).

    ``role="client"`` reads what a server writes: the banner line first
    (exposed as ``banner`` and ``version``), stray blank lines between messages
    ignored (Asterisk sends ``No Contacts found\\n`` followed by two CRLFs),
    legacy ``Response: Follows`` output as one message.

    ``role="server"`` reads what a client writes, with Asterisk's own limits:
    every blank line ends a request, even an empty one; a line of 1024 bytes or
    more is discarded and more than 128 lines are dropped, and the request is
    marked with ``Message.defect`` instead of being run (its ``raw`` then holds
    only the bytes before the defect). Values lose their leading whitespace, as
    Asterisk's header lookup skips it.

    In both roles a message above ``max_message_size`` bytes (complete or not)
    raises :class:`ProtocolError`, and the parser stays failed. A request can
    only get there with a small limit: the server role keeps at most 128 lines.
    """

    def __init__(
        self,
        role: Literal["client", "server"] = "client",
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        self.role = role
        self.max_message_size = max_message_size
        #: The banner line (e.g. ``"Asterisk Call Manager/11.0.0"``), once read.
        self.banner: str | None = None
        #: The AMI version from the banner (e.g. ``"11.0.0"``).
        self.version: str | None = None
        self._buf = bytearray()
        self._expect_banner = role == "client"
        self._failed: str | None = None
        # client role: how far the pending message (at the start of _buf) has
        # been read, so that no byte is searched twice
        self._stage = _FIRST_LINE
        self._scan = 0  # bytes of the pending message searched in this stage
        # server role: the request being read
        self._lines: list[bytes] = []
        self._raw_parts: list[bytes] = []
        self._raw_size = 0
        self._defect: str | None = None
        self._discarding = False

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return the messages they complete, in order."""
        if self._failed:
            raise ProtocolError(self._failed)
        if self.role == "server":
            return self._feed_server(data)
        return self._feed_client(data)

    def pending_bytes(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buf) + self._raw_size

    def _fail(self, reason: str) -> ProtocolError:
        self._failed = reason
        self._buf.clear()
        self._lines, self._raw_parts, self._raw_size = [], [], 0
        return ProtocolError(reason)

    # -- reading what a server writes -------------------------------------------

    def _feed_client(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        if self._expect_banner:
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(buf)
                return self._wait(out, 0)
            self._expect_banner = False
            self._scan = 0
            line = bytes(buf[:nl]).rstrip(b"\r").decode("utf-8", "replace")
            if line.startswith(BANNER_PREFIX):
                self.banner = line
                self.version = line[len(BANNER_PREFIX):]
                pos = nl + 1
        if self._stage in (_FIRST_LINE, _HEADERS):
            end = self._take_crlf_messages(pos, out)
            # What is left holds no CRLF blank line, so only a blank line after a
            # bare LF could end a message in it: else there is nothing more to do.
            if end > pos and buf.find(b"\n\n", end - 1) < 0 and buf.find(b"\n\r\n", end) < 0:
                return self._wait(out, end)
            pos = end
        n = len(buf)
        while pos < n:
            byte = buf[pos]
            if byte == 10:  # a stray blank line (LF)
                pos += 1
                continue
            if byte == 13:  # a stray blank line (CRLF), or a CR starting a line
                if pos + 1 == n:
                    break
                if buf[pos + 1] == 10:
                    pos += 2
                    continue
            end = self._find_message_end(pos)
            if end < 0:
                break
            if end - pos > self.max_message_size:
                raise self._fail(f"message of {end - pos} bytes exceeds {self.max_message_size}")
            raw = bytes(buf[pos:end])
            if self._stage == _FOLLOWS_END:
                headers = _parse_follows(raw.decode("utf-8", "replace"))
            else:
                headers = _headers_of_message(raw)
            out.append(_received(raw, headers))
            pos = end
            self._stage, self._scan = _FIRST_LINE, 0
        return self._wait(out, pos)

    def _take_crlf_messages(self, pos: int, out: list[Message]) -> int:
        """Fast path for what Asterisk writes nearly always: plain CRLF lines.

        Frames every complete message from ``pos`` on at once: decode them as
        one text, look up all its lines in the memo, cut at the blank lines.
        That is the general loop's rule as long as the text is valid UTF-8 and
        every line is a plain ``Name: value`` CRLF line or a blank one, which
        the lookup checks. Returns where framing stopped: ``pos`` if the general
        loop must do it all.
        """
        buf = self._buf
        last = buf.rfind(b"\r\n\r\n", pos + max(self._scan - 3, 0))
        if last < 0 or last + 4 - pos > self.max_message_size:
            return pos  # nothing complete, or the general loop reports the size
        try:  # up to the CR of the last blank line: every line keeps its CR
            lines = buf[pos:last + 3].decode("utf-8").split("\n")
            # One lookup for all the lines (at least two: a header and the blank
            # line), into a tuple of the right size from the start.
            headers = itemgetter(*lines)(_memo)
        except (UnicodeDecodeError, _NotPlainLine):
            return pos
        start, end, blank_after = 0, len(headers), headers.index
        new = _new_object
        while start < end:
            stop = blank_after(_BLANK, start)
            if stop > start:  # else a stray blank line between messages: skipped
                out.append(msg := new(Message))
                msg.headers = message = [*headers[start:stop]]
                first = message[0]
                msg.name = first[1] if first[0] in _KIND_HEADER_NAMES else _name_of(message)
            start = stop + 1
        self._stage, self._scan = _FIRST_LINE, 0
        return last + 4

    def _find_message_end(self, pos: int) -> int:
        """Where the message starting at ``pos`` ends, or -1 if it is not complete
        yet. Resumes each stage's search where the previous ``feed()`` stopped."""
        buf = self._buf
        start = pos + self._scan
        if self._stage == _FIRST_LINE:  # is it legacy Command output?
            nl = buf.find(b"\n", start)
            if nl < 0:
                self._scan = len(buf) - pos
                return -1
            length = nl - pos  # the first line is exactly "Response: Follows"?
            follows = buf.startswith(_FOLLOWS_BYTES, pos) and (
                length == len(_FOLLOWS_BYTES)
                or (length == len(_FOLLOWS_BYTES) + 1 and buf[nl - 1] == 13)
            )
            self._stage, start = (_FOLLOWS if follows else _HEADERS), nl
        if self._stage == _HEADERS:  # ends at the first blank line: \n\r\n or \n\n
            search_from = max(start - 2, pos)
            crlf = buf.find(b"\n\r\n", search_from)
            lf = buf.find(b"\n\n", search_from, len(buf) if crlf < 0 else crlf + 1)
            if lf >= 0:
                return lf + 2
            if crlf >= 0:
                return crlf + 3
            self._scan = len(buf) - pos
            return -1
        if self._stage == _FOLLOWS:  # ends with the line holding --END COMMAND--
            marker = buf.find(_END_COMMAND, max(start - len(_END_COMMAND) + 1, pos))
            if marker < 0:
                self._scan = len(buf) - pos
                return -1
            self._stage, start = _FOLLOWS_END, marker + len(_END_COMMAND)
        nl = buf.find(b"\n", start)
        if nl < 0:
            self._scan = len(buf) - pos
            return -1
        return nl + 1

    def _wait(self, out: list[Message], pos: int) -> list[Message]:
        """Drop consumed bytes and check the size of what is left."""
        buf = self._buf
        if pos:
            del buf[:pos]
        if len(buf) > self.max_message_size:
            raise self._fail(
                f"incomplete message of {len(buf)} bytes exceeds {self.max_message_size}"
            )
        return out

    # -- reading what a client writes (Asterisk's get_input rules) ---------------

    def _feed_server(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        out: list[Message] = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) >= MAX_REQUEST_LINE:
                    self._note_defect("line too long")
                    self._keep_raw(bytes(buf))
                    buf.clear()
                    self._discarding = True
                return out
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            self._keep_raw(line)
            if self._discarding:  # the tail of an over-long line
                self._discarding = False
                continue
            if nl >= MAX_REQUEST_LINE:
                self._note_defect("line too long")
                continue
            text = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            if text:
                if len(self._lines) >= MAX_REQUEST_LINES:
                    self._note_defect("too many lines")
                else:
                    self._lines.append(text)
                continue
            out.append(self._request())

    def _keep_raw(self, part: bytes) -> None:
        # Like Asterisk, read on to the blank line but keep nothing past a defect:
        # a request that never ends costs no more than 128 lines of 1 KiB.
        if self._defect is not None:
            return
        self._raw_parts.append(part)
        self._raw_size += len(part)
        if self._raw_size > self.max_message_size:
            raise self._fail(
                f"request of {self._raw_size} bytes without a blank line exceeds "
                f"{self.max_message_size}"
            )

    def _note_defect(self, defect: str) -> None:
        if self._defect is None:
            self._defect = defect

    def _request(self) -> Message:
        headers = []
        for line in self._lines:
            name, sep, value = line.decode("utf-8", "replace").partition(":")
            headers.append((name, value.lstrip(_ASTERISK_BLANKS)) if sep else ("", name))
        msg = Message(headers, b"".join(self._raw_parts), defect=self._defect)
        self._lines, self._raw_parts, self._raw_size, self._defect = [], [], 0, None
        return msg


#: Client-role stages of the pending message (see Parser._find_message_end).
_FIRST_LINE, _HEADERS, _FOLLOWS, _FOLLOWS_END = range(4)


def _headers_of_message(raw: bytes) -> list[tuple[str, str]]:
    """The headers of one framed message, whatever mix of CRLF and LF ends its lines."""
    # Decoding the whole message gives the same text as decoding line by line:
    # an LF byte is never part of a UTF-8 sequence, valid or not.
    lines = raw.decode("utf-8", "replace").split("\n")
    del lines[-2:]  # the blank line that ends the message
    return [_header_of_any_line(line) for line in lines]


def _header_of_any_line(line: str) -> tuple[str, str]:
    """The header of a line up to its LF, whether or not a CR ends it."""
    try:
        return _header_of_line(line)
    except _NotPlainLine:  # a bare-LF line, a line that is not "Name: value", ...
        return _line_to_header(line[:-1] if line[-1:] == "\r" else line)


#: ast_skip_blanks() skips every byte below 0x21 (include/asterisk/strings.h).
_ASTERISK_BLANKS = "".join(map(chr, range(0x21)))


def _check_line_part(kind: str, text: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(
            f"{kind} {text[:40]!r} contains CR or LF: that would inject extra headers "
            "or a whole second action"
        )
    return text


def _value_text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def encode_message(headers: Iterable[tuple[str, str | int | bool]]) -> bytes:
    """Frame headers as one message: ``Name: value`` CRLF lines and a blank line.

    Raises ValueError for a CR or LF in a name or value (header injection).
    A bool becomes ``yes``/``no``, as Asterisk's boolean options read them.
    """
    lines = []
    for name, value in headers:
        _check_line_part("header name", name)
        lines.append(f"{name}: {_check_line_part('value of ' + name, _value_text(value))}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


def encode_action(
    name: str,
    headers: Mapping[str, HeaderValue] | Iterable[tuple[str, HeaderValue]] | None = None,
    *,
    action_id: str | None = None,
    **fields: HeaderValue,
) -> bytes:
    """Encode one action: ``Action:`` first, then ``ActionID:``, then the fields.

    ``headers`` (a mapping or pairs) and keyword ``fields`` are written in
    order; a list value becomes one header per item (several ``Variable:``
    lines for Originate). Raises ValueError on CR/LF anywhere (header injection).
    """
    pairs: list[tuple[str, str | int | bool]] = [("Action", name)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    items = list(headers.items() if isinstance(headers, Mapping) else headers or ())
    for key, value in [*items, *fields.items()]:
        if isinstance(value, (str, int, bool)):
            pairs.append((key, value))
        else:
            pairs.extend((key, item) for item in value)
    return encode_message(pairs)
