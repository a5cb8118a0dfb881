"""Every bad input a clear error (issue 15, part 2): one row per class, from the battery that
found hangs, tracebacks and silently accepted mistakes. Each row asserts the error's class and
the fragment that tells the operator what to fix (file, key or event, value, what is allowed).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from planning.calendar import CalendarError, load_calendar
from planning.clock import ClockError, parse_instant
from planning.settings import STACKS_DIR, SettingsError, load_stack_settings
from tests.helpers import settings_with, stack_config

EVENT = """events:
  - name: budget-night
    time_zone: America/Toronto
    start: {start}
    {shape}
    peak_multiple: 3
    {extra}
"""


def calendar_text(
    start: str = "2028-03-01T18:00:00", shape: str = "duration_h: 4", extra: str = ""
) -> str:
    return EVENT.format(start=start, shape=shape, extra=extra)


def stacks_with(tmp_path: Path, name: str, content: str | bytes) -> Path:
    """A copy of stacks/ with `name` replaced by `content`."""
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS_DIR, stacks)
    target = stacks / name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")
    return stacks


def ics(body: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        + body.replace("\n", "\r\n")
        + "END:VCALENDAR\r\n"
    )


def calendar_with_ics(tmp_path: Path, body: str) -> Path:
    stacks = stacks_with(tmp_path, "budget.ics", ics(body))
    (stacks / "events.yaml").write_text(
        "ics:\n  - path: budget.ics\n    peak_multiple: 3\n", encoding="utf-8"
    )
    return stacks / "events.yaml"


VEVENT = "BEGIN:VEVENT\nSUMMARY:Budget Day\nUID:1@test\n{lines}END:VEVENT\n"
PROD_YAML = (STACKS_DIR / "Pulumi.prod.yaml").read_text(encoding="utf-8")

Case = tuple[str, Callable[[Path], Any], type[Exception], str]
CASES: list[Case] = [
    # -- the calendar: hangs and tracebacks ----------------------------------------------------
    ("RRULE INTERVAL=0 (hung)",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         extra="rule: FREQ=YEARLY;INTERVAL=0")) / "events.yaml"),
     CalendarError, "INTERVAL must be a whole number from 1 (got '0')"),
    ("RRULE FREQ=SECONDLY (hung)",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         extra="rule: FREQ=SECONDLY")) / "events.yaml"),
     CalendarError, "FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY (got 'SECONDLY')"),
    ("RRULE INTERVAL=-1",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         extra="rule: FREQ=YEARLY;INTERVAL=-1")) / "events.yaml"),
     CalendarError, "INTERVAL must be a whole number from 1 (got '-1')"),
    ("RRULE with COUNT and UNTIL",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         extra="rule: FREQ=YEARLY;COUNT=3;UNTIL=20300101T000000")) / "events.yaml"),
     CalendarError, "COUNT and UNTIL must not both be given"),
    ("YAML syntax error",
     lambda t: load_calendar(stacks_with(t, "events.yaml", "events: [\n  - name: x\n")
                             / "events.yaml"),
     CalendarError, "events.yaml: line"),
    ("a tab in events.yaml",
     lambda t: load_calendar(stacks_with(t, "events.yaml", "events:\n\t- name: x\n")
                             / "events.yaml"),
     CalendarError, "a tab; YAML indents with spaces only"),
    ("duplicate key in events.yaml",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         extra="peak_multiple: 4")) / "events.yaml"),
     CalendarError, "duplicate key 'peak_multiple' (first on line 6)"),
    ("events.yaml not UTF-8",
     lambda t: load_calendar(stacks_with(t, "events.yaml", b"events:\n  - name: caf\xe9\n")
                             / "events.yaml"),
     CalendarError, "not UTF-8 text (byte 0xe9"),
    ("start: 2028-02-30",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(start="2028-02-30"))
                             / "events.yaml"),
     CalendarError, "'2028-02-30' is not a valid date or time"),
    ("a date-only start",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(start="2028-03-01"))
                             / "events.yaml"),
     CalendarError, "events[budget-night].start: is a date alone"),
    ("peak_users of 10^15",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text().replace(
         "peak_multiple: 3", "peak_users: 1000000000000000")) / "events.yaml"),
     CalendarError, "peak_users: Input should be less than or equal to 100000000"),
    ("an event naming an unknown stack",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         extra="stacks: [prdo]")) / "events.yaml"),
     CalendarError, "stacks: ['prdo'] named by events but no stack file"),
    ("a later occurrence in a DST gap",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         start="2027-03-07T02:30:00", extra="rule: FREQ=WEEKLY")) / "events.yaml"
     ).occurrences("prod", parse_instant("2027-01-01T00:00:00Z"),
                   parse_instant("2028-01-01T00:00:00Z")),
     CalendarError, "event budget-night: its occurrence on 2027-03-14: 2027-03-14 02:30:00 "
                    "does not exist in America/Toronto"),
    ("a fixed event's end in a DST gap",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text(
         start="2028-03-11T22:30:00", shape="end: 2028-03-12T02:30:00")) / "events.yaml"),
     CalendarError, "2028-03-12 02:30:00 does not exist in America/Toronto"),
    (".inf as a peak",
     lambda t: load_calendar(stacks_with(t, "events.yaml", calendar_text().replace(
         "peak_multiple: 3", "peak_multiple: .inf")) / "events.yaml"),
     CalendarError, "peak_multiple: Input should be a finite number"),
    # -- .ics files -----------------------------------------------------------------------------
    (".ics with no VEVENT",
     lambda t: load_calendar(calendar_with_ics(t, "")),
     CalendarError, "budget.ics: no VEVENT"),
    ("VEVENT without DTSTART",
     lambda t: load_calendar(calendar_with_ics(t, VEVENT.format(
         lines="DURATION:PT4H\n"))),
     CalendarError, "budget.ics: event 'Budget Day': no DTSTART"),
    ("DTEND as a DATE",
     lambda t: load_calendar(calendar_with_ics(t, VEVENT.format(
         lines="DTSTART;TZID=America/Toronto:20280301T180000\nDTEND;VALUE=DATE:20280302\n"))),
     CalendarError, "event 'Budget Day': DTEND is a date alone"),
    ("an unknown TZID",
     lambda t: load_calendar(calendar_with_ics(t, VEVENT.format(
         lines="DTSTART;TZID=Mars/Olympus:20280301T180000\nDURATION:PT4H\n"))),
     CalendarError, "TZID 'Mars/Olympus' is not a time zone"),
    ("month 13",
     lambda t: load_calendar(calendar_with_ics(t, VEVENT.format(
         lines="DTSTART;TZID=America/Toronto:20281301T180000\nDURATION:PT4H\n"))),
     CalendarError, "event 'Budget Day': DTSTART '20281301T180000' is not a valid date-time"),
    # -- stack files ----------------------------------------------------------------------------
    ("YAML syntax error in a stack file",
     lambda t: load_stack_settings("prod", stacks_with(t, "Pulumi.prod.yaml", "config: [\n")),
     SettingsError, "Pulumi.prod.yaml: line"),
    ("a tab in a stack file",
     lambda t: load_stack_settings("prod", stacks_with(
         t, "Pulumi.prod.yaml", PROD_YAML.replace("    network:", "\tnetwork:", 1))),
     SettingsError, "a tab; YAML indents with spaces only"),
    ("duplicate key in a stack file",
     lambda t: load_stack_settings("prod", stacks_with(
         t, "Pulumi.prod.yaml", PROD_YAML.replace("      min_size: 6\n",
                                                  "      min_size: 6\n      min_size: 8\n"))),
     SettingsError, "duplicate key 'min_size'"),
    ("a stack file not UTF-8",
     lambda t: load_stack_settings("prod", stacks_with(t, "Pulumi.prod.yaml",
                                                       b"config:\n  x: \xff\n")),
     SettingsError, "not UTF-8 text (byte 0xff"),
    ("the top level not a mapping",
     lambda t: load_stack_settings("prod", stacks_with(t, "Pulumi.prod.yaml", "- config\n")),
     SettingsError, "the top level must be a mapping"),
    ("config: not a mapping",
     lambda t: load_stack_settings("prod", stacks_with(t, "Pulumi.prod.yaml", "config: 3\n")),
     SettingsError, "config: must be a mapping (got 3)"),
    (".inf in a numeric setting",
     lambda t: settings_with(stack_config("prod"), capacity__requests_per_user_per_s=float("inf")),
     SettingsError, "capacity.requests_per_user_per_s: Input should be a finite number"),
    ("a bad aws:region",
     lambda t: load_stack_settings("prod", stacks_with(
         t, "Pulumi.prod.yaml", PROD_YAML.replace("region: ca-central-1", "region: mars-1"))),
     SettingsError, "aws:region: "),
    ("a missing aws:region",
     lambda t: load_stack_settings("prod", stacks_with(
         t, "Pulumi.prod.yaml", PROD_YAML.replace("  aws:region: ca-central-1\n", ""))),
     SettingsError, "aws:region: "),
    ("min_size: true",
     lambda t: settings_with(stack_config("prod"), fleet__min_size=True),
     SettingsError, "fleet.min_size: must be a number or text, not true/false (got True)"),
    ("a loopback VPC CIDR",
     lambda t: settings_with(stack_config("prod"), network__vpc_cidr="127.0.0.0/16"),
     SettingsError, "must lie in a private (RFC 1918) range"),
    ("a link-local VPC CIDR",
     lambda t: settings_with(stack_config("prod"), network__vpc_cidr="169.254.0.0/16"),
     SettingsError, "must lie in a private (RFC 1918) range"),
    ("environment: pr in the prod stack file",
     lambda t: load_stack_settings("prod", stacks_with(
         t, "Pulumi.prod.yaml", PROD_YAML.replace("environment: prod", "environment: pr"))),
     SettingsError, "environment: 'pr' in the 'prod' stack; it must be 'prod'"),
    ("a bad zone and a bad WAF limit: both reported",
     lambda t: settings_with(stack_config("prod"), waf__rate_limit=1,
                             network__zones=["ca-central-1a", "ca-central-1b", "ca-central-1x"]),
     SettingsError, "network.zones: 'ca-central-1x' is not an Availability Zone of ca-central-1"),
    ("a malformed e-mail",
     lambda t: settings_with(stack_config("prod"), alarms__email_subscriptions=["ops@@x.ca"]),
     SettingsError, "alarms.email_subscriptions: ['ops@@x.ca'] are not e-mail addresses"),
    ("a malformed hosted-zone id",
     lambda t: settings_with(stack_config("prod"), load_balancer__hosted_zone_id="/hostedzone/x"),
     SettingsError, "load_balancer.hosted_zone_id: must be a Route 53 hosted-zone id"),
    ("more than 50 tags with Floodgate's own",
     lambda t: settings_with(stack_config("prod"), tags={f"k{i}": "v" for i in range(49)}),
     SettingsError, "a resource would carry 51 tags; AWS allows 50"),
    ("a max size of 10^12",
     lambda t: settings_with(stack_config("prod"), fleet__max_size=10**12),
     SettingsError, "fleet.max_size: Input should be less than or equal to 10000"),
    ("an LCU reservation of 10^9",
     lambda t: settings_with(stack_config("prod"), load_balancer__minimum_capacity_units=10**9),
     SettingsError, "load_balancer.minimum_capacity_units: Input should be less than or equal"),
    ("an instance type that does not exist",
     lambda t: settings_with(stack_config("prod"), fleet__instance_types=["m99.large"]),
     SettingsError, "['m99.large'] are not EC2 instance types Floodgate knows"),
    # -- validators no test exercised ------------------------------------------------------------
    ("VPC prefix beyond the bounds",
     lambda t: settings_with(stack_config("prod"), network__vpc_cidr="10.40.0.0/24"),
     SettingsError, "prefix must be between /16 and /20"),
    ("duplicate zones",
     lambda t: settings_with(stack_config("prod"), network__zones=[
         "ca-central-1a", "ca-central-1a", "ca-central-1b"]),
     SettingsError, "network.zones"),
    ("on-demand base above max size",
     lambda t: settings_with(stack_config("prod"), fleet__on_demand_base=200),
     SettingsError, "fleet.on_demand_base: must be <= max_size (120)"),
    ("warm-pool prepared capacity above max size",
     lambda t: settings_with(stack_config("prod"), fleet__warm_pool__max_prepared=500),
     SettingsError, "fleet.warm_pool.max_prepared"),
    ("equal queue and open thresholds",
     lambda t: settings_with(stack_config("prod"), admission__queue_at_load_pct=75,
                             admission__open_below_load_pct=75),
     SettingsError, "must be below queue_at_load_pct (75) or the room flaps"),
    ("a join design beyond what the room's counters take",
     lambda t: settings_with(stack_config("prod"), admission__design_joins_per_s=20_001),
     SettingsError, "admission.design_joins_per_s: must be at most 20,000: the room's counters"),
    ("a no-show window longer than the token's life",
     lambda t: settings_with(stack_config("prod"), admission__show_s=900,
                             admission__token_ttl_minutes=10),
     SettingsError, "admission.show_s: must be shorter than token_ttl_minutes"),
    ("a session's absolute life under three visits",
     lambda t: settings_with(stack_config("prod"), admission__session_minutes=20,
                             admission__session_max_minutes=59),
     SettingsError, "admission.session_max_minutes: must be at least 3 x session_minutes (60)"),
    ("no carry window", lambda t: settings_with(stack_config("prod"), admission__carry_minutes=0),
     SettingsError, "admission.carry_minutes"),
    ("no carries at all",
     lambda t: settings_with(stack_config("prod"), admission__carries_per_network=0),
     SettingsError, "admission.carries_per_network"),
    # -- instants -------------------------------------------------------------------------------
    ("FLOODGATE_NOW in year 9999", lambda t: parse_instant("9999-12-31T23:59:59Z"),
     ClockError, "FLOODGATE_NOW: '9999-12-31T23:59:59Z' is outside 2000-2199"),
    ("FLOODGATE_NOW before year 1", lambda t: parse_instant("0001-01-01T00:00:00+01:00"),
     ClockError, "is outside 2000-2199"),
    ("--now ''", lambda t: parse_instant("", "--now"), ClockError, "--now: empty"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "act", "error", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_a_clear_error(tmp_path, why, act, error, fragment) -> None:
    with pytest.raises(error) as raised:
        act(tmp_path)
    assert fragment in str(raised.value), str(raised.value)
    assert "Traceback" not in str(raised.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        zones = ["ca-central-1a", "ca-central-1b", "ca-central-1x"]
        settings_with(stack_config("prod"), waf__rate_limit=1, network__zones=zones)
    assert "waf.rate_limit" in str(raised.value) and "network.zones" in str(raised.value)


def test_an_ics_until_in_utc_on_a_tzid_start_is_valid(tmp_path) -> None:
    """RFC 5545 3.3.10: with a TZID start, UNTIL must be UTC; it was refused."""
    calendar = load_calendar(
        calendar_with_ics(
            tmp_path,
            VEVENT.format(
                lines=(
                    "DTSTART;TZID=America/Toronto:20280301T180000\nDURATION:PT4H\n"
                    "RRULE:FREQ=YEARLY;UNTIL=20310301T220000Z\n"
                )
            ),
        )
    )
    starts = calendar.events[0].local_starts(
        parse_instant("2040-01-01T00:00:00Z").replace(tzinfo=None)
    )
    # UNTIL 22:00Z is 17:00 in Toronto: the 2031 occurrence (18:00 local) is past it.
    assert [s.year for s in starts] == [2028, 2029, 2030]
