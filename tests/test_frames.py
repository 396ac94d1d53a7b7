"""amilab.frames against real Asterisk 22 recordings: the events table, the live
EventLog ring, list-action tables, and calls rebuilt from Demo 2 and Demo 3."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from amilab.frames import (  # noqa: E402
    CALL_COLUMNS,
    CHANNEL_COLUMNS,
    CONTACT_COLUMNS,
    ENDPOINT_COLUMNS,
    EVENT_COLUMNS,
    NO_CHANNEL,
    TIMELINE_COLUMNS,
    EventLog,
    call_timeline,
    calls_frame,
    channels_frame,
    contacts_frame,
    endpoints_frame,
    events_frame,
    list_frame,
    plot_call,
    queue_status_frames,
)
from amilab.protocol import Message, Parser  # noqa: E402
from tests.transcripts import connection  # noqa: E402

#: Any epoch works: the tests look at differences. This one is Demo 2's recording time.
CONNECTED_AT = datetime(2026, 11, 27, 3, 33, 57, tzinfo=timezone.utc).timestamp()
DEMO2_CALL = "1795750432.18"
DEMO3_CALL = "1795750439.20"


def received(name: str) -> list[Message]:
    """Every message the server sent in a recording, parsed from the real bytes."""
    return Parser().feed(connection(name).received())


def timed(name: str) -> list[tuple[float, Message]]:
    """Messages paired with the time their recv() chunk arrived in the recording."""
    parser = Parser()
    return [
        (CONNECTED_AT + step.time, message)
        for step in connection(name).steps
        if step.direction == "recv"
        for message in parser.feed(step.data)
    ]


def answering(name: str, action_id: str) -> list[Message]:
    """The response and list events of one action in a recording."""
    return [m for m in received(name) if m.action_id == action_id]


@pytest.fixture(scope="module")
def demo2() -> pd.DataFrame:
    return events_frame(timed("demo2_call_1001_to_1002"))


@pytest.fixture(scope="module")
def demo3() -> pd.DataFrame:
    return events_frame(timed("demo3_echo_test"))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


class ManualClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(name: str, **headers: str) -> Message:
    return Message([("Event", name), *headers.items()])


# -- events as a frame ----------------------------------------------------------------


def test_demo2_stream_becomes_one_row_per_message_with_its_receive_time(demo2):
    messages = received("demo2_call_1001_to_1002")
    assert len(demo2) == len(messages) == 97
    assert str(demo2["Received"].dtype) == "datetime64[us, UTC]"
    first_newchannel = demo2[demo2["Event"] == "Newchannel"].iloc[0]
    # recorded at +1.004 s after connecting
    assert first_newchannel["Received"] == pd.Timestamp("2026-11-27 03:33:58.004", tz="UTC")
    assert isinstance(demo2["Event"].dtype, pd.CategoricalDtype)
    assert demo2["Event"].isna().sum() == 2  # the Login and CoreShowChannels responses
    assert demo2["Response"].dropna().tolist() == ["Success", "Success"]


def test_common_columns_lead_in_the_documented_order_and_the_rest_is_kept(demo2):
    assert list(demo2.columns[: len(EVENT_COLUMNS)]) == list(EVENT_COLUMNS)
    for header in ("Privilege", "Variable", "Value", "BridgeUniqueid", "DestUniqueid"):
        assert header in demo2.columns
    varset = demo2[demo2["Event"] == "VarSet"].iloc[0]
    assert (varset["Variable"], varset["Value"]) == ("SIPDOMAIN", "127.0.0.1")


def test_numbers_become_numeric_while_ids_extensions_and_unknown_stay_text(demo2):
    for column in ("ChannelState", "Priority", "Cause", "ListItems", "BridgeNumChannels"):
        assert str(demo2[column].dtype) == "Int64", column
    hangup = demo2[demo2["Event"] == "Hangup"].iloc[0]
    assert hangup["Cause"] == 16 and hangup["ChannelState"] == 6
    assert demo2["Uniqueid"].dtype == "str"
    assert hangup["Uniqueid"] == "1795750432.19"  # not the float 1795750432.19
    assert hangup["Exten"] == ""  # sent empty, kept empty
    dial = demo2[demo2["Event"] == "DialBegin"].iloc[0]
    assert dial["Exten"] == "1002"
    assert dial["DestCallerIDName"] == "<unknown>"


def test_duplicate_headers_are_joined_with_newlines_as_message_to_dict_does():
    messages = received("i_command")
    output = next(m for m in messages if len(m.getall("Output")) > 1)
    frame = events_frame(messages)
    cell = frame.loc[frame["ActionID"] == output.action_id, "Output"].iloc[0]
    assert cell == output.to_dict()["Output"]
    assert cell.split("\n") == output.getall("Output")


def test_a_numeric_field_holding_text_stays_text_so_nothing_is_lost():
    frame = events_frame([
        event("Newstate", ChannelState="6"),
        event("Newstate", ChannelState="up"),
    ])
    assert frame["ChannelState"].tolist() == ["6", "up"]


def test_empty_and_na_values_in_numeric_fields_become_missing():
    frame = events_frame([
        event("X", Priority="", RoundtripUsec="N/A"),
        event("X", Priority="2", RoundtripUsec="7"),
    ])
    assert frame["Priority"].isna().tolist() == [True, False]
    assert frame["RoundtripUsec"].tolist()[1] == 7
    assert str(frame["RoundtripUsec"].dtype) == "Int64"


def test_decimal_numbers_become_floats():
    frame = list_frame(answering("r_queuestatus", "r1"))
    assert str(frame["ServicelevelPerf"].dtype) == "Float64"


def test_server_timestamps_become_utc_times():
    frame = events_frame(received("j_ping"))
    stamps = frame["Timestamp"].dropna()
    assert str(stamps.dtype) == "datetime64[us, UTC]"
    assert stamps.iloc[0] == pd.Timestamp(1795749616.761346, unit="s", tz="UTC").floor("us")


def test_no_messages_give_an_empty_frame_with_the_standard_columns():
    frame = events_frame([])
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert len(frame) == 0
    assert str(frame["Received"].dtype) == "datetime64[us, UTC]"
    assert isinstance(frame["Event"].dtype, pd.CategoricalDtype)
    assert str(frame["ChannelState"].dtype) == "Int64"
    assert frame["Channel"].dtype == "str"


def test_times_given_as_pairs_or_as_a_sequence_give_the_same_frame():
    pairs = timed("demo3_echo_test")
    times, messages = zip(*pairs)
    pd.testing.assert_frame_equal(events_frame(pairs), events_frame(messages, times))


def test_datetime_times_are_read_and_naive_ones_taken_as_utc():
    times = [datetime(2026, 1, 1, 12), pd.Timestamp("2026-01-01 13:00", tz="UTC")]
    frame = events_frame([event("A"), event("B")], times)
    assert frame["Received"].tolist() == [
        pd.Timestamp("2026-01-01 12:00", tz="UTC"),
        pd.Timestamp("2026-01-01 13:00", tz="UTC"),
    ]


def test_without_times_the_receive_time_is_missing():
    frame = events_frame(received("demo3_echo_test"))
    assert frame["Received"].isna().all()
    assert str(frame["Received"].dtype) == "datetime64[us, UTC]"


def test_a_time_count_that_does_not_match_the_messages_is_refused():
    with pytest.raises(ValueError, match="2 times for 1 messages"):
        events_frame([event("A")], [1.0, 2.0])


def test_what_is_not_a_message_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="Message"):
        events_frame([event("A"), {"Event": "B"}])
    with pytest.raises(TypeError, match="pairs"):
        events_frame([(1.0, event("A")), event("B")])


# -- the live event log -----------------------------------------------------------------


def test_log_records_the_receive_time_of_each_append():
    clock = ManualClock(CONNECTED_AT)
    log = EventLog(clock=clock)
    log.append(event("Newchannel"))
    clock.now += 1.5
    log.append(event("Hangup"))
    frame = log.to_frame()
    assert frame["Event"].tolist() == ["Newchannel", "Hangup"]
    assert frame["Received"].diff().iloc[1] == pd.Timedelta(seconds=1.5)


def test_a_full_log_evicts_the_oldest_and_counts_every_eviction():
    log = EventLog(maxlen=3, clock=ManualClock())
    for n in range(5):
        log.append(event("UserEvent", N=str(n)))
    assert (len(log), log.appended, log.evicted) == (3, 5, 2)
    frame = log.to_frame()
    assert frame["N"].tolist() == ["2", "3", "4"]
    assert frame.index.tolist() == [2, 3, 4]  # arrival numbers survive eviction
    assert frame.index.name == "seq"
    assert "3/3 held, 5 appended, 2 evicted" in repr(log)


def test_to_frame_can_put_the_newest_first_and_give_only_the_last_page():
    log = EventLog(clock=ManualClock())
    for n in range(5):
        log.append(event("UserEvent", N=str(n)))
    assert log.to_frame(newest_first=True)["N"].tolist() == ["4", "3", "2", "1", "0"]
    page = log.to_frame(last=2, newest_first=True)
    assert page["N"].tolist() == ["4", "3"]
    assert page.index.tolist() == [4, 3]
    assert log.to_frame(last=2)["N"].tolist() == ["3", "4"]


def test_an_empty_log_gives_an_empty_frame_with_the_standard_columns():
    frame = EventLog().to_frame()
    assert list(frame.columns) == list(EVENT_COLUMNS) and len(frame) == 0


def test_counts_give_held_events_per_name_most_frequent_first():
    log = EventLog(clock=ManualClock())
    for message in received("demo2_call_1001_to_1002"):
        log.append(message)
    counts = log.counts()
    assert counts.index[0] == "VarSet"
    assert counts[["Hangup", "HangupRequest", "SoftHangupRequest"]].tolist() == [2, 1, 1]
    assert counts.sum() == 95  # the two responses are not events


def test_events_per_second_counts_the_recent_window():
    clock = ManualClock(1000.0)
    log = EventLog(clock=clock)
    clock.now = 1010.0
    for n in range(30):  # 30 events in the 3 s up to t=1020
        clock.now = 1017.0 + n * 0.1
        log.append(event("Newstate"))
    clock.now = 1020.0
    assert log.events_per_second(window=10.0) == pytest.approx(3.0)
    assert log.events_per_second(window=2.0) == pytest.approx(20 / 2.0)
    clock.now = 1040.0
    assert log.events_per_second(window=10.0) == 0.0


def test_events_per_second_of_a_young_log_uses_its_age_not_the_whole_window():
    clock = ManualClock(1000.0)
    log = EventLog(clock=clock)
    for _ in range(10):
        log.append(event("Newstate"))
    clock.now = 1002.0
    assert log.events_per_second(window=10.0) == pytest.approx(5.0)


def test_events_per_second_after_evictions_uses_the_span_the_log_still_holds():
    clock = ManualClock(0.0)
    log = EventLog(maxlen=10, clock=clock)
    clock.now = 100.0
    for n in range(40):  # 40/s for 1 s, but only the last 10 are held
        clock.now = 100.0 + n * 0.025
        log.append(event("Newstate"))
    clock.now = 101.0
    assert log.events_per_second(window=10.0) == pytest.approx(10 / 0.25)


def test_clear_forgets_messages_and_resets_the_counts():
    log = EventLog(maxlen=2, clock=ManualClock())
    for _ in range(3):
        log.append(event("Newstate"))
    log.clear()
    assert (len(log), log.appended, log.evicted) == (0, 0, 0)
    assert log.counts().empty
    log.append(event("Hangup"))
    assert log.to_frame().index.tolist() == [0]


def test_the_log_refuses_what_is_not_a_message():
    with pytest.raises(TypeError, match="Message"):
        EventLog().append("Event: Hangup")


def test_threads_appending_at_once_lose_no_count():
    log = EventLog(maxlen=1000)
    threads, per_thread = 8, 2000
    start = threading.Barrier(threads)
    message = event("Newstate")

    def reader() -> None:
        start.wait()
        for _ in range(per_thread):
            log.append(message)

    workers = [threading.Thread(target=reader) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = threads * per_thread
    assert (log.appended, log.evicted, len(log)) == (total, total - 1000, 1000)
    assert log.to_frame().index.tolist() == list(range(total - 1000, total))
    assert log.counts()["Newstate"] == 1000


# -- list-action results -------------------------------------------------------------------


def test_coreshowchannels_during_a_call_gives_one_row_per_channel():
    frame = channels_frame(answering("g_coreshowchannels", "g3"))
    assert list(frame.columns[: len(CHANNEL_COLUMNS)]) == list(CHANNEL_COLUMNS)
    assert not {"Event", "ActionID", "EventList"} & set(frame.columns)
    assert frame["Channel"].tolist() == [
        "Local/1000@internal-00000000;2",
        "Local/1000@internal-00000000;1",
    ]
    assert frame["Application"].tolist() == ["Answer", "Wait"]
    assert str(frame["ChannelState"].dtype) == "Int64"
    assert frame["Duration"].tolist() == [pd.Timedelta(0), pd.Timedelta(0)]


def test_demo2_coreshowchannels_shows_both_legs_in_one_bridge():
    frame = channels_frame(answering("demo2_call_1001_to_1002", "d2-csc"))
    assert frame["CallerIDNum"].tolist() == ["1002", "1001"]
    assert frame["BridgeId"].nunique() == 1
    assert frame["Duration"].tolist() == [pd.Timedelta(seconds=1)] * 2


def test_the_client_list_result_and_a_plain_list_give_the_same_frame():
    messages = answering("g_coreshowchannels", "g3")
    result = SimpleNamespace(response=messages[0], events=messages[1:-1], complete=messages[-1])
    pd.testing.assert_frame_equal(channels_frame(result), channels_frame(messages))


def test_idle_coreshowchannels_gives_an_empty_frame_with_the_columns():
    frame = channels_frame(answering("g_coreshowchannels", "g1"))
    assert len(frame) == 0
    assert list(frame.columns) == list(CHANNEL_COLUMNS)
    assert str(frame["ChannelState"].dtype) == "Int64"


def test_pjsip_endpoints_give_one_row_per_endpoint():
    frame = endpoints_frame(answering("h2_pjsip_with_registered_contact", "h2-2"))
    assert list(frame.columns[: len(ENDPOINT_COLUMNS)]) == list(ENDPOINT_COLUMNS)
    assert frame["ObjectName"].tolist() == ["1001", "1002"]
    assert frame["DeviceState"].tolist() == ["Not in use", "Unavailable"]
    assert str(frame["ActiveChannels"].dtype) == "Int64"
    assert frame["Contacts"].tolist() == ["1001/sip:1001@127.0.0.1:59848,", ""]


def test_pjsip_contacts_show_an_unqualified_roundtrip_as_missing():
    frame = contacts_frame(answering("h2_pjsip_with_registered_contact", "h2-1"))
    assert list(frame.columns[: len(CONTACT_COLUMNS)]) == list(CONTACT_COLUMNS)
    contact = frame.iloc[0]
    assert (contact["Endpoint"], contact["Status"]) == ("1001", "NonQualified")
    assert pd.isna(contact["RoundtripUsec"])  # Asterisk sends N/A
    assert contact["ViaPort"] == 59848
    assert contact["QualifyTimeout"] == 3.0


def test_no_contacts_found_gives_an_empty_contacts_frame():
    frame = contacts_frame(answering("h2_pjsip_with_registered_contact", "h2-3"))
    assert len(frame) == 0 and list(frame.columns) == list(CONTACT_COLUMNS)


def test_a_list_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="expected CoreShowChannel items, got EndpointList"):
        channels_frame(answering("h2_pjsip_with_registered_contact", "h2-2"))


def test_queue_status_gives_one_frame_per_item_type():
    frames = queue_status_frames(answering("r_queuestatus", "r1"))
    assert set(frames) == {"QueueParams", "QueueMember", "QueueEntry"}
    params, members, entries = frames["QueueParams"], frames["QueueMember"], frames["QueueEntry"]
    assert params[["Queue", "Strategy"]].values.tolist() == [["support", "ringall"]]
    assert str(params["Calls"].dtype) == "Int64"
    assert members["Name"].tolist() == ["Local/1000@internal"]
    assert members["Status"].tolist() == [1] and str(members["Status"].dtype) == "Int64"
    assert len(entries) == 0 and "Position" in entries.columns


def test_queue_status_of_an_unknown_queue_gives_empty_frames():
    frames = queue_status_frames(answering("r_queuestatus", "r3"))
    assert [len(frame) for frame in frames.values()] == [0, 0, 0]


def test_any_list_keeps_its_item_types_and_drops_the_list_bookkeeping():
    frame = list_frame(answering("r_queuestatus", "r1"))
    assert frame["Event"].tolist() == ["QueueParams", "QueueMember"]
    assert isinstance(frame["Event"].dtype, pd.CategoricalDtype)
    assert not {"ActionID", "EventList", "ListItems"} & set(frame.columns)
    summary = list_frame(answering("r_queuestatus", "r4"))
    assert summary[["Queue", "LoggedIn", "Available"]].values.tolist() == [["support", 1, 1]]


# -- calls ------------------------------------------------------------------------------


def test_demo2_is_one_answered_call_from_1001_to_1002_hung_up_by_1002(demo2):
    calls = calls_frame(demo2)
    assert list(calls.columns) == list(CALL_COLUMNS)
    assert len(calls) == 1
    call = calls.iloc[0]
    who = call[["linkedid", "caller", "callee", "channels"]].tolist()
    assert who == [DEMO2_CALL, "1001", "1002", 2]
    assert call["dial_status"] == "ANSWER"
    assert (call["cause"], call["cause_txt"]) == (16, "Normal Clearing")
    assert (call["hungup_by"], call["hungup_channel"]) == ("1002", "PJSIP/1002-00000009")
    assert call["start"] < call["answer"] < call["end"]


def test_demo2_talk_time_and_duration_agree_with_asterisks_own_timers(demo2):
    call = calls_frame(demo2).iloc[0]
    timers = demo2[demo2["Variable"].isin(["ANSWEREDTIME_MS", "DIALEDTIME_MS"])]
    asterisk = dict(zip(timers["Variable"], pd.to_numeric(timers["Value"], errors="coerce")))
    assert abs(call["talk_time"].total_seconds() * 1000 - asterisk["ANSWEREDTIME_MS"]) < 5
    assert abs(call["duration"].total_seconds() * 1000 - asterisk["DIALEDTIME_MS"]) < 5


def test_demo3_echo_test_is_a_one_channel_call(demo3):
    calls = calls_frame(demo3)
    assert len(calls) == 1
    call = calls.iloc[0]
    who = call[["linkedid", "caller", "callee", "channels"]].tolist()
    assert who == [DEMO3_CALL, "1001", "9999", 1]
    assert pd.isna(call["dial_status"])  # no Dial() in an echo test
    # Asterisk 22 reports cause 0 here, not the course's "16 Normal Clearing".
    assert (call["cause"], call["cause_txt"]) == (0, "Unknown")
    assert call["hungup_by"] == "1001"
    assert call["talk_time"] == call["duration"]  # Answer() came first


def test_a_call_still_up_has_no_end_yet(demo2):
    before_hangup = demo2.loc[: demo2.index[demo2["Event"] == "Hangup"][0] - 1]
    call = calls_frame(before_hangup).iloc[0]
    assert pd.notna(call["answer"])
    assert pd.isna(call["end"]) and pd.isna(call["duration"]) and pd.isna(call["talk_time"])
    assert pd.isna(call["cause"])


def test_a_call_ends_only_when_its_last_channel_hangs_up(demo2):
    first_hangup = demo2.index[demo2["Event"] == "Hangup"][0]
    call = calls_frame(demo2.loc[:first_hangup]).iloc[0]  # 1002 gone, 1001 still up
    assert pd.isna(call["end"])
    assert (call["cause"], call["hungup_by"]) == (16, "1002")


def test_list_items_in_the_stream_are_snapshots_not_call_history(demo2):
    timeline = call_timeline(demo2, DEMO2_CALL)
    assert "CoreShowChannel" not in set(timeline["event"])
    assert len(timeline) == ((demo2["Linkedid"] == DEMO2_CALL) & demo2["ActionID"].isna()).sum()


def test_an_originated_call_groups_both_local_halves():
    calls = calls_frame(events_frame(received("o_originate_events")))
    call = calls.iloc[0]
    assert len(calls) == 1 and call["channels"] == 2
    assert call["callee"] == "9999" and call["dial_status"] == "ANSWER"
    timeline = call_timeline(events_frame(received("o_originate_events")))
    dial = timeline[timeline["event"] == "DialBegin"].iloc[0]
    assert pd.isna(dial["channel"]) and dial["dest_channel"] == "Local/9999@internal-00000002;1"


def test_no_events_give_an_empty_calls_table_with_its_columns():
    calls = calls_frame(events_frame([]))
    assert len(calls) == 0
    assert calls.dtypes.astype(str).to_dict() == CALL_COLUMNS


def test_calls_need_an_events_frame():
    with pytest.raises(ValueError, match="events_frame"):
        calls_frame(pd.DataFrame({"Channel": ["PJSIP/1001-00000001"]}))


# -- one call's timeline and chart -------------------------------------------------------------


def test_demo2_timeline_has_one_row_per_event_of_the_call_in_order(demo2):
    timeline = call_timeline(demo2, DEMO2_CALL)
    assert list(timeline.columns) == list(TIMELINE_COLUMNS)
    assert timeline.dtypes.astype(str).to_dict() == TIMELINE_COLUMNS
    assert len(timeline) == 84
    first, last = timeline.iloc[0], timeline.iloc[-1]
    assert first[["channel", "event", "state"]].tolist() == [
        "PJSIP/1001-00000008", "Newchannel", "Ring",
    ]
    assert first["elapsed"] == pd.Timedelta(0)
    assert last[["channel", "event", "detail"]].tolist() == [
        "PJSIP/1001-00000008", "Hangup", "16 Normal Clearing",
    ]
    assert timeline["elapsed"].is_monotonic_increasing
    request = timeline[timeline["event"] == "HangupRequest"].iloc[0]
    assert (request["channel"], request["detail"]) == ("PJSIP/1002-00000009", "cause 16")
    dial = timeline[timeline["event"] == "DialBegin"].iloc[0]
    assert dial["detail"] == "dials PJSIP/1002-00000009"
    assert dial["dest_channel"] == "PJSIP/1002-00000009"
    ringing = timeline[timeline["event"] == "Newstate"].iloc[0]
    assert (ringing["channel"], ringing["state"]) == ("PJSIP/1002-00000009", "Ringing")


def test_the_timeline_defaults_to_the_call_that_started_last(demo2, demo3):
    both = pd.concat([demo2, demo3], ignore_index=True)
    assert set(call_timeline(both)["channel"]) == {"PJSIP/1001-0000000a"}
    assert len(calls_frame(both)) == 2


def test_an_unknown_call_is_a_key_error(demo2):
    with pytest.raises(KeyError, match="no call with Linkedid"):
        call_timeline(demo2, "123.4")
    with pytest.raises(KeyError, match="no call"):
        call_timeline(events_frame([]))


def test_demo2_chart_has_a_lane_per_channel_and_a_labelled_marker_per_event(demo2):
    ax = plot_call(demo2)
    shown = 22  # the 84 events of the call less its 62 VarSet
    assert len(ax.collections) == 1
    assert len(ax.collections[0].get_offsets()) == shown
    labels = [text.get_text() for text in ax.texts]
    assert len(labels) == shown
    assert labels[0] == "Newchannel: 1002@internal"
    assert "HangupRequest: cause 16" in labels and labels[-1] == "Hangup: 16 Normal Clearing"
    lanes = [tick.get_text() for tick in ax.get_xticklabels()]
    assert lanes == ["PJSIP/1001-00000008", "PJSIP/1002-00000009"]
    assert len(ax.patches) == 3  # DialBegin, DialState, DialEnd arrows from 1001 to 1002
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # time flows down
    assert ax.get_yticklabels()[-1].get_text() == "+3.078 s"
    assert ax.get_title() == f"Call {DEMO2_CALL}: 1001 → 1002"


def test_the_chart_shows_every_event_when_asked(demo2):
    ax = plot_call(demo2, DEMO2_CALL, skip=())
    assert len(ax.collections[0].get_offsets()) == len(ax.texts) == 84


def test_the_chart_draws_on_the_axes_it_is_given(demo3):
    fig, given = plt.subplots()
    ax = plot_call(demo3, DEMO3_CALL, ax=given)
    assert ax is given and len(fig.axes) == 1
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["PJSIP/1001-0000000a"]
    assert len(ax.texts) == 8  # Newchannel, 3 Newexten, Newstate, 3 hangup events
    assert len(ax.patches) == 0


def test_without_receive_times_the_chart_numbers_the_steps():
    ax = plot_call(events_frame(received("demo3_echo_test")))
    assert [tick.get_text() for tick in ax.get_yticklabels()] == [str(n) for n in range(1, 9)]
    assert ax.get_ylabel() == "event order"


def test_an_originate_dial_gets_its_own_lane():
    ax = plot_call(events_frame(received("o_originate_events")))
    assert NO_CHANNEL in [tick.get_text() for tick in ax.get_xticklabels()]
    assert len(ax.patches) == 2  # DialBegin and DialEnd towards the ;1 half
