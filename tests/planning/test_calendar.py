"""Calendar: rules expand to the right nights, DST is applied per occurrence, bad input is named."""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from planning.calendar import CalendarError, load_calendar, parse_calendar, skipped

ELECTION: dict[str, Any] = {
    "name": "us-general-election",
    "time_zone": "America/Toronto",
    "start": "2024-11-05T18:00:00",
    "duration_h": 10,
    "rule": "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
    "peak_multiple": 20,
}
FROM, TO = datetime(2025, 1, 1, tzinfo=UTC), datetime(2036, 1, 1, tzinfo=UTC)


def calendar_of(*events: dict[str, Any]):
    return parse_calendar({"events": [copy.deepcopy(e) for e in events]})


def test_elections_follow_the_tuesday_after_the_first_monday() -> None:
    starts = [
        o.local_start.date().isoformat()
        for o in calendar_of(ELECTION).occurrences("prod", FROM, TO)
    ]
    assert starts == ["2028-11-07", "2032-11-02"]


def test_2028_election_is_two_days_after_clocks_go_back() -> None:
    (night,) = [
        o for o in calendar_of(ELECTION).occurrences("prod", FROM, TO) if o.start.year == 2028
    ]
    assert night.start == datetime(2028, 11, 7, 23, 0, tzinfo=UTC)  # 18:00 EST, UTC-5
    assert night.end == datetime(2028, 11, 8, 9, 0, tzinfo=UTC)


def test_2032_election_is_before_the_change_so_still_daylight_time() -> None:
    (night,) = [
        o for o in calendar_of(ELECTION).occurrences("prod", FROM, TO) if o.start.year == 2032
    ]
    assert night.start == datetime(2032, 11, 2, 22, 0, tzinfo=UTC)  # 18:00 EDT, UTC-4


def test_a_night_across_the_dst_change_keeps_its_wall_clock_hours() -> None:
    event = {**ELECTION, "rule": None, "start": "2028-11-04T20:00:00", "duration_h": 10}
    (night,) = calendar_of(event).occurrences("prod", FROM, TO)
    # 20:00 EDT (00:00Z) to 06:00 EST (11:00Z): eleven real hours for ten on the wall clock.
    assert (night.start.hour, night.end.hour) == (0, 11)


def test_event_for_other_stacks_is_skipped() -> None:
    event = {**ELECTION, "stacks": ["prod"]}
    assert calendar_of(event).occurrences("dev", FROM, TO) == []


def test_shipped_calendar_loads_and_imports_the_debates() -> None:
    calendar = load_calendar()
    names = {e.name for e in calendar.events}
    assert "us-presidential-debate-1-2028" in names
    debates = [o for o in calendar.occurrences("prod", FROM, TO) if "debate" in o.name]
    assert len(debates) == 3
    first = min(debates, key=lambda o: o.start)
    assert first.start == datetime(2028, 9, 27, 1, 0, tzinfo=UTC)  # 21:00 EDT
    assert first.spec.peak_multiple == 5


def test_ics_rrule_and_dtend_are_imported(tmp_path: Path) -> None:
    (tmp_path / "x.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
        "UID:a@t\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Budget Day\r\n"
        "DTSTART;TZID=America/Vancouver:20270301T090000\r\n"
        "DTEND;TZID=America/Vancouver:20270301T150000\r\n"
        "RRULE:FREQ=YEARLY;COUNT=2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    calendar = parse_calendar({"ics": [{"path": "x.ics", "peak_users": 5000}]}, tmp_path)
    nights = calendar.occurrences("prod", FROM, TO)
    assert [o.key for o in nights] == ["budget-day-20270301", "budget-day-20280301"]
    assert nights[0].start == datetime(2027, 3, 1, 17, 0, tzinfo=UTC)
    assert nights[0].end - nights[0].start == nights[1].end - nights[1].start


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"time_zone": "America/Torontoo"}, r"events\[us-general-election\]\.time_zone: is not"),
    ({"time_zone": "Toronto"}, r"did you mean America/Toronto\?"),
    ({"rule": None, "duration_h": None, "end": "2024-11-05T17:00:00"},
     r"end 2024-11-05 17:00:00 is not after start 2024-11-05 18:00:00"),
    ({"rule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, r"never occurs on or after 2024-11-05"),
    ({"rule": "FREQ=SOMETIMES"}, r"FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY"),
    ({"rule": "FREQ=DAILY;BYHOUR=xx"}, r"is not an RFC 5545 RRULE"),
    ({"peak_multiple": 0.5}, r"peak_multiple: Input should be greater than 1 \(got 0\.5\)"),
    ({"peak_multiple": 5000}, r"peak_multiple: Input should be less than or equal to 1000"),
    ({"peak_users": 1000}, r"give exactly one of peak_multiple .* or peak_users"),
    ({"peak_multiple": None}, r"give exactly one of peak_multiple .* or peak_users"),
    ({"end": "2024-11-06T04:00:00"}, r"give exactly one of end or duration_h"),
    ({"start": "2025-03-09T02:30:00", "rule": None},
     r"2025-03-09 02:30:00 does not exist in America/Toronto \(clocks skip it for DST\)"),
    ({"start": "2024-11-05T18:00:00+00:00"}, r"must be a local wall-clock time without offset"),
    ({"name": "US Election"}, r"name: must be lower-case letters"),
    ({"colour": "red"}, r"colour: Extra inputs are not permitted"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_event_is_named_with_its_problem(change: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError) as caught:
        calendar_of({**ELECTION, **change})
    assert re.search(message, str(caught.value)), str(caught.value)


LATE_DEBATE = {
    **ELECTION,
    "name": "late-debate",
    "rule": None,
    "start": "2028-11-07T21:00:00",
    "duration_h": 2,
    "peak_multiple": 5,
}
"""A debate that runs into election night."""


def test_overlapping_events_for_a_stack_are_rejected() -> None:
    calendar = calendar_of(ELECTION, LATE_DEBATE)
    with pytest.raises(
        CalendarError,
        match=r"us-general-election-20281107 .* and "
        r"late-debate-20281107 .* overlap for stack prod",
    ):
        calendar.occurrences("prod", FROM, TO)


def test_overlap_on_another_stack_only_is_fine() -> None:
    debate = {**LATE_DEBATE, "stacks": ["staging"]}
    assert len(calendar_of(ELECTION, debate).occurrences("prod", FROM, TO)) == 2


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(CalendarError, match=r"repeated: \['us-general-election'\]"):
        calendar_of(ELECTION, ELECTION)


def test_missing_ics_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"ics.path: no file .*nope.ics"):
        parse_calendar({"ics": [{"path": "nope.ics", "peak_multiple": 2}]}, tmp_path)


def test_calendar_wide_stacks_apply_unless_an_event_names_its_own() -> None:
    own = {
        **ELECTION,
        "name": "dev-rehearsal",
        "rule": None,
        "start": "2028-06-01T10:00:00",
        "stacks": ["dev"],
    }
    calendar = parse_calendar({"stacks": ["prod"], "events": [ELECTION, own]})
    assert [o.name for o in calendar.occurrences("dev", FROM, TO)] == ["dev-rehearsal"]
    assert {o.name for o in calendar.occurrences("prod", FROM, TO)} == {"us-general-election"}


def test_shipped_calendar_leaves_dev_and_pr_alone() -> None:
    calendar = load_calendar()
    assert calendar.occurrences("pr", FROM, TO) == []
    assert calendar.occurrences("dev", FROM, TO) == []


def test_a_floating_ics_time_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
        "UID:a@t\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Budget Day\r\n"
        "DTSTART:20270301T090000\r\nDURATION:PT2H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(CalendarError, match="has no time zone; give it a TZID"):
        parse_calendar({"ics": [{"path": "x.ics", "peak_users": 5000}]}, tmp_path)


def test_a_utc_ics_time_is_kept_in_utc(tmp_path: Path) -> None:
    (tmp_path / "x.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
        "UID:a@t\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Budget Day\r\n"
        "DTSTART:20270301T170000Z\r\nDURATION:PT2H\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (night,) = parse_calendar(
        {"ics": [{"path": "x.ics", "peak_users": 5000}]}, tmp_path
    ).occurrences("prod", FROM, TO)
    assert night.start == datetime(2027, 3, 1, 17, 0, tzinfo=UTC)


DEBATES = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:d@t\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Debate\r\n"
    "DTSTART;TZID=America/New_York:20280926T210000\r\nDURATION:PT4H\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=3\r\n{master}END:VEVENT\r\n{extra}END:VCALENDAR\r\n"
)


def debates(tmp_path: Path, master: str = "", extra: str = ""):
    (tmp_path / "d.ics").write_text(DEBATES.format(master=master, extra=extra))
    calendar = parse_calendar({"ics": [{"path": "d.ics", "peak_multiple": 5}]}, tmp_path)
    return calendar, [o.key for o in calendar.occurrences("prod", FROM, TO)]


def test_ics_rdate_adds_nights_and_exdate_removes_them(tmp_path: Path) -> None:
    """RFC 5545 3.8.5: the set is the RRULE's nights and the RDATEs, less the EXDATEs."""
    calendar, keys = debates(
        tmp_path,
        "RDATE;TZID=America/New_York:20281017T210000,20281024T210000\r\n"
        "RDATE:20281031T010000Z\r\nEXDATE;TZID=America/New_York:20281003T210000\r\n",
    )
    assert keys == ["debate-20280926", "debate-20281010", "debate-20281017", "debate-20281024",
                    "debate-20281030"]  # fmt: skip
    nights = calendar.occurrences("prod", FROM, TO)
    assert [o.added for o in nights] == [False, False, True, True, True]
    assert nights[-1].start == datetime(2028, 10, 31, 1, tzinfo=UTC)  # 21:00 EDT, from UTC
    (gone,) = skipped(calendar, "prod", FROM, TO)
    assert (gone.key, gone.reason) == ("debate-20281003", "EXDATE")


def test_a_cancelled_ics_event_plans_nothing_and_says_so(tmp_path: Path) -> None:
    calendar, keys = debates(tmp_path, "STATUS:CANCELLED\r\n")
    assert keys == []
    assert [(s.key, s.reason) for s in skipped(calendar, "prod", FROM, TO)] == [
        (f"debate-2028{day}", "cancelled (STATUS:CANCELLED)") for day in ("0926", "1003", "1010")
    ]


def override(night: str, start: str, status: str = "") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:d@t\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Debate\r\n"
        f"RECURRENCE-ID;TZID=America/New_York:{night}\r\n"
        f"DTSTART;TZID=America/New_York:{start}\r\nDURATION:PT4H\r\n{status}END:VEVENT\r\n"
    )


def test_a_recurrence_id_cancels_or_moves_one_night(tmp_path: Path) -> None:
    cancelled = override("20281003T210000", "20281003T210000", "STATUS:CANCELLED\r\n")
    moved = override("20281010T210000", "20281011T200000")
    same = override("20280926T210000", "20280926T210000")  # a new description only
    calendar, keys = debates(tmp_path, extra=cancelled + moved + same)
    assert keys == ["debate-20280926", "debate-20281011"]
    assert [(s.key, s.reason) for s in skipped(calendar, "prod", FROM, TO)] == [
        ("debate-20281003", "EXDATE"),
        ("debate-20281010", "EXDATE"),
    ]


def test_yaml_events_take_rdates_exdates_and_cancelled() -> None:
    extra = {**ELECTION, "rdates": ["2029-11-06T18:00:00"], "exdates": ["2032-11-02T18:00:00"]}
    keys = [o.key for o in calendar_of(extra).occurrences("prod", FROM, TO)]
    assert "us-general-election-20291106" in keys and "us-general-election-20321102" not in keys
    off = calendar_of({**ELECTION, "cancelled": True})
    assert off.occurrences("prod", FROM, TO) == []
    assert len(skipped(off, "prod", FROM, TO)) == 2  # 2028 and 2032: 2036's is after TO


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rdates": ["2029-03-11T02:30:00"]}, r"2029-03-11 02:30:00 does not exist in America/To"),
        ({"rdates": [date(2029, 11, 6)]}, r"rdates: is a date alone"),  # as YAML reads it
        ({"exdates": ["2032-11-02T18:00:00Z"]}, r"exdates: must be a local wall-clock time"),
    ],
)
def test_bad_rdates_and_exdates_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        calendar_of({**ELECTION, **change})


def test_a_date_only_ics_rdate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"event 'Debate': RDATE .* is a date alone"):
        debates(tmp_path, "RDATE;VALUE=DATE:20281017\r\n")


MORNING = {
    **ELECTION,
    "name": "budget-lockup",
    "rule": None,
    "start": "2028-06-01T10:00:00",
    "duration_h": 2,
}
"""10:00-12:00 EDT: 14:00Z-16:00Z."""


def test_a_night_ending_exactly_at_the_window_start_is_not_in_it() -> None:
    """Catches `finishes >= start`: a night over at 16:00Z is not in a window from 16:00Z."""
    calendar = calendar_of(MORNING)
    assert calendar.occurrences("prod", datetime(2028, 6, 1, 16, tzinfo=UTC), TO) == []
    (night,) = calendar.occurrences("prod", datetime(2028, 6, 1, 15, 59, 59, tzinfo=UTC), TO)
    assert (night.start, night.end) == (
        datetime(2028, 6, 1, 14, tzinfo=UTC),
        datetime(2028, 6, 1, 16, tzinfo=UTC),
    )


def test_a_night_starting_exactly_at_the_window_end_is_not_in_it() -> None:
    """Catches `begins <= end`: the window [start, end) ends before a night starting at end."""
    calendar = calendar_of(MORNING)
    assert calendar.occurrences("prod", FROM, datetime(2028, 6, 1, 14, tzinfo=UTC)) == []
    assert len(calendar.occurrences("prod", FROM, datetime(2028, 6, 1, 14, 0, 1, tzinfo=UTC))) == 1


def test_back_to_back_events_do_not_overlap() -> None:
    """Catches `after.start <= before.end`: one event ending at 12:00 as the next starts at
    12:00 share no second; a minute earlier they do."""
    follows = {**MORNING, "name": "budget-speech", "start": "2028-06-01T12:00:00"}
    nights = calendar_of(MORNING, follows).occurrences("prod", FROM, TO)
    assert [o.name for o in nights] == ["budget-lockup", "budget-speech"]
    early = {**follows, "start": "2028-06-01T11:59:00"}
    with pytest.raises(CalendarError, match="overlap for stack prod"):
        calendar_of(MORNING, early).occurrences("prod", FROM, TO)


def test_skipped_nights_of_later_events_are_listed_after_another_stacks_event() -> None:
    """Catches `continue` turned into `break` in skipped(): an event for another stack listed
    first hid every skipped night after it."""
    staging = {**MORNING, "name": "staging-drill", "stacks": ["staging"]}
    dropped = {**ELECTION, "exdates": ["2028-11-07T18:00:00"]}
    (gone,) = skipped(calendar_of(staging, dropped), "prod", FROM, TO)
    assert (gone.key, gone.reason) == ("us-general-election-20281107", "EXDATE")


def test_a_skipped_night_still_running_at_the_window_start_is_listed() -> None:
    """Catches dropping the event's duration in skipped(): a night cancelled from 14:00Z to
    16:00Z is still listed from 15:00Z, as its planned twin would still be in occurrences."""
    off = calendar_of({**MORNING, "cancelled": True})
    (night,) = skipped(off, "prod", datetime(2028, 6, 1, 15, tzinfo=UTC), TO)
    assert night.key == "budget-lockup-20280601"
