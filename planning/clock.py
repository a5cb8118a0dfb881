"""The one clock planning reads. `FLOODGATE_NOW` (ISO 8601, e.g. 2028-10-01T00:00:00Z) pins it
so that plans, tests and plan diffs are deterministic; otherwise it is the system's UTC time."""

from __future__ import annotations

import os
from datetime import UTC, datetime

NOW_VARIABLE = "FLOODGATE_NOW"


class ClockError(ValueError):
    """FLOODGATE_NOW is set but unreadable."""


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with an offset or `Z`, as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClockError(
            f"{NOW_VARIABLE}: {text!r} is not ISO 8601 (e.g. 2028-10-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ClockError(f"{NOW_VARIABLE}: {text!r} has no offset; add Z for UTC")
    return moment.astimezone(UTC)


def now() -> datetime:
    """Current instant (aware, UTC), or the pinned one from FLOODGATE_NOW."""
    pinned = os.environ.get(NOW_VARIABLE)
    return parse_instant(pinned) if pinned else datetime.now(UTC)


def aws_timestamp(moment: datetime) -> str:
    """`YYYY-MM-DDThh:mm:ssZ` in UTC: the form scheduled actions and the room table use."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
