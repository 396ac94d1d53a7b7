"""The sans-IO protocol core: real Asterisk 22 bytes, the odd corners of the format,
Asterisk's own limits on what a client sends, safe encoding, and properties that
hold for any input and any chunking."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from amilab.errors import ProtocolError
from amilab.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MASK,
    MAX_REQUEST_LINE,
    MAX_REQUEST_LINES,
    Message,
    Parser,
    encode_action,
    encode_message,
)
from tests.transcripts import DATA, load

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
# Every recorded connection, as (label, bytes Asterisk sent, bytes the recorder sent).
CONNECTIONS = [
    (f"{path.stem}[{i}]", conn.received(), conn.sent())
    for path in sorted(DATA.glob("*.txt"))
    for i, conn in enumerate(load(path.stem))
]
# s_listcommands keeps only the first 30 lines of the ListCommands reply.
TRUNCATED = {"s_listcommands[0]"}
# No timing in tests: the machine is shared, and speed targets live in bench/.
PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def parse(data: bytes, role: str = "client", chunks: list[int] | None = None, **options):
    """Feed ``data`` whole, or cut at the ``chunks`` offsets; return parser and messages."""
    parser = Parser(role=role, **options)
    cuts = [0, *sorted(chunks or []), len(data)]
    messages = []
    for start, end in zip(cuts, cuts[1:]):
        messages += parser.feed(data[start:end])
    return parser, messages


def fingerprint(messages: list[Message]) -> list[tuple]:
    return [(m.headers, m.raw, m.defect) for m in messages]


def one_message(data: bytes, role: str = "client") -> Message:
    _, messages = parse(data, role)
    assert len(messages) == 1, messages
    return messages[0]


def recorded(name: str) -> list[Message]:
    return parse(load(name)[0].received())[1]


# -- Message ---------------------------------------------------------------------


def test_headers_keep_wire_order_and_every_duplicate():
    msg = one_message(
        b"Event: Hangup\r\nChannel: PJSIP/1001-00000008\r\n"
        b"ChanVariable: SIPCALLID=abc\r\nChanVariable: SIPDOMAIN=127.0.0.1\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\nOutput: one\r\nOutput: two\r\nOutput: three\r\n\r\n"
    )
    assert msg.headers == [
        ("Event", "Hangup"),
        ("Channel", "PJSIP/1001-00000008"),
        ("ChanVariable", "SIPCALLID=abc"),
        ("ChanVariable", "SIPDOMAIN=127.0.0.1"),
        ("Variable", "A=1"),
        ("Variable", "B=2"),
        ("Output", "one"),
        ("Output", "two"),
        ("Output", "three"),
    ]
    assert isinstance(msg.headers, list)
    assert all(type(pair) is tuple and len(pair) == 2 for pair in msg.headers)
    assert list(msg) == msg.headers and len(msg) == 9


def test_command_output_keeps_every_output_line_and_its_indentation():
    replies = [m for m in recorded("i_command") if m.get("Message") == "Command output follows"]
    outputs = max((m.getall("Output") for m in replies), key=len)  # "dialplan show"
    assert len(outputs) > 10 and "" in outputs  # Asterisk 22 sends "Output: " for a blank line
    assert any(line.startswith("  '1000' =>") for line in outputs)  # one space dropped, not two


def test_name_kind_and_action_id_of_an_event_a_response_and_an_action():
    login = recorded("e_corestatus_actionid")
    assert (login[0].kind, login[0].name, login[0].action_id) == ("response", "Success", "login")
    assert (login[1].kind, login[1].name, login[1].action_id) == ("event", "FullyBooted", None)
    action = one_message(encode_action("Ping", action_id="p1"), role="server")
    assert (action.kind, action.name, action.action_id) == ("action", "Ping", "p1")
    assert one_message(b"Foo: bar\r\n\r\n").kind is None
    assert one_message(b"Foo: bar\r\n\r\n").name is None


def test_originate_response_event_is_an_event_although_it_has_a_response_field():
    events = [m for m in recorded("o_originate_events") if m.name == "OriginateResponse"]
    assert events and all(m.kind == "event" for m in events)
    assert events[0]["Response"] == "Success"


def test_kind_header_need_not_come_first_nor_be_capitalised():
    msg = one_message(b"ActionID: x\r\nevent: Newstate\r\n\r\n")
    assert (msg.kind, msg.name) == ("event", "Newstate")


def test_get_ignores_case_returns_the_first_value_or_the_default():
    msg = one_message(b"Event: VarSet\r\nVariable: A\r\nvariable: B\r\nValue: \r\n\r\n")
    assert msg.get("VARIABLE") == "A"
    assert msg.get("value") == ""  # present but empty is not missing
    assert msg.get("Missing") is None
    assert msg.get("Missing", "n/a") == "n/a"
    assert "variable" in msg and "Missing" not in msg


def test_getall_returns_every_value_in_order_whatever_the_case():
    msg = one_message(b"Event: X\r\nVariable: A=1\r\nVARIABLE: B=2\r\nvariable: C=3\r\n\r\n")
    assert msg.getall("Variable") == ["A=1", "B=2", "C=3"]
    assert msg.getall("Nothing") == []


def test_square_brackets_raise_key_error_for_a_missing_header():
    msg = one_message(b"Response: Success\r\nPing: Pong\r\n\r\n")
    assert msg["ping"] == "Pong"
    with pytest.raises(KeyError):
        msg["ActionID"]


def test_raw_is_exactly_the_bytes_received_terminator_included():
    for data in (
        b"Response: Success\r\nPing: Pong\r\n\r\n",
        b"Response: Success\nPing: Pong\n\n",
        b"Response: Error\r\nMessage: No Contacts found\n\r\n",
        b"Event: X\r\nName:value\r\nno colon here\r\n\r\n",
    ):
        assert one_message(data).raw == data


def test_a_lone_cr_inside_a_value_is_part_of_the_value_and_of_raw():
    data = b"Event: X\r\nValue: a\rb\r\nName: \r\n\r\n"
    msg = one_message(data)
    assert msg.headers == [("Event", "X"), ("Value", "a\rb"), ("Name", "")]
    assert msg.raw == data


def test_to_dict_joins_duplicates_with_newlines_under_the_first_spelling():
    msg = one_message(
        b"Event: Hangup\r\nChanVariable: A=1\r\nchanvariable: B=2\r\nCause: 16\r\n"
        b"ChanVariable: C=3\r\n\r\n"
    )
    assert msg.to_dict() == {"Event": "Hangup", "ChanVariable": "A=1\nB=2\nC=3", "Cause": "16"}


def test_repr_and_masked_text_never_show_a_secret_or_a_key():
    msg = Message([("Action", "Login"), ("Username", "admin"), ("Secret", "mysecretpassword"),
                   ("key", "0123abcd")])
    for text in (repr(msg), msg.masked_text()):
        assert "mysecretpassword" not in text and "0123abcd" not in text
        assert MASK in text and "admin" in text


def test_a_built_message_raw_is_its_encoding():
    msg = Message([("Action", "Ping"), ("ActionID", "1")])
    assert msg.raw == b"Action: Ping\r\nActionID: 1\r\n\r\n"
    assert msg == one_message(msg.raw, role="server")


# -- Parser, reading what Asterisk writes -------------------------------------------------


def test_banner_gives_the_ami_version_even_split_across_chunks():
    parser, messages = parse(BANNER + b"Response: Success\r\n\r\n", chunks=[3, 10, 29])
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert parser.version == "11.0.0"
    assert [m.name for m in messages] == ["Success"]


def test_without_a_banner_the_first_line_is_an_ordinary_header():
    parser, messages = parse(b"Event: FullyBooted\r\n\r\n")
    assert parser.banner is None and parser.version is None
    assert messages[0].name == "FullyBooted"


def test_a_bare_lf_message_after_crlf_ones_in_the_same_chunk_is_not_held_back():
    _, messages = parse(b"Event: A\r\n\r\nEvent: B\r\n\r\nEvent: C\nX: 1\n\nEvent: D\r\n")
    assert [m.name for m in messages] == ["A", "B", "C"]
    assert messages[2].raw == b"Event: C\nX: 1\n\n"


def test_lines_ending_in_a_bare_lf_read_like_crlf():
    crlf = one_message(b"Response: Success\r\nActionID: v2\r\nPing: Pong\r\n\r\n")
    lf = one_message(b"Response: Success\nActionID: v2\nPing: Pong\n\n")
    mixed = one_message(b"Response: Success\r\nActionID: v2\nPing: Pong\r\n\n")
    assert crlf.headers == lf.headers == mixed.headers


def test_a_line_without_a_colon_is_kept_with_an_empty_name():
    msg = one_message(b"Event: UserEvent\r\njust some text\r\nName:tight\r\n\r\n")
    assert msg.headers == [("Event", "UserEvent"), ("", "just some text"), ("Name", "tight")]


def test_no_contacts_found_and_its_extra_blank_line_do_not_desynchronise():
    messages = recorded("h_pjsip_show")
    error = next(m for m in messages if m.action_id == "h3")
    assert (error.name, error["Message"]) == ("Error", "No Contacts found")
    after = messages[messages.index(error) + 1]
    assert (after.name, after.action_id, after["EventList"]) == ("Success", "h4", "start")


@pytest.mark.parametrize("stream", [
    b"\r\n\nEvent: A\r\n\r\n\r\n\n\r\nEvent: B\r\n\r\n\r\n",
    b"\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n\r\n",  # CRLF only
])
def test_stray_blank_lines_between_messages_are_skipped(stream):
    _, messages = parse(stream)
    assert [m.raw for m in messages] == [b"Event: A\r\n\r\n", b"Event: B\r\n\r\n"]


LEGACY = (
    b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
    b"Asterisk 13.38.3 built by root\n\nName: looks like a header\n  indented\n"
    b"--END COMMAND--\r\n\r\n"
)
LEGACY_OUTPUT = ["Asterisk 13.38.3 built by root", "", "Name: looks like a header", "  indented"]


def test_legacy_response_follows_is_one_message_with_every_output_line():
    _, messages = parse(LEGACY + b"Event: FullyBooted\r\n\r\n")
    assert [m.name for m in messages] == ["Follows", "FullyBooted"]
    assert messages[0].action_id == "c1"
    assert messages[0].getall("Output") == LEGACY_OUTPUT
    assert messages[0].raw == LEGACY[:-2]  # the blank line after the marker is a stray one


def test_legacy_output_with_crlf_lines_or_none_at_all():
    _, messages = parse(
        b"Response: Follows\r\nPrivilege: Command\r\nline one\r\n--END COMMAND--\r\n\r\n"
        b"Response: Follows\r\nPrivilege: Command\r\n--END COMMAND--\r\n\r\n"
    )
    assert [m.getall("Output") for m in messages] == [["line one"], []]
    assert messages[1].headers == [("Response", "Follows"), ("Privilege", "Command")]


def test_legacy_end_marker_glued_to_the_last_output_line():
    glued = (b"Response: Follows\r\nPrivilege: Command\r\n"
             b"line one\nno newline--END COMMAND--\r\n\r\n")
    msg = one_message(glued)
    assert msg.getall("Output") == ["line one", "no newline"]


@pytest.mark.parametrize("size", [1, 2, 7, 16])
def test_legacy_output_in_any_chunking_is_the_same_message(size):
    stream = LEGACY + b"Event: Next\r\n\r\n"
    whole = fingerprint(parse(stream)[1])
    assert fingerprint(parse(stream, chunks=list(range(size, len(stream), size)))[1]) == whole


def test_a_utf8_character_split_across_chunks_is_not_lost():
    data = "Event: Newcallerid\r\nCallerIDName: Zoë 日本 🎧\r\n\r\n".encode()
    _, messages = parse(data, chunks=list(range(1, len(data))))
    assert messages[0]["CallerIDName"] == "Zoë 日本 🎧"


def test_invalid_utf8_is_replaced_and_raw_keeps_the_bytes():
    data = b"Event: Newcallerid\r\nCallerIDName: caf\xe9 \xff\xfe!\r\n\r\n"
    msg = one_message(data)
    assert msg["CallerIDName"] == "caf\ufffd \ufffd\ufffd!"
    assert msg.raw == data


def test_a_message_above_max_size_raises_and_the_parser_stays_failed():
    parser = Parser(max_message_size=100)
    with pytest.raises(ProtocolError, match="exceeds 100"):
        parser.feed(b"Event: Big\r\nData: " + b"x" * 200 + b"\r\n\r\n")
    with pytest.raises(ProtocolError):
        parser.feed(b"Event: Small\r\n\r\n")


def test_an_incomplete_message_growing_past_max_size_raises():
    parser = Parser(max_message_size=100)
    assert parser.feed(b"Event: Growing\r\nData: " + b"x" * 50) == []
    with pytest.raises(ProtocolError, match="incomplete message"):
        parser.feed(b"x" * 60)
    with pytest.raises(ProtocolError):
        parser.feed(b"\r\n\r\n")


def test_a_message_of_exactly_max_size_is_accepted():
    data = b"Event: Fits\r\nData: " + b"x" * 77 + b"\r\n\r\n"
    assert len(data) == 100
    assert [m.name for m in parse(data, max_message_size=100)[1]] == ["Fits"]


def test_pending_bytes_counts_what_does_not_yet_form_a_message():
    parser = Parser()
    parser.feed(BANNER + b"Event: A\r\n\r\nEvent: B\r\nChan")
    assert parser.pending_bytes() == len(b"Event: B\r\nChan")
    assert [m.name for m in parser.feed(b"nel: x\r\n\r\n")] == ["B"]
    assert parser.pending_bytes() == 0


@pytest.mark.parametrize("label,received,sent", CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
def test_every_recording_parses_in_both_directions_losing_nothing(label, received, sent):
    client, messages = parse(received)
    assert all(m.kind in ("event", "response") and m.name for m in messages)
    # Each message's raw bytes come next in the stream; only blank lines lie between.
    rest = received[len(client.banner) + 2:] if client.banner else received
    for msg in messages:
        gap = rest.index(msg.raw)
        assert rest[:gap].replace(b"\r\n", b"").replace(b"\n", b"") == b""
        rest = rest[gap + len(msg.raw):]
    assert client.pending_bytes() == (len(rest) if label in TRUNCATED else 0)

    server, requests = parse(sent, role="server")
    assert b"".join(r.raw for r in requests) == sent and server.pending_bytes() == 0
    assert all(r.defect is None for r in requests)


@pytest.mark.parametrize("label,received,sent", CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
def test_one_byte_at_a_time_gives_the_same_messages_as_all_at_once(label, received, sent):
    for data, role in ((received, "client"), (sent, "server")):
        whole = fingerprint(parse(data, role)[1])
        assert fingerprint(parse(data, role, chunks=list(range(1, len(data))))[1]) == whole


@PROPERTY
@given(data=st.data())
def test_any_chunking_of_real_bytes_gives_the_same_messages(data):
    label, received, sent = data.draw(st.sampled_from(CONNECTIONS), label="connection")
    role, stream = data.draw(st.sampled_from([("client", received), ("server", sent)]))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40), label="cuts")
    whole_parser, whole = parse(stream, role)
    parser, chunked = parse(stream, role, chunks=cuts)
    assert fingerprint(chunked) == fingerprint(whole)
    assert (parser.banner, parser.pending_bytes()) == (whole_parser.banner,
                                                         whole_parser.pending_bytes())


# -- Parser, reading what a client writes (server role, Asterisk's get_input rules) -------


def test_server_every_blank_line_ends_a_request_even_an_empty_one():
    _, requests = parse(b"\r\n\r\nAction: Ping\n\n\n", role="server")
    assert [r.headers for r in requests] == [[], [], [("Action", "Ping")], []]
    assert requests[0].raw == b"\r\n" and requests[0].name is None


def test_server_value_skips_leading_blanks_and_keeps_trailing_ones():
    msg = one_message(b"Action: Login\r\nUsername:admin\r\nSecret: \t\x01 s3cret  \r\n\r\n",
                      role="server")
    assert msg["Username"] == "admin"
    assert msg["Secret"] == "s3cret  "  # a trailing space becomes part of the secret


def test_server_a_space_before_the_colon_belongs_to_the_name():
    msg = one_message(b"Action : Ping\r\n\r\n", "server")
    assert msg.headers == [("Action ", "Ping")] and msg.get("Action") is None


def test_server_reads_lf_only_requests():
    _, requests = parse(load("v_lf_only")[0].sent(), role="server")
    assert [(r.name, r.action_id) for r in requests] == [("Login", "v1"), ("Ping", "v2"),
                                                        ("Ping", "v3")]


def test_server_a_line_of_1024_bytes_is_too_long_and_the_next_request_parses():
    fits = b"Variable: " + b"x" * (MAX_REQUEST_LINE - 2 - 10)  # 1022 bytes + CRLF
    too_long = fits + b"x"  # 1023 bytes + CRLF: over Asterisk's 1024-byte buffer
    _, requests = parse(
        b"Action: Originate\r\n" + fits + b"\r\n\r\n"
        + b"Action: Originate\r\n" + too_long + b"\r\n\r\n"
        + b"Action: Ping\r\n\r\n",
        role="server",
    )
    assert [r.defect for r in requests] == [None, "line too long", None]
    assert requests[1].getall("Variable") == []  # the long line is dropped, not cut
    assert requests[2].name == "Ping"


def test_server_a_long_line_arriving_in_pieces_is_discarded_whole():
    stream = b"Action: Ping\r\nX: " + b"y" * 3000 + b"\r\nActionID: 7\r\n\r\nAction: Ping\r\n\r\n"
    parser, requests = parse(stream, role="server", chunks=list(range(100, len(stream), 100)))
    assert [r.defect for r in requests] == [None if i else "line too long" for i in range(2)]
    assert requests[0].headers == [("Action", "Ping"), ("ActionID", "7")]
    assert requests[0].raw == b"Action: Ping\r\n"  # nothing kept past the defect


def test_server_more_than_128_lines_is_too_many_lines():
    def request(lines: int) -> bytes:
        return b"Action: UserEvent\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(lines - 1))

    _, requests = parse(request(MAX_REQUEST_LINES) + b"\r\n" + request(MAX_REQUEST_LINES + 1)
                        + b"\r\n", role="server")
    assert [r.defect for r in requests] == [None, "too many lines"]
    assert len(requests[1].headers) == MAX_REQUEST_LINES


def test_server_a_request_that_never_ends_cannot_grow_past_max_size():
    parser = Parser(role="server", max_message_size=1000)
    with pytest.raises(ProtocolError, match="exceeds 1000"):
        for _ in range(100):
            parser.feed(b"X: " + b"y" * 20 + b"\r\n")
    with pytest.raises(ProtocolError):
        parser.feed(b"\r\n")


# -- encoding ------------------------------------------------------------------------


def test_encode_action_frames_with_crlf_and_puts_action_then_action_id_first():
    data = encode_action("Originate", {"Channel": "Local/9999@internal"}, action_id="o1",
                         Async=True)
    assert data == (b"Action: Originate\r\nActionID: o1\r\nChannel: Local/9999@internal\r\n"
                    b"Async: yes\r\n\r\n")


def test_encode_action_values_str_int_bool_and_list():
    data = encode_action("Originate", [("Timeout", 30000), ("Variable", ["A=1", "B=2"])],
                         EarlyMedia=False, Exten="1000")
    assert data.split(b"\r\n") == [b"Action: Originate", b"Timeout: 30000", b"Variable: A=1",
                                   b"Variable: B=2", b"EarlyMedia: no", b"Exten: 1000", b"", b""]


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\r\nb", "\n"])
def test_cr_or_lf_in_a_name_or_a_value_is_refused(bad):
    with pytest.raises(ValueError, match="CR or LF"):
        encode_action("Ping", {bad: "x"})
    with pytest.raises(ValueError, match="CR or LF"):
        encode_action("Ping", {"X": bad})
    with pytest.raises(ValueError, match="CR or LF"):
        encode_action("Ping", Variable=["ok", bad])
    with pytest.raises(ValueError, match="CR or LF"):
        encode_action(bad)
    with pytest.raises(ValueError, match="CR or LF"):
        encode_message([("X", bad)])


def test_a_smuggled_second_action_is_refused():
    with pytest.raises(ValueError):
        encode_action("Getvar", Variable="X\r\nAction: Originate\r\nChannel: Local/1@internal")
    with pytest.raises(ValueError):
        encode_action("Ping", action_id="1\r\n\r\nAction: Originate")


# -- properties ------------------------------------------------------------------------

LINE_TEXT = st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))
NAMES = st.text(st.characters(blacklist_characters=":\r\n", blacklist_categories=("Cs",)),
                max_size=20)
VALUES = st.text(LINE_TEXT, max_size=60)
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=20)
ASTERISK_BLANKS = "".join(map(chr, range(0x21)))


@PROPERTY
@given(action=NAMES, action_id=st.none() | VALUES, pairs=PAIRS)
def test_encoded_actions_parse_back_on_the_server_side(action, action_id, pairs):
    request = one_message(encode_action(action, pairs, action_id=action_id), "server")
    sent = [("Action", action), *([("ActionID", action_id)] if action_id is not None else []),
            *pairs]
    assert request.headers == [(name, value.lstrip(ASTERISK_BLANKS)) for name, value in sent]
    assert request.defect is None


@PROPERTY
@given(pairs=PAIRS.filter(bool), cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_encoded_messages_parse_back_on_the_client_side(pairs, cuts):
    data = encode_message(pairs)
    assume(not data.startswith(b"Response: Follows\r\n"))
    parser, messages = parse(BANNER + data, chunks=[c for c in cuts if c <= len(data)])
    assert fingerprint(messages) == [(pairs, data, None)]
    assert parser.pending_bytes() == 0


# Pieces that exercise every rule: banner, CRLF and LF, stray CRs and blank lines,
# legacy output, colons, UTF-8 split or invalid.
PIECES = [BANNER, b"\r\n", b"\n", b"\r", b"Event: E", b"Response: Follows", b"--END COMMAND--",
          b":", b": ", b"Output: a: b", b"x", "é".encode(), b"\xe6\x97", b"\xff", b"Secret: s"]
STREAMS = st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join)
END_MARKER = "--END COMMAND--"


def read_like_the_rules_say(stream: bytes) -> tuple[str | None, list[tuple]]:
    """What a client must make of ``stream``, read one line at a time straight
    from the rules (Parser's docstring, Asterisk's framing): slow, and written
    without looking at how the parser frames."""
    def text(line: bytes) -> str:  # without its LF and one CR before it
        line = line[:-1]
        return (line[:-1] if line.endswith(b"\r") else line).decode("utf-8", "replace")

    def header(line: str) -> tuple[str, str]:
        name, colon, value = line.partition(":")
        return (name, value[1:] if value[:1] == " " else value) if colon else ("", line)

    lines = [part + b"\n" for part in stream.split(b"\n")[:-1]]  # complete lines only
    banner = None
    if lines and text(lines[0]).startswith("Asterisk Call Manager/"):
        banner = text(lines.pop(0))
    messages, i = [], 0
    while i < len(lines):
        start = i
        if not text(lines[i]):  # a stray blank line
            i += 1
            continue
        if text(lines[i]) == "Response: Follows":  # legacy: up to the end marker's line
            while i < len(lines) and END_MARKER.encode() not in lines[i]:
                i += 1
            if i == len(lines):
                break
            i += 1
            body = b"".join(lines[start:i]).decode("utf-8", "replace").split("\n")
            body = [line.rstrip("\r") for line in body]
            headers = []
            while ":" in body[0] and body[0].partition(":")[0].lower() in (
                "response", "privilege", "actionid"
            ):
                headers.append(header(body.pop(0)))
            for line in body:
                if line.endswith(END_MARKER):
                    line = line[: -len(END_MARKER)]
                    headers += [("Output", line)] if line else []
                    break
                headers.append(("Output", line))
        else:  # up to the first blank line
            while i < len(lines) and text(lines[i]):
                i += 1
            if i == len(lines):
                break
            headers = [header(text(line)) for line in lines[start:i]]
            i += 1
        messages.append((headers, b"".join(lines[start:i]), None))
    return banner, messages


@PROPERTY
@given(stream=STREAMS, cuts=st.lists(st.integers(0, 1000), max_size=12))
def test_the_parser_reads_odd_streams_exactly_as_the_rules_say(stream, cuts):
    parser, messages = parse(stream, chunks=[c for c in cuts if c <= len(stream)])
    assert (parser.banner, fingerprint(messages)) == read_like_the_rules_say(stream)


@pytest.mark.parametrize("label,received,sent", CONNECTIONS, ids=[c[0] for c in CONNECTIONS])
def test_the_parser_reads_every_recording_exactly_as_the_rules_say(label, received, sent):
    parser, messages = parse(received)
    assert (parser.banner, fingerprint(messages)) == read_like_the_rules_say(received)


@PROPERTY
@given(stream=STREAMS, role=st.sampled_from(["client", "server"]),
       cuts=st.lists(st.integers(0, 1000), max_size=12))
def test_any_chunking_of_odd_streams_gives_identical_messages(stream, role, cuts):
    whole_parser, whole = parse(stream, role)
    parser, chunked = parse(stream, role, chunks=[c for c in cuts if c <= len(stream)])
    assert fingerprint(chunked) == fingerprint(whole)
    assert (parser.banner, parser.pending_bytes()) == (whole_parser.banner,
                                                         whole_parser.pending_bytes())


@PROPERTY
@given(stream=st.binary(max_size=3000) | STREAMS, role=st.sampled_from(["client", "server"]),
       max_size=st.sampled_from([16, 64, 300, DEFAULT_MAX_MESSAGE_SIZE]),
       cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_arbitrary_bytes_raise_nothing_but_protocol_error(stream, role, max_size, cuts):
    parser = Parser(role=role, max_message_size=max_size)
    offsets = [0, *sorted(c for c in cuts if c <= len(stream)), len(stream)]
    try:
        for start, end in zip(offsets, offsets[1:]):
            for msg in parser.feed(stream[start:end]):
                assert len(msg.raw) <= max_size
                repr(msg), msg.to_dict(), msg.masked_text(), msg.kind, msg.name
    except ProtocolError:
        with pytest.raises(ProtocolError):  # and it stays failed
            parser.feed(b"Event: More\r\n\r\n")


# -- constant work per byte ---------------------------------------------------------------


class CountingBuffer(bytearray):
    """Stands in for the parser's buffer and adds up how many bytes its searches
    cover, so a parser that searched its buffer from the start on every feed()
    (quadratic work) would show."""

    searched = 0

    def find(self, sub, start=0, end=None):
        end = len(self) if end is None else min(end, len(self))
        found = super().find(sub, start, end)
        self.searched += max(0, (end if found < 0 else found + len(sub)) - start)
        return found

    def rfind(self, sub, start=0, end=None):
        end = len(self) if end is None else min(end, len(self))
        found = super().rfind(sub, start, end)
        self.searched += max(0, end - (start if found < 0 else found))
        return found


def feed_counting(parser: Parser, stream: bytes, chunk: int) -> tuple[list[Message], int]:
    parser._buf = buffer = CountingBuffer()  # the parser's only buffer: see Parser.__init__
    messages = []
    for start in range(0, len(stream), chunk):
        messages += parser.feed(stream[start:start + chunk])
    return messages, buffer.searched


FOUR_MIB = 4 * 1024 * 1024


@pytest.mark.parametrize("shape", ["many lines", "one long line", "long first line",
                                   "legacy output"])
def test_a_4_mib_message_fed_in_small_chunks_is_searched_a_bounded_number_of_times(shape):
    if shape == "many lines":
        lines = range(FOUR_MIB // 40)
        body = b"".join(b"Output: line %07d of a long listing\r\n" % i for i in lines)
        stream = BANNER + b"Response: Success\r\n" + body + b"\r\n"
    elif shape == "one long line":
        stream = BANNER + b"Event: Big\r\nData: " + b"x" * FOUR_MIB + b"\r\n\r\n"
    elif shape == "long first line":
        stream = BANNER + b"Event: " + b"x" * FOUR_MIB + b"\r\n\r\n"
    else:
        lines = range(FOUR_MIB // 30)
        body = b"".join(b"line %07d of legacy output\n" % i for i in lines)
        stream = (BANNER + b"Response: Follows\r\nPrivilege: Command\r\n" + body
                  + b"--END COMMAND--\r\n\r\n")
    messages, searched = feed_counting(Parser(), stream + b"Event: Next\r\n\r\n", chunk=1024)
    assert [m.name for m in messages] == [messages[0].name, "Next"]
    assert len(messages[0].raw) > FOUR_MIB * 0.9
    # Each byte is looked at by a few searches at most; a rescan from the start of
    # the message on every feed() would cost about 2,000 times the stream size.
    # (At least once: the parser's searches all go through its buffer's find/rfind.)
    assert len(stream) <= searched <= 4 * len(stream)


def test_the_server_side_searches_each_byte_a_bounded_number_of_times():
    request = encode_action("Originate", Channel="Local/1000@internal", Variable=["A=1"] * 30)
    stream = request * 2000
    requests, searched = feed_counting(Parser(role="server"), stream, chunk=1024)
    assert len(requests) == 2000 and all(r.defect is None for r in requests)
    assert len(stream) <= searched <= 4 * len(stream)
