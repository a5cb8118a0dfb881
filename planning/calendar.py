"""Event calendar: known nights (elections, debates, announcements) as validated occurrences.

Source: `stacks/events.yaml`, holding fixed events, RFC 5545 recurrence rules (python-dateutil)
and iCalendar files to import (icalendar). Times are local wall-clock times in each event's IANA
time zone and become UTC only after expansion, so DST is applied per occurrence: the 2028 US
election (7 November) falls two days after clocks go back, and its 18:00 Eastern start is
23:00 UTC, not 22:00 as in October.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import icalendar
from dateutil.rrule import rrulestr
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from planning.settings import STACKS_DIR
from planning.shapes import DEFAULT_SHAPE, SHAPES
from planning.yaml_file import YamlFileError, load_yaml

EVENTS_FILE = STACKS_DIR / "events.yaml"
LOOK_AHEAD = timedelta(days=5 * 366)
"""How far ahead the commands look for "the next event" (rehearse's default and --event, plan's
next event beyond its horizon): one election cycle."""
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_UTC_UNTIL = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
MAX_PEAK_MULTIPLE = 1000  # 1,000x baseline is a typo, not a forecast
MAX_PEAK_USERS = 100_000_000
"""More people at once than any national portal serves: a typo (10^15 was accepted)."""
DAILY_OR_SLOWER = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
"""An event lasts hours: a rule that recurs faster is a mistake, and dateutil would expand it
without bound (INTERVAL=0 and FREQ=SECONDLY hung the plan)."""
RoomMode = Literal["armed", "queue", "off"]
"""armed: the room queues by itself once the fleet is full; queue: everyone queues for the
whole window; off: no waiting room for this event."""


class CalendarError(ValueError):
    """Invalid calendar; the message names the event, the key, the value and the rule."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Peak(_Model):
    peak_multiple: float | None = Field(default=None, gt=1, le=MAX_PEAK_MULTIPLE)
    """Expected peak concurrent users as a multiple of the stack's baseline users."""
    peak_users: int | None = Field(default=None, gt=0, le=MAX_PEAK_USERS)
    """Expected peak concurrent users, absolute."""
    waiting_room: RoomMode = "armed"
    lead_time_s: int | None = Field(default=None, ge=0, le=7 * 86_400)
    """Override of the planned lead time (seconds before start that capacity is in service)."""
    stacks: list[str] | None = None
    """Stacks the event applies to; None means every stack."""
    shape: str = DEFAULT_SHAPE
    """How the crowd rises and falls (planning/shapes.py), for the rehearsal."""

    @field_validator("shape")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if value not in SHAPES:
            raise ValueError(f"must be one of {sorted(SHAPES)}")
        return value

    @model_validator(mode="after")
    def _one_peak(self) -> Self:
        if (self.peak_multiple is None) == (self.peak_users is None):
            raise ValueError(
                "give exactly one of peak_multiple (x baseline) or peak_users (absolute)"
            )
        return self


class EventSpec(_Peak):
    """One event, fixed or recurring. `start` is the local start of the first occurrence."""

    name: str
    time_zone: str
    start: datetime
    end: datetime | None = None
    duration_h: float | None = Field(default=None, gt=0, le=72)
    rule: str | None = None
    """RFC 5545 RRULE body, e.g. FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,...,8"""
    rdates: list[datetime] = []
    """More local starts, each as long as the event (RFC 5545 RDATE: a debate added)."""
    exdates: list[datetime] = []
    """Local starts that do not happen after all (RFC 5545 EXDATE: a night dropped)."""
    cancelled: bool = False
    """The whole event is off (RFC 5545 STATUS:CANCELLED): `make plan` lists it, nothing is
    planned or paid for."""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("must be lower-case letters, digits and dashes (it names resources)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            city = value.rsplit("/", maxsplit=1)[-1]
            close = sorted(z for z in available_timezones() if z.endswith(city))
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"is not an IANA time zone such as America/Toronto{hint}") from None
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date_and_time(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            raise ValueError("is a date alone; give a local date and time, e.g. 2028-11-07T18:00")
        return value

    @field_validator("rdates", "exdates", mode="before")
    @classmethod
    def _dates_and_times(cls, value: object) -> object:
        for item in value if isinstance(value, list) else []:
            cls._date_and_time(item)
        return value

    @field_validator("rule")
    @classmethod
    def _rule_parts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = dict(p.split("=", 1) for p in value.upper().split(";") if "=" in p)
        if parts.get("FREQ") not in DAILY_OR_SLOWER:
            raise ValueError(
                f"FREQ must be one of {', '.join(DAILY_OR_SLOWER)} (got "
                f"{parts.get('FREQ')!r}): events recur daily at most"
            )
        interval = parts.get("INTERVAL", "1")
        if not interval.isdigit() or int(interval) < 1:
            raise ValueError(f"INTERVAL must be a whole number from 1 (got {interval!r})")
        if "COUNT" in parts and "UNTIL" in parts:
            raise ValueError("COUNT and UNTIL must not both be given (RFC 5545 3.3.10)")
        return value

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("must be a local wall-clock time without offset; set time_zone")
        return value

    @field_validator("rdates", "exdates")
    @classmethod
    def _locals(cls, value: list[datetime]) -> list[datetime]:
        for item in value:
            cls._local(item)
        return sorted(set(value))

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if (self.end is None) == (self.duration_h is None):
            raise ValueError("give exactly one of end or duration_h")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        for begins in (self.start, *self.rdates):
            _localize(begins, self.time_zone)  # rejects a start inside a DST gap
            _localize(begins + self.duration, self.time_zone)  # and an end inside one
        if self.rule is not None:
            try:
                rule = self._rrule()
            except (ValueError, TypeError) as exc:
                raise ValueError(f"rule {self.rule!r} is not an RFC 5545 RRULE ({exc})") from None
            if rule.after(self.start, inc=True) is None:
                raise ValueError(f"rule {self.rule!r} never occurs on or after {self.start}")
        return self

    @property
    def duration(self) -> timedelta:
        if self.end is not None:
            return self.end - self.start
        return timedelta(hours=self.duration_h or 0)

    def local_starts(self, until_local: datetime) -> list[datetime]:
        """Local start times up to `until_local` (naive, in the event's zone): the rule's (or
        the one start) and the RDATEs, less the EXDATEs; none for a cancelled event (RFC 5545
        3.8.5: the recurrence set is RRULE and RDATE less EXDATE)."""
        if self.cancelled:
            return []
        return [t for t in self._all_starts(until_local) if t not in self.exdates]

    def skipped_starts(self, until_local: datetime) -> list[tuple[datetime, str]]:
        """Starts up to `until_local` that are not planned, and why: `EXDATE`, `cancelled`."""
        if self.cancelled:
            return [(t, "cancelled (STATUS:CANCELLED)") for t in self._all_starts(until_local)]
        return [(t, "EXDATE") for t in self._all_starts(until_local) if t in self.exdates]

    def _all_starts(self, until_local: datetime) -> list[datetime]:
        if self.rule is None:
            starts = [self.start] if self.start <= until_local else []
        else:
            starts = list(self._rrule().between(self.start, until_local, inc=True))
        return sorted({*starts, *(t for t in self.rdates if t <= until_local)})

    def _rrule(self) -> Any:
        """The rule over the local start. An UNTIL in UTC (`...Z`, which RFC 5545 requires
        with a TZID start) becomes the same instant in local time, as dateutil wants it with a
        zone-less start."""
        rule = self.rule or ""
        match = _UTC_UNTIL.search(rule)
        if match:
            instant = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            local = instant.astimezone(ZoneInfo(self.time_zone)).strftime("%Y%m%dT%H%M%S")
            rule = rule[: match.start(1)] + local + rule[match.end(0) :]
        return rrulestr(rule, dtstart=self.start)


class IcsSource(_Peak):
    """An iCalendar file whose events all share these planning figures."""

    path: str
    """Relative to stacks/."""


class CalendarFile(_Model):
    stacks: list[str] | None = None
    """Stacks every event applies to unless it names its own; None means every stack."""
    events: list[EventSpec] = []
    ics: list[IcsSource] = []


@dataclass(frozen=True)
class Occurrence:
    """One event night: times aware in UTC, plus the local start for people."""

    name: str
    start: datetime
    end: datetime
    time_zone: str
    spec: EventSpec

    @property
    def added(self) -> bool:
        """An RDATE of the event's, not its start or rule."""
        local = self.local_start.replace(tzinfo=None)
        return local in self.spec.rdates

    @property
    def key(self) -> str:
        """Stable identifier: event name and local start date, e.g. us-election-20281107."""
        local = self.start.astimezone(ZoneInfo(self.time_zone))
        return f"{self.name}-{local:%Y%m%d}"

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(ZoneInfo(self.time_zone))


@dataclass(frozen=True)
class Calendar:
    """Validated event specs (from YAML and imported .ics files)."""

    events: tuple[EventSpec, ...]

    def occurrences(self, stack: str, start: datetime, end: datetime) -> list[Occurrence]:
        """Occurrences for `stack` overlapping [start, end), sorted; raises on overlaps."""
        found: list[Occurrence] = []
        for spec in self.events:
            if spec.stacks is not None and stack not in spec.stacks:
                continue
            zone = ZoneInfo(spec.time_zone)
            until_local = end.astimezone(zone).replace(tzinfo=None)
            for local in spec.local_starts(until_local):
                try:
                    begins = _localize(local, spec.time_zone)
                    # Wall-clock duration: an 18:00-04:00 night stays 18:00-04:00 across DST.
                    finishes = _localize(local + spec.duration, spec.time_zone)
                except ValueError as exc:
                    raise CalendarError(
                        f"event {spec.name}: its occurrence on {local:%Y-%m-%d}: {exc}; "
                        "move the event's local time"
                    ) from None
                if finishes > start and begins < end:
                    found.append(Occurrence(spec.name, begins, finishes, spec.time_zone, spec))
        found.sort(key=lambda o: (o.start, o.name))
        for before, after in itertools.pairwise(found):
            if after.start < before.end:
                raise CalendarError(
                    f"events {before.key} ({before.start:%Y-%m-%d %H:%M}Z-"
                    f"{before.end:%H:%M}Z) and {after.key} ({after.start:%Y-%m-%d %H:%M}Z) "
                    f"overlap for stack {stack}: merge them into one event with the larger peak"
                )
        return found


@dataclass(frozen=True)
class Skipped:
    """A night the calendar names but does not plan: an EXDATE, or a cancelled event."""

    key: str
    local_start: datetime
    reason: str


def skipped(calendar: Calendar, stack: str, start: datetime, end: datetime) -> list[Skipped]:
    """The nights of `stack` between `start` and `end` that are not planned, with why."""
    found = []
    for spec in calendar.events:
        if spec.stacks is not None and stack not in spec.stacks:
            continue
        zone = ZoneInfo(spec.time_zone)
        for local, reason in spec.skipped_starts(end.astimezone(zone).replace(tzinfo=None)):
            moment = local.replace(tzinfo=zone)
            if moment >= start.astimezone(zone) - spec.duration:
                found.append(Skipped(f"{spec.name}-{local:%Y%m%d}", moment, reason))
    return sorted(found, key=lambda s: s.local_start)


def load_calendar(path: Path = EVENTS_FILE) -> Calendar:
    """Read events.yaml and the .ics files it names; raise CalendarError naming every problem."""
    try:
        document = load_yaml(path)
    except YamlFileError as exc:
        raise CalendarError(str(exc)) from None
    return parse_calendar(document or {}, path.parent)


def parse_calendar(document: object, base: Path = STACKS_DIR) -> Calendar:
    try:
        parsed = CalendarFile.model_validate(document)
    except ValidationError as exc:
        raise CalendarError(_describe(exc, document)) from None
    events = list(parsed.events)
    for source in parsed.ics:
        events.extend(import_ics(base / source.path, source))
    if parsed.stacks is not None:
        events = [
            e if e.stacks is not None else e.model_copy(update={"stacks": parsed.stacks})
            for e in events
        ]
    known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in base.glob("Pulumi.*.yaml"))
    named = {s for s in parsed.stacks or []} | {s for e in events for s in e.stacks or []}
    unknown = sorted(s for s in named if known and s not in known)
    if unknown:
        raise CalendarError(
            f"stacks: {unknown} named by events but no stack file (stacks: {', '.join(known)})"
        )
    names = [e.name for e in events]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CalendarError(f"event names must be unique; repeated: {duplicates}")
    return Calendar(tuple(events))


def import_ics(path: Path, source: IcsSource) -> list[EventSpec]:
    """VEVENTs of an iCalendar file as EventSpecs (SUMMARY names the event), read as RFC 5545
    says: RDATE adds nights, EXDATE removes them, STATUS:CANCELLED cancels the event, and a
    VEVENT with a RECURRENCE-ID overrides one night of the event with its UID (cancelled, or
    moved to its own DTSTART; it keeps the event's length and figures). Every error names the
    file and the event."""
    try:
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
    except FileNotFoundError:
        raise CalendarError(f"ics.path: no file {path}") from None
    except ValueError as exc:
        raise CalendarError(f"ics.path: {path} is not iCalendar ({exc})") from None
    vevents = calendar.walk("VEVENT")
    if not vevents:
        raise CalendarError(f"{path}: no VEVENT: the file holds no event to plan")
    masters = [v for v in vevents if "RECURRENCE-ID" not in v]
    by_uid = {str(v.get("UID", "")): v for v in masters if v.get("UID")}
    changes: dict[int, tuple[list[datetime], list[datetime]]] = {}
    for override in (v for v in vevents if "RECURRENCE-ID" in v):
        master = by_uid.get(str(override.get("UID", "")))
        if master is None:  # a lone instance: an event of its own
            masters.append(override)
            continue
        where = f"{path}: event {str(master.get('SUMMARY', '')).strip()!r}"
        zone = _zone_name(_ics_start(master, where), master, where)
        added, removed = changes.setdefault(id(master), ([], []))
        (night,) = _ics_dates(override, "RECURRENCE-ID", zone, where)
        moved = _local_in(_ics_start(override, where), zone)
        if _cancelled(override) or moved != night:
            removed.append(night)
        if not _cancelled(override) and moved != night:
            added.append(moved)
    return [
        _ics_event(path, source, vevent, *changes.get(id(vevent), ([], []))) for vevent in masters
    ]


def _cancelled(vevent: Any) -> bool:
    return str(vevent.get("STATUS", "")).upper() == "CANCELLED"


def _ics_start(vevent: Any, where: str) -> datetime:
    begins = _ics_time(vevent, "DTSTART", where)
    if begins is None:
        raise CalendarError(f"{where}: no DTSTART")
    if not isinstance(begins, date):
        raise CalendarError(
            f"{where}: DTSTART {begins!r} is not a valid date-time (YYYYMMDDTHHMMSS with a TZID)"
        )
    if not isinstance(begins, datetime):
        raise CalendarError(
            f"{where}: DTSTART is a date alone (an all-day event); give it a time and a TZID"
        )
    return begins


def _local_in(moment: datetime, zone: str) -> datetime:
    """An .ics time as a local wall time in `zone`: an aware one converted, a floating one
    (no TZID, no Z) taken as the event's own local time (RFC 5545 3.3.5)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def _ics_dates(vevent: Any, prop: str, zone: str, where: str) -> list[datetime]:
    """Every date-time of RDATE, EXDATE or RECURRENCE-ID (a property may repeat and hold a
    list; a PERIOD counts by its start), as local wall times in `zone`."""
    if prop not in vevent:
        return []
    values = vevent[prop] if isinstance(vevent[prop], list) else [vevent[prop]]
    moments: list[object] = []
    for value in values:
        moments += [d.dt for d in value.dts] if hasattr(value, "dts") else [value.dt]
    found = []
    for moment in moments:
        start = moment[0] if isinstance(moment, tuple) else moment
        if not isinstance(start, datetime):
            raise CalendarError(
                f"{where}: {prop} {start!r} is a date alone; give it a time like DTSTART"
            )
        found.append(_local_in(start, zone))
    return found


def _ics_event(
    path: Path,
    source: IcsSource,
    vevent: Any,
    moved_to: list[datetime],
    moved_from: list[datetime],
) -> EventSpec:
    summary = str(vevent.get("SUMMARY", "")).strip()
    where = f"{path}: event {summary!r}"
    name = re.sub(r"[^a-z0-9]+", "-", summary.lower()).strip("-")[:63]
    begins = _ics_start(vevent, where)
    zone = _zone_name(begins, vevent, where)
    local = _local_in(begins, zone)
    finishes = _ics_time(vevent, "DTEND", where)
    if finishes is not None:
        if not isinstance(finishes, date):
            raise CalendarError(f"{where}: DTEND {finishes!r} is not a valid date-time")
        if not isinstance(finishes, datetime):
            raise CalendarError(f"{where}: DTEND is a date alone; give it a time like DTSTART")
        shape: dict[str, object] = {"end": _local_in(finishes, zone)}
    elif "DURATION" in vevent:
        shape = {"duration_h": vevent.decoded("DURATION").total_seconds() / 3600}
    else:
        raise CalendarError(f"{where}: neither DTEND nor DURATION")
    rule = vevent.get("RRULE")
    try:
        return EventSpec.model_validate(
            {
                **source.model_dump(exclude={"path"}),
                "name": name,
                "time_zone": zone,
                "start": local,
                "rule": rule.to_ical().decode() if rule else None,
                "rdates": [*_ics_dates(vevent, "RDATE", zone, where), *moved_to],
                "exdates": [*_ics_dates(vevent, "EXDATE", zone, where), *moved_from],
                "cancelled": _cancelled(vevent),
                **shape,
            }
        )
    except ValidationError as exc:
        raise CalendarError(f"{where}: {_describe(exc, None)}") from None


def _ics_time(vevent: Any, prop: str, where: str) -> object:
    """A DTSTART/DTEND value, or None if absent; CalendarError if it is not a date or time."""
    if prop not in vevent:
        return None
    try:
        return vevent.decoded(prop)
    except (ValueError, TypeError) as exc:
        raise CalendarError(
            f"{where}: {prop} {vevent[prop].to_ical()!r} is not a valid date-time ({exc})"
        ) from None


def _zone_name(moment: datetime, vevent: Any, where: str) -> str:
    """IANA name of an .ics start's zone; a floating (zone-less) time or an unknown TZID is
    refused, not guessed."""
    tzid = vevent["DTSTART"].params.get("TZID")
    zone = moment.tzinfo
    if zone is None:
        if tzid:
            raise CalendarError(
                f"{where}: TZID {tzid!r} is not a time zone the calendar "
                "defines or IANA knows (e.g. America/Toronto)"
            )
        raise CalendarError(f"{where}: DTSTART {moment} has no time zone; give it a TZID")
    key = getattr(zone, "key", None)
    if key:
        return str(key)
    if zone.utcoffset(moment) == timedelta(0):
        return "UTC"
    raise CalendarError(
        f"{where}: time zone {tzid or zone!r} has no IANA name; use a TZID like America/Toronto"
    )


def _localize(local: datetime, zone_name: str) -> datetime:
    """Local wall time -> aware UTC; a time that DST skips is an error, not a guess."""
    zone = ZoneInfo(zone_name)
    aware = local.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        raise ValueError(f"{local} does not exist in {zone_name} (clocks skip it for DST)")
    return aware.astimezone(UTC)


def _describe(exc: ValidationError, document: object) -> str:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        label = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "events" and isinstance(document, dict):
            try:
                name = document["events"][loc[1]].get("name", "?")
                label = f"events[{name}]" + "".join(f".{p}" for p in loc[2:])
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        # Model-level errors carry the whole event as input: the message already says enough.
        lines.append(
            f"{label}: {message}"
            if isinstance(value, dict)
            else f"{label}: {message} (got {value!r})"
        )
    return "invalid calendar:\n  " + "\n  ".join(lines)
