"""Following the night: an event that runs below its forecast gets the raises it is on course
for, not the forecast's.

The plan holds the forecast (`EventLevers.forecast`: the load balancer's requests a minute at
sample times) beside its levers. Once the forecast is FOLLOW_FROM into its surge, each pass
compares what the load balancer counted in its latest minute with the forecast at that moment:
the night's share of the forecast's surge above baseline, within [FOLLOW_FLOOR, 1] (no margin
on it: the raises to come keep their zone headroom and their stage's highest point, and the
warm pool holds the forecast). The MinSize and LCU raises still to come shrink to that share
of their surge above the rest level (the fleet's min, the standing reservation), and so do the
plan's own step-downs still to come:
- never above the plan: a night at or above its forecast gets the plan as it stands;
- never a new decrease: a raise is never put below what is in effect, a step down still to
  come never above the step before it, a step due or past holds what was put for it, and a
  reservation step down, once due, goes to the plan's own level whatever the share
  (`_follow_steps`): only the plan's own step-down actions lower anything inside the window,
  and the reservation decreases no more often than the plan does (AWS allows two a day);
- while the waiting room queues the count is whom it let in, not the night: the runner reads
  the night as its forecast then (levers.room_queueing);
- an operator's raised floor is judged against the followed plan (levers.plan_pass), so a
  floor between it and the forecast holds;
- the warm pool keeps the forecast's size (stopped instances bill only their volumes): target
  tracking brings them in within minutes if the night catches up, and the next pass raises
  what is still to come.
Python standard library only, like the rest of this package.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from .night_plan import EventLevers, Need, NightPlan, Step

FOLLOW_FROM = 0.1
"""The forecast must have reached this share of its peak surge before the night is judged
against it: earlier, a night a few hundred requests off its forecast would read as far off."""
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
    """The share of the plan's surge the raises still to come are put at, from the requests a
    minute counted around `moment` (the middle of the count's minute: a count a minute and a
    half old read against the forecast now would read a rising night low): 1 (the plan) with
    no measurement, outside the forecast, or before it is FOLLOW_FROM into its surge."""
    expected = forecast_at(levers, moment)
    if observed_rpm is None or expected is None or not levers.forecast:
        return 1.0
    base = levers.baseline_rpm
    peak = max(s.value for s in levers.forecast) - base
    surge = expected - base
    if peak <= 0 or surge < FOLLOW_FROM * peak:
        return 1.0
    measured = max(observed_rpm - base, 0.0) / surge
    return min(1.0, max(FOLLOW_FLOOR, measured))


def _scaled(value: int, rest: int, share: float) -> int:
    """`value`'s surge above `rest` at `share`, rounded up."""
    if value <= rest or share >= 1.0:
        return value
    return rest + math.ceil((value - rest) * share - 1e-9)


FROZEN = timedelta(seconds=60)
"""A step due within this (levers.PUT_AHEAD: the runner puts no action that near) or past is
followed no more: it holds what was put or requested."""


def _follow_steps(
    steps: tuple[Step, ...],
    moment: datetime,
    rest: int,
    share: float,
    in_effect: int,
    put: Callable[[int], int | None],
    spends: bool,
) -> tuple[Step, ...]:
    """Each step followed, the last (the restore) as planned:
    - due (at or within FROZEN of `moment`, or past): what was put for it (`put(i)`) when
      known; else a raise never below what is in effect (up to its own level), and a step
      down at `share` of its surge, or, where a decrease `spends` one AWS counts (the
      reservation's two a day), at the plan's own level never above what is in effect,
      whatever the share (so it decreases at most once a step down of the plan's, a share that
      wanders between passes or a read that fails notwithstanding). A group below a due step
      is raised to it (the backstop), never lowered;
    - a raise still to come: `share` of its surge, never below what is in effect (up to its
      own level);
    - a step down still to come: `share` of its surge, never above the step before it as
      followed (never a raise); once due it holds what was put."""
    followed: list[Step] = []
    for i, step in enumerate(steps):
        planned_before = steps[i - 1].value if i else rest
        rising = step.value >= planned_before
        if i == len(steps) - 1:
            level = step.value
        elif step.at <= moment + FROZEN:
            held = put(i)
            if held is not None:
                level = held
            elif rising:
                level = max(_scaled(step.value, rest, share), min(step.value, in_effect))
            elif spends:
                level = min(step.value, in_effect)
            else:
                level = _scaled(step.value, rest, share)
        elif rising:
            level = max(_scaled(step.value, rest, share), min(step.value, in_effect))
        else:
            before = followed[-1].value if followed else in_effect
            level = min(_scaled(step.value, rest, share), before)
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
    put: Mapping[str, int] | None = None,
) -> EventLevers:
    """`levers` with what is still to come at `share` of its surge (module docstring): the
    MinSize steps (`put`: each owned action's MinSize as AWS holds it, by name), the LCU steps
    (what is requested: `lcus_in_effect`), and the stages' needs: a running stage needs what
    the followed plan holds now, so a share that rises within a stage raises no shortfall
    before its reservation could be granted. At share 1 it is the plan, but for steps due
    that what is in effect or was put overrides (never a raise to undo a followed level)."""
    live = put or {}
    min_steps = _follow_steps(
        levers.min_steps, moment, fleet_min, share, min_in_effect,
        lambda i: live.get(levers.action_name(i)), spends=False,
    )  # fmt: skip
    lcu_steps = _follow_steps(
        levers.lcu_steps, moment, standing_lcus, share, lcus_in_effect, lambda i: None,
        spends=True,
    )  # fmt: skip
    plan = replace(levers, min_steps=min_steps, lcu_steps=lcu_steps)

    def need(n: Need) -> Need:
        if n.end <= moment:
            return n
        if n.start <= moment:  # running
            instances = min(n.instances, plan.min_size_at(moment) or n.instances)
            lcus = min(n.lcus, plan.reservation_at(moment) or n.lcus)
        else:
            instances = _scaled(n.instances, fleet_min, share)
            lcus = _scaled(n.lcus, standing_lcus, share)
        return replace(n, instances=instances, lcus=lcus)

    return replace(plan, needs=tuple(need(n) for n in levers.needs))


def follow_plan(
    plan: NightPlan,
    observed: tuple[datetime, float] | None,
    moment: datetime,
    min_in_effect: int,
    lcus_in_effect: int,
    put: Mapping[str, int] | None = None,
) -> tuple[NightPlan, dict[str, float]]:
    """`plan` with every event active at `moment` followed at its night's share, and the
    shares by event key (1: the plan as it stands). `observed`: the middle of the latest
    counted minute and its requests."""
    shares: dict[str, float] = {}
    events = []
    for event in plan.events:
        if not event.active(moment):
            events.append(event)
            continue
        counted, rpm = observed if observed is not None else (moment, None)
        share = shares[event.key] = night_share(event, rpm, counted)
        fleet_min, standing = plan.fleet_min, plan.standing_lcus
        events.append(
            followed(event, share, moment, min_in_effect, lcus_in_effect, fleet_min, standing, put)
        )
    return replace(plan, events=tuple(events)), shares
