"""Following the night: an event that runs below its forecast gets the raises it is on course
for, not the forecast's.

The plan holds the forecast (`EventLevers.forecast`: the load balancer's requests a minute at
sample times) beside its levers. Once the forecast is FOLLOW_FROM into its surge, each pass
compares what the load balancer counted in its latest minute with the forecast at that moment:
the night's share of the forecast's surge above baseline, times FOLLOW_MARGIN, within
[FOLLOW_FLOOR, 1]. The MinSize raises and LCU raises still to come shrink to that share of
their surge above the rest level (the fleet's min, the standing reservation); nothing else
moves:
- never above the plan: a night at or above its forecast gets the plan as it stands;
- never a new decrease: a raise is never put below the MinSize (or the LCUs) in effect when
  it is put, so only the plan's own step-downs lower anything inside the window, and the LCU
  reservation's two decreases a day stay the plan's;
- the warm pool keeps the forecast's size (stopped instances bill only their volumes): target
  tracking brings them in within minutes if the night catches up, and the next pass raises
  what is still to come.
Python standard library only, like the rest of this package.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import replace
from datetime import datetime

from .night_plan import EventLevers, Need, NightPlan, Step

FOLLOW_FROM = 0.1
"""The forecast must have reached this share of its peak surge before the night is judged
against it: earlier, a night a few hundred requests off its forecast would read as far off."""
FOLLOW_MARGIN = 1.0
"""Headroom on the night's measured share: a night at 60 % of its forecast's surge gets 75 %
of the raises still to come (their zone headroom on top)."""
FOLLOW_FLOOR = 0.25
"""The raises still to come never shrink below this share of their surge: a night that starts
slow and surges late (2016's came after the polls closed) finds a quarter of the forecast
already in service beside the pool."""


def forecast_at(levers: EventLevers, moment: datetime) -> float | None:
    """The forecast's requests a minute at `moment` (linear between samples); None outside."""
    samples = levers.forecast
    if not samples or moment < samples[0].at or moment > samples[-1].at:
        return None
    times = [s.at for s in samples]
    i = bisect.bisect_right(times, moment)
    if i >= len(samples):
        return float(samples[-1].value)
    before, after = samples[i - 1], samples[i]
    span = (after.at - before.at).total_seconds()
    share = (moment - before.at).total_seconds() / span if span > 0 else 0.0
    return before.value + (after.value - before.value) * share


def night_share(levers: EventLevers, observed_rpm: float | None, moment: datetime) -> float:
    """The share of the plan's surge the raises still to come are put at: 1 (the plan) with no
    measurement, outside the forecast, or before it is FOLLOW_FROM into its surge."""
    expected = forecast_at(levers, moment)
    if observed_rpm is None or expected is None or not levers.forecast:
        return 1.0
    base = levers.baseline_rpm
    peak = max(s.value for s in levers.forecast) - base
    surge = expected - base
    if peak <= 0 or surge < FOLLOW_FROM * peak:
        return 1.0
    measured = max(observed_rpm - base, 0.0) / surge
    return min(1.0, max(FOLLOW_FLOOR, measured * FOLLOW_MARGIN))


def _scaled(value: int, rest: int, share: float) -> int:
    """`value`'s surge above `rest` at `share`, rounded up."""
    if value <= rest or share >= 1.0:
        return value
    return rest + math.ceil((value - rest) * share - 1e-9)


def _follow_steps(
    steps: tuple[Step, ...], moment: datetime, rest: int, share: float, in_effect: int
) -> tuple[Step, ...]:
    """Steps from the one due at `moment` on (the last, the restore, as planned): a raise or
    hold at `share` of its surge but never below `in_effect` (up to its own level); a step
    down of the plan's own at `share`."""
    due = max((i for i, s in enumerate(steps) if s.at <= moment), default=-1)
    followed = []
    for i, step in enumerate(steps):
        if i < due or i == len(steps) - 1:
            followed.append(step)
            continue
        before = steps[i - 1].value if i > 0 else rest
        level = _scaled(step.value, rest, share)
        if step.value >= before:
            level = max(level, min(step.value, in_effect))
        followed.append(Step(step.at, level))
    return tuple(followed)


def followed(
    levers: EventLevers,
    share: float,
    moment: datetime,
    min_in_effect: int,
    lcus_in_effect: int,
    fleet_min: int,
    standing_lcus: int,
) -> EventLevers:
    """`levers` with what is still to come at `share` of its surge (module docstring): MinSize
    and LCU steps, and the stages' needs (what the shortfall check holds in service)."""
    if share >= 1.0:
        return levers

    def need(n: Need) -> Need:
        if n.end <= moment:
            return n
        instances, lcus = (
            _scaled(n.instances, fleet_min, share),
            _scaled(n.lcus, standing_lcus, share),
        )
        if n.start <= moment:  # running: what is in effect for it stands
            instances = max(instances, min(n.instances, min_in_effect))
            lcus = max(lcus, min(n.lcus, lcus_in_effect))
        return replace(n, instances=instances, lcus=lcus)

    return replace(
        levers,
        min_steps=_follow_steps(levers.min_steps, moment, fleet_min, share, min_in_effect),
        lcu_steps=_follow_steps(levers.lcu_steps, moment, standing_lcus, share, lcus_in_effect),
        needs=tuple(need(n) for n in levers.needs),
    )


def follow_plan(
    plan: NightPlan,
    observed_rpm: float | None,
    moment: datetime,
    min_in_effect: int,
    lcus_in_effect: int,
) -> tuple[NightPlan, dict[str, float]]:
    """`plan` with every event active at `moment` followed at its night's share, and the
    shares by event key (1: the plan as it stands)."""
    shares: dict[str, float] = {}
    events = []
    for event in plan.events:
        if not event.active(moment):
            events.append(event)
            continue
        share = shares[event.key] = night_share(event, observed_rpm, moment)
        fleet_min, standing = plan.fleet_min, plan.standing_lcus
        events.append(
            followed(event, share, moment, min_in_effect, lcus_in_effect, fleet_min, standing)
        )
    return replace(plan, events=tuple(events)), shares
