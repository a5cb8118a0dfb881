"""The planning clock: FLOODGATE_NOW read as an instant, within the years a plan can be made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from planning.clock import ClockError, aws_timestamp, parse_instant


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
        ("2199-12-31T23:59:59Z", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2000-01-01T01:00:00+01:00", datetime(2000, 1, 1, tzinfo=UTC)),
    ],
)
def test_the_first_and_last_instants_of_2000_2199_are_accepted(text, instant) -> None:
    """Catches `EARLIEST < moment`: the first second of 2000 is inside the range, in any
    offset."""
    assert parse_instant(text) == instant


@pytest.mark.parametrize(
    "text", ["1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "2000-01-01T00:59:59+01:00"]
)
def test_an_instant_a_second_outside_2000_2199_is_refused(text) -> None:
    """Catches `moment <= LATEST`: 2200-01-01T00:00Z is the first instant past the range."""
    with pytest.raises(ClockError, match=r"is outside 2000-2199"):
        parse_instant(text)


def test_aws_timestamps_are_utc_with_a_z() -> None:
    """Catches a timestamp written in the instant's own offset instead of UTC."""
    eastern = timezone(timedelta(hours=-5))
    moment = parse_instant("2028-11-07T18:00:00-05:00").astimezone(eastern)
    assert aws_timestamp(moment) == "2028-11-07T23:00:00Z"
