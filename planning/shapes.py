"""Crowd shapes: how an event's concurrent users rise and fall around its planned peak.

A shape is a piecewise-linear curve of (share of the event's duration since its start, share of
the way from baseline to peak). Past the end it carries on to its last point (the tail), then
baseline. An event names its shape in `stacks/events.yaml` (`shape:`): the planner
(planning/event_plan.py) raises capacity in stages along it, and the rehearsal (`rehearsal/`)
plays the crowd it describes, both scaled to the event's planned peak.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """Keyframes (share of duration, share of peak above baseline), sorted by time."""

    points: tuple[tuple[float, float], ...]
    description: str

    def level(self, elapsed: float) -> float:
        """Share of the peak above baseline at `elapsed` (share of the event's duration)."""
        times = [t for t, _ in self.points]
        if elapsed <= times[0] or elapsed >= times[-1]:
            return 0.0
        i = bisect.bisect_right(times, elapsed)
        (t0, v0), (t1, v1) = self.points[i - 1], self.points[i]
        return v0 + (v1 - v0) * (elapsed - t0) / (t1 - t0)

    def extremes(self, begin: float, end: float) -> tuple[float, float]:
        """Lowest and highest level from `begin` to `end` (shares of the duration, begin <= end):
        the curve is piecewise linear, so they are among the ends and the keyframes between."""
        levels = [self.level(begin), self.level(end)]
        levels += [v for t, v in self.points if begin < t < end]
        return min(levels), max(levels)


# Hours are those of an 18:00-04:00 night (10 h), as shares of it. 2016 (IRCC, US election):
# about 17,000 users at 11 p.m. a week before; more than 200,000 around 11 p.m. on the night,
# rising as results came in from about 8 p.m., falling through the early morning.
_ELECTION = ((0.0, 0.0), (0.2, 0.05), (0.3, 0.3), (0.4, 0.65), (0.5, 1.0), (0.55, 1.0),
             (0.6, 0.9), (0.7, 0.65), (0.8, 0.4), (0.9, 0.22), (1.0, 0.1), (1.1, 0.0))  # fmt: skip
_PLATEAU = ((0.0, 0.0), (0.05, 1.0), (0.9, 1.0), (1.0, 0.3), (1.1, 0.0))
_ANNOUNCEMENT = ((0.0, 0.0), (0.02, 1.0), (0.15, 0.7), (0.5, 0.3), (1.0, 0.1), (1.1, 0.0))

SHAPES: dict[str, Shape] = {
    "election-night": Shape(
        _ELECTION,
        "quiet until results start (20:00 of an 18:00 start), peak at 23:00, falling by 04:00",
    ),
    "plateau": Shape(
        _PLATEAU, "at the peak within the first 5 % of the event, held until 90 %, then down"
    ),
    "announcement": Shape(
        _ANNOUNCEMENT, "everyone at the start (a tabled plan, a published result), then a decay"
    ),
}
DEFAULT_SHAPE = "plateau"
