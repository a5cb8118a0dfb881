"""Nights to rehearse: the crowd (concurrent users wanting the site) at every step, and what
else goes wrong. Scenarios are built from the stack's settings and event plan; `--curve` replays
a real night from a CSV file.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from planning.clock import ClockError, parse_instant
from planning.event_plan import EventPlan, event_curve
from planning.settings import Settings
from rehearsal.stays import Kind

EVENT_SCENARIOS = (
    "event",
    "2016",
    "half-forecast",
    "double-forecast",
    "stress",
    "zone-loss",
    "slow-origin",
    "alb-slow",
    "edge-uncached",
)
"""Nights of the stack's next event (they need a plan). event: the plan's own forecast;
2016: the real 2016 election night on an election night's plan (SEED_2016); half-forecast /
double-forecast: the event's surge above baseline at half / twice the forecast (nights the plan
did not choose); stress: the whole curve at STRESS_FACTOR x; alb-slow: the event's night with
the load balancer scaling at ALB_SLOW_PACE of the pace the planner and the room count on
(`load_balancer.scaling_pct_per_5_min`, a guideline, not a rate AWS publishes); edge-uncached:
the event's night with the origin sending no-store on its public pages, so the edge caches none
of them (only for stacks whose plan counts on `capacity.public_page_pct`)."""
EVENING_SCENARIOS = (
    "flash-crowd",
    "flash-timeouts",
    "flash-cpu-2x",
    "flash-patience-5",
    "flash-patience-60",
    "flash-lognormal",
    "second-crowd",
    "climb-36x",
    "climb-36x-cpu-2x",
)
"""Unannounced crowds on an ordinary evening, with no schedule (any stack, with or without an
event): what the room and target tracking do alone.
- flash-crowd: 10x baseline within 2 minutes, held 3 hours, back over 2;
- flash-timeouts: the flash crowd at twice the CPU per request (so the fleet does overload),
  with overloaded instances queueing until CloudFront's response timeout instead of refusing
  (no target 5xx: the origin's 5xx alarms never see it, only the response time does);
- flash-cpu-2x: the same, with every request costing twice the CPU the settings say (an
  instance serves half of `fleet.requests_per_instance_per_s`);
- flash-patience-5 / -60: the same, with people waiting 5 / 60 minutes on average;
- flash-lognormal: the same, with lognormal visit lengths of the same mean (rehearsal.stays);
- second-crowd: a 10x crowd for 30 minutes, then another an hour after the first, held;
- climb-36x: 36x baseline over 10 minutes, held 2 hours, back over 2;
- climb-36x-cpu-2x: the same at twice the CPU per request (beyond what the fleet's max serves:
  judged against the physical bound)."""
SCENARIOS = (*EVENT_SCENARIOS, *EVENING_SCENARIOS)
STRESS_FACTOR = 3.0
FORECAST_ERRORS = {"half-forecast": 0.5, "double-forecast": 2.0}
"""The event's surge above baseline at these multiples of its forecast."""
SEED_2016: tuple[tuple[float, float], ...] = (
    (0.0, 1.0),
    (1.0, 1.0),
    *((1.0 + h / 2, 1.0 + 11.0 * (h / 8) ** 2) for h in range(1, 9)),
    (7.0, 12.0),
    (12.0, 2.4),
    (14.0, 1.0),
)
"""The 2016 US election night as the seed reports give it, in (hours from the event's start,
multiple of baseline): Canada's immigration portal had about 17,000 users a week before and
200,000+ by 11 p.m. Eastern (12x), the surge building after polls closed from 7 p.m.: baseline
to the polls' close an hour after an 18:00 start, then quadratic to 12x at 23:00, held to 01:00,
down to 2.4x (40,000) by 06:00 and to baseline by 08:00. Scaled to each stack's baseline."""
SEED_2016_NIGHT_H = 14.0
FLASH_MULTIPLE, FLASH_RAMP_S = 10.0, 120
"""flash-crowd: 10x baseline within 2 minutes on an ordinary evening, with no schedule."""
FLASH_AT_H, FLASH_HOLD_H, FLASH_FALL_H = 2.0, 3.0, 2.0
SECOND_CROWD_HOLD_S, SECOND_CROWD_FALL_S, SECOND_CROWD_AFTER_S = 30 * 60, 10 * 60, 3600
CLIMB_MULTIPLE, CLIMB_S, CLIMB_HOLD_H = 36.0, 600, 2.0
COSTLIER = 2.0
"""The -cpu-2x scenarios: CPU per request over what the settings assume."""
FLASH_NIGHT_S = 14 * 3600
FLASH_EVENING = datetime(2028, 10, 3, 22, 0, tzinfo=UTC)
"""When a stack has no event, the flash crowd comes on this ordinary evening (18:00 Toronto)."""
EVENING_ZONE = ZoneInfo("America/Toronto")
"""The evening scenarios' local time: the portal's, where the flash crowd comes at 18:00."""
SLOW_ORIGIN_S, SLOW_ORIGIN_FACTOR = 20 * 60, 0.5
"""slow-origin: per-instance capacity halved for 20 minutes from the peak."""
ALB_SLOW_PACE = 0.5
"""alb-slow: the load balancer grows at this share of `load_balancer.scaling_pct_per_5_min`."""
PAD = timedelta(hours=2)
"""Rehearsed before the event's start and after its end: a 10-hour night is 14 hours."""
CURVE_COLUMNS = ("concurrent_users", "requests_per_minute")


class CurveError(ValueError):
    """A curve file the rehearsal cannot read: names the file, the row and the problem."""


@dataclass(frozen=True)
class Night:
    """One scenario: concurrent users wanting the site per step, from `start`."""

    scenario: str
    start: datetime
    step_s: int
    users: list[float]
    plan: EventPlan | None
    """The event whose schedules, warm pool and reservation the configured stack uses."""
    zone_lost_at: int | None = None
    """Step from which one zone is lost (for the rest of the night)."""
    slow: range = field(default_factory=lambda: range(0))
    """Steps during which each instance serves SLOW_ORIGIN_FACTOR of its rate."""
    edge_cache: bool = True
    """False: the edge caches no public page (the origin sends no-store)."""
    cost: float = 1.0
    """CPU per request over what the settings assume: an instance serves
    `fleet.requests_per_instance_per_s / cost`."""
    silent: bool = False
    """Overloaded instances queue until CloudFront's response timeout rather than refuse."""
    patience_minutes: float | None = None
    """Mean patience in line; None: `rehearsal.patience_minutes`."""
    alb_pace: float = 1.0
    """The load balancer's own scaling, as a share of `load_balancer.scaling_pct_per_5_min`."""
    stays: Kind = "exponential"
    """How visit lengths are distributed (rehearsal.stays), mean `admission.session_minutes`."""
    zone: tzinfo = UTC
    """The night's local time (the event's, the evening's, a replayed curve's offset): charts."""

    def at(self, step: int) -> datetime:
        return self.start + timedelta(seconds=step * self.step_s)


def event_night(plan: EventPlan, settings: Settings, step_s: int) -> list[float]:
    """The event's own curve: its shape scaled from baseline to its planned peak, padded."""
    return event_curve(plan, settings, step_s, PAD)


def night_2016(plan: EventPlan, settings: Settings, step_s: int) -> list[float]:
    """SEED_2016 from the event's start (local time as the event's), the stack's baseline
    before; padded like every event night, and as long as the longer of the two."""
    base = settings.capacity.baseline_users
    event_s = (plan.occurrence.end - plan.occurrence.start).total_seconds()
    pad = PAD.total_seconds()
    steps = int((max(event_s, SEED_2016_NIGHT_H * 3600) + 2 * pad) // step_s)
    points = [(0.0, base), *((pad + h * 3600, base * m) for h, m in SEED_2016), (math.inf, base)]
    return _resample(points, steps, step_s)


def flash_crowd(
    settings: Settings,
    steps: int,
    step_s: int,
    multiple: float = FLASH_MULTIPLE,
    ramp_s: float = FLASH_RAMP_S,
    hold_s: float = FLASH_HOLD_H * 3600,
) -> list[float]:
    """Baseline, then `multiple` x within `ramp_s`, held `hold_s`, back to baseline over 2 h."""
    base = settings.capacity.baseline_users
    rise = FLASH_AT_H * 3600
    points = [
        (0.0, base),
        (rise, base),
        (rise + ramp_s, base * multiple),
        (rise + hold_s, base * multiple),
        (rise + hold_s + FLASH_FALL_H * 3600, base),
        (math.inf, base),
    ]
    return _resample(points, steps, step_s)


def second_crowd(settings: Settings, steps: int, step_s: int) -> list[float]:
    """A 10x crowd held 30 minutes and gone over 10; another an hour after the first began,
    held 3 hours, back to baseline over 2."""
    base = float(settings.capacity.baseline_users)
    top = base * FLASH_MULTIPLE
    first = FLASH_AT_H * 3600
    second = first + SECOND_CROWD_AFTER_S
    points = [
        (0.0, base),
        (first, base),
        (first + FLASH_RAMP_S, top),
        (first + SECOND_CROWD_HOLD_S, top),
        (first + SECOND_CROWD_HOLD_S + SECOND_CROWD_FALL_S, base),
        (second, base),
        (second + FLASH_RAMP_S, top),
        (second + FLASH_HOLD_H * 3600, top),
        (second + (FLASH_HOLD_H + FLASH_FALL_H) * 3600, base),
        (math.inf, base),
    ]
    return _resample(points, steps, step_s)


def evening_night(name: str, settings: Settings, start: datetime, step_s: int) -> Night:
    """One of EVENING_SCENARIOS, from `start`, with no schedule."""
    steps = FLASH_NIGHT_S // step_s
    if name == "second-crowd":
        crowd = second_crowd(settings, steps, step_s)
    elif name.startswith("climb-36x"):
        crowd = flash_crowd(settings, steps, step_s, CLIMB_MULTIPLE, CLIMB_S, CLIMB_HOLD_H * 3600)
    else:
        crowd = flash_crowd(settings, steps, step_s)
    patience = {"flash-patience-5": 5.0, "flash-patience-60": 60.0}.get(name)
    return Night(
        name,
        start,
        step_s,
        crowd,
        None,
        cost=COSTLIER if name.endswith("-cpu-2x") or name == "flash-timeouts" else 1.0,
        silent=name == "flash-timeouts",
        patience_minutes=patience,
        stays="lognormal" if name == "flash-lognormal" else "exponential",
        zone=EVENING_ZONE,
    )


def scenario_nights(
    scenarios: Sequence[str], plan: EventPlan | None, settings: Settings, step_s: int
) -> list[Night]:
    """The named scenarios; event scenarios need a plan (a stack with no events has only the
    evening ones, the same 14-hour evening whatever the event)."""
    nights = []
    start = plan.occurrence.start - PAD if plan is not None else FLASH_EVENING
    for name in scenarios:
        if name in EVENING_SCENARIOS:
            nights.append(evening_night(name, settings, start, step_s))
            continue
        if plan is None or (name == "edge-uncached" and not settings.capacity.public_page_pct):
            continue
        if name == "2016" and plan.occurrence.spec.shape != "election-night":
            continue  # the 2016 figures are an election night's
        curve = event_night(plan, settings, step_s)
        if name == "2016":
            curve = night_2016(plan, settings, step_s)
        peak = max(range(len(curve)), key=curve.__getitem__)
        if name == "stress":
            curve = [u * STRESS_FACTOR for u in curve]
        if name in FORECAST_ERRORS:
            base, factor = settings.capacity.baseline_users, FORECAST_ERRORS[name]
            curve = [base + (u - base) * factor for u in curve]
        lost = peak if name == "zone-loss" else None
        slow = range(peak, peak + SLOW_ORIGIN_S // step_s) if name == "slow-origin" else range(0)
        cached = name != "edge-uncached"
        nights.append(
            Night(
                name,
                start,
                step_s,
                curve,
                plan,
                zone_lost_at=lost,
                slow=slow,
                edge_cache=cached,
                alb_pace=ALB_SLOW_PACE if name == "alb-slow" else 1.0,
                zone=ZoneInfo(plan.occurrence.time_zone),
            )
        )
    return nights


def read_curve(path: Path, settings: Settings, step_s: int) -> tuple[datetime, list[float]]:
    """A real night from CSV: a `timestamp` column (ISO 8601 with offset) and either
    `concurrent_users` or `requests_per_minute` (viewer requests at CloudFront, e.g. the
    distribution's `Requests` metric at 1-minute sums). Rows in time order; interpolated to
    steps; the start is the first row's instant in its own offset (the night's local time).
    Raises CurveError naming the file, the row and the problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CurveError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CurveError(f"{path}: cannot read ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise CurveError(f"{path}: empty; expected a header: timestamp,{'|'.join(CURVE_COLUMNS)}")
    header = [h.strip().lower() for h in rows[0]]
    columns = [c for c in CURVE_COLUMNS if c in header]
    if "timestamp" not in header or len(columns) != 1:
        raise CurveError(
            f"{path}: row 1: header {rows[0]} must have `timestamp` and exactly one of "
            f"{', '.join(CURVE_COLUMNS)}"
        )
    at, value_at = header.index("timestamp"), header.index(columns[0])
    per_user = settings.capacity.requests_per_user_per_s * 60
    points: list[tuple[float, float]] = []
    first: datetime | None = None
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise CurveError(f"{path}: row {number}: {len(row)} columns, header has {len(header)}")
        try:
            moment = parse_instant(row[at])
        except ClockError:
            raise CurveError(
                f"{path}: row {number}: timestamp {row[at]!r} is not ISO 8601 with an offset "
                "(e.g. 2016-11-08T23:00:00-05:00)"
            ) from None
        try:
            value = float(row[value_at])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise CurveError(
                f"{path}: row {number}: {columns[0]} {row[value_at]!r} must be a number >= 0"
            )
        first = first or datetime.fromisoformat(row[at].strip())  # its own offset: charts
        offset = (moment - first).total_seconds()
        if points and offset <= points[-1][0]:
            raise CurveError(
                f"{path}: row {number}: timestamp {row[at]} is not after the row before"
            )
        users = value if columns[0] == "concurrent_users" else value / per_user
        points.append((offset, users))
    if len(points) < 2 or first is None:
        raise CurveError(f"{path}: needs at least two rows of data")
    steps = int(points[-1][0] // step_s) + 1
    return first, _resample(points, steps, step_s)


def _resample(points: list[tuple[float, float]], steps: int, step_s: int) -> list[float]:
    """Linear between (x s, y) points sorted by x, at every step; flat beyond the last."""
    xs = [x for x, _ in points]
    values = []
    for i in range(steps):
        j = bisect.bisect_right(xs, i * step_s)
        if j >= len(points):
            values.append(points[-1][1])
            continue
        (x0, y0), (x1, y1) = points[max(j - 1, 0)], points[j]
        share = 0.0 if x1 in (math.inf, x0) else (i * step_s - x0) / (x1 - x0)
        values.append(y0 + (y1 - y0) * share)
    return values
