"""The one clock planning reads. `FLOODGATE_NOW` (ISO 8601, e.g. 2028-10-01T00:00:00Z) pins it
so that plans, tests and plan diffs are deterministic; otherwise it is the system's UTC time."""

from __future__ import annotations

import os
from datetime import UTC, datetime

NOW_VARIABLE = "FLOODGATE_NOW"


class ClockError(ValueError):
    """FLOODGATE_NOW is set but unreadable."""


EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
"""Instants a plan can be made at: outside them a typo, and datetime arithmetic overflows near
years 1 and 9999."""


def parse_instant(text: str, source: str = NOW_VARIABLE) -> datetime:
    """An ISO 8601 instant with an offset or `Z`, as an aware UTC datetime; `source` (the
    variable or flag it came from) is named in the error."""
    if not text.strip():
        raise ClockError(f"{source}: empty; give an ISO 8601 instant (e.g. 2028-10-01T00:00:00Z)")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClockError(
            f"{source}: {text!r} is not ISO 8601 (e.g. 2028-10-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ClockError(f"{source}: {text!r} has no offset; add Z for UTC")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = LATEST  # year 1 or 9999 moved past the ends of datetime: out of range anyway
    if not EARLIEST <= moment < LATEST:
        raise ClockError(f"{source}: {text!r} is outside {EARLIEST:%Y}-{LATEST.year - 1}")
    return moment


def now() -> datetime:
    """Current instant (aware, UTC), or the pinned one from FLOODGATE_NOW."""
    pinned = os.environ.get(NOW_VARIABLE)
    return parse_instant(pinned) if pinned else datetime.now(UTC)


def aws_timestamp(moment: datetime) -> str:
    """`YYYY-MM-DDThh:mm:ssZ` in UTC: the form scheduled actions and the room table use."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
