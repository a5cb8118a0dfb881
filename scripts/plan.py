"""Offline plan: evaluate a stack's program under Pulumi's mocks, print it, write JSON.

Usage: python -m scripts.plan --stack prod [--out build] [--diff BASE.json]

No Pulumi CLI, no credentials, no network. Prints the component tree with each component's
resources and the stack's key settings, and writes build/plan-<stack>.json: every resource
with its inputs as the engine receives them (camelCase), each secret as a mark ("[secret
<digest>]", the structure around it kept), sorted by URN so that two plans diff cleanly.
Exit codes: 0 planned, 2 invalid settings or stack.

With `--diff BASE.json` it prints instead a Markdown summary of what the working tree changes
relative to BASE.json (see scripts/plan_diff.py), also written to build/plan-diff-<stack>.md.
Exit codes: 0 no change, 1 changes, 2 error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

if not __package__:  # run by path (`python scripts/plan.py`): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

from planning import clock
from planning.calendar import LOOK_AHEAD, CalendarError, Skipped, load_calendar, skipped
from planning.capacity import (
    admit_rate_per_s,
    origin_requests_per_s,
    peak_check,
    people_per_instance,
)
from planning.event_plan import (
    EventPlan,
    PlanError,
    Step,
    event_curve,
    plan_actions,
    plan_events,
)
from planning.inbox import backlog, submissions_per_s
from planning.settings import Settings, SettingsError, load_stack_settings
from rehearsal.curves import PAD
from rehearsal.verdict import event_verdict
from scripts import output_dir
from scripts.offline_cloud import ROOT, OfflineRun, run_offline, stack_config
from scripts.plan_diff import PlanDiffError, compare, load_plan, to_markdown
from scripts.policy import summary as policy_summary
from scripts.policy import verdicts_for
from scripts.text_table import fitted, say


def key_settings(settings: Settings) -> list[str]:
    """The figures a reviewer checks first, one per line."""
    f, lb, peak = settings.fleet, settings.load_balancer, peak_check(settings)
    pool = (
        f"{f.warm_pool.min_size} {f.warm_pool.state.lower()}"
        if f.warm_pool
        else "none (mixed instances)"
    )
    return [
        f"region           {settings.region} ({', '.join(settings.network.zones)})",
        f"fleet            min {f.min_size} / max {f.max_size}, warm pool {pool}, "
        f"types {', '.join(f.instance_types)}, spot {f.spot_pct}%, AMI {f.ami_id}",
        f"LCU reservation  {lb.minimum_capacity_units or 'none'}",
        f"WAF rate limit   {settings.waf.rate_limit} req per IP per "
        f"{settings.waf.evaluation_window_s} s",
        f"failover codes   {', '.join(map(str, settings.edge.failover_status_codes))}",
        f"planned peak     {peak.peak_users:,} users -> {peak.origin_requests_per_s:,.0f} "
        f"origin req/s -> needed {peak.instances_needed} instances; max with a zone lost "
        f"{peak.instances_with_zone_lost} ({'holds' if peak.holds else 'DOES NOT HOLD'})",
        f"edge cache       {_edge_cache(settings, peak.peak_users)}",
        f"waiting room     {_room(settings)}",
        f"inbox            {_inbox(settings)}",
    ]


def _inbox(settings: Settings) -> str:
    i = settings.inbox
    if not i.enabled:
        return "off (writes go to the fleet)"
    peak = submissions_per_s(
        settings.capacity.baseline_users * settings.capacity.peak_multiple, settings
    )
    return (
        f"{', '.join(i.path_patterns)} into SQS at the edge (no fleet, no Lambda); "
        f"{peak:,.1f} submissions/s at the planned peak ({i.submit_pct:g} % of visits); "
        f"the back office drains {i.drain_per_s:g}/s ({i.consumer_concurrency} consumers x "
        f"{i.processing_s:g} s); oldest-age alarm {i.oldest_age_alarm_s // 60} min; "
        + (
            f"bodies to {i.inline_body_max_bytes // 1024:,} KiB in the message, to "
            f"{i.body_max_bytes / 1_048_576:g} MiB uploaded to its bucket"
            if i.uploads
            else f"bodies to {i.inline_body_max_bytes // 1024:,} KiB, no uploads"
        )
    )


def _inbox_line(plan: EventPlan, settings: Settings) -> list[str]:
    """The planned night's submissions against the drain: backlog, wait, time to clear."""
    if not settings.inbox.enabled:
        return []
    b = backlog(event_curve(plan, settings, 60, PAD), settings)
    if b.most_waiting == 0:
        behind = "never behind"
    elif math.isinf(b.clears_min):
        behind = "NOT CLEARED within the queue's retention: raise drain_per_s"
    else:
        behind = (
            f"up to {b.most_waiting:,.0f} waiting, the longest {b.longest_wait_min:,.0f} min; "
            f"clears in {_duration(b.clears_min)}"
        )
    return [
        f"  {'inbox':<8} {b.submitted:,.0f} submissions, peak {b.peak_per_s:,.1f}/s against "
        f"{b.drain_per_s:g}/s drained: {behind}"
    ]


def _duration(minutes: float) -> str:
    return f"{minutes:,.0f} min" if minutes < 120 else f"{minutes / 60:,.1f} h"


def _edge_cache(settings: Settings, peak_users: int) -> str:
    """What reaches the origin at the planned peak with the public pages cached as planned and
    with none cached, what the edge may cache, and what the plan counts on."""
    e, c = settings.edge, settings.capacity
    planned = origin_requests_per_s(peak_users, settings)
    uncached = origin_requests_per_s(peak_users, settings, edge_cache=False)
    counted = (
        f"counts on {c.public_page_pct:g} % of requests at max-age {c.public_page_ttl_s} s, "
        f"{c.public_page_urls} keys"
        if c.public_page_pct and c.public_page_ttl_s
        else "counts on none (capacity.public_page_pct, public_page_ttl_s)"
    )
    pages = (
        f"public pages {', '.join(e.public_page_patterns)} as their Cache-Control says (at most "
        f"{e.public_page_max_ttl_s} s"
        f"{f', Origin Shield {e.origin_shield_region}' if e.origin_shield_region else ''})"
        if e.public_page_patterns
        else "static assets only (no edge.public_page_patterns)"
    )
    return (
        f"{planned:,.0f} origin req/s at the peak as planned, {uncached:,.0f} with no public "
        f"page cached; {pages}; the plan {counted}"
    )


def _room(settings: Settings) -> str:
    a = settings.admission
    if not a.enabled:
        return "off"
    people, rate = people_per_instance(settings), admit_rate_per_s(settings)
    most = settings.fleet.max_size * people
    origin = "set" if a.sessions_per_instance is not None else "derived from the fleet"
    pace = "set" if a.max_admit_per_s is not None else "derived from what the fleet's max holds"
    if a.meter_arrivals:
        switch = (
            "meters newcomers; queues when they fill the fleet, opens with an empty line after "
            f"{a.calm_minutes} min calm"
        )
    else:
        switch = (
            f"queues at {a.queue_at_load_pct}% load, opens below {a.open_below_load_pct}% after "
            f"{a.calm_minutes} min calm"
        )
    return (
        f"room {a.room_id!r}: {people:,} people/instance ({origin}; up to {most:,} inside at "
        f"max), admits <= {rate:,}/s ({pace}) every {a.step_s} s; {switch}"
    )


def event_table(
    plans: list[EventPlan], settings: Settings, now: datetime, skipped: Sequence[Skipped] = ()
) -> list[str]:
    """Upcoming events and the capacity planned for each (times UTC): one row per event, then
    its staged MinSize actions, its LCU reservation steps and what in AWS carries each lever;
    then the nights the calendar names but does not plan (an EXDATE, a cancelled event)."""
    lines = ["no events inside the horizon"] if not plans else []
    if plans:
        header = ("event", "local start", "window (UTC)", "peak users", "origin r/s",
                  "peak min", "max", "warm", "LCU", "room")  # fmt: skip
        rows = [header] + [
            (
                p.key,
                f"{p.occurrence.local_start:%Y-%m-%d %H:%M %Z}"
                + (" RDATE" if p.occurrence.added else ""),
                f"{p.raise_at:%m-%d %H:%M} - {p.restore_at:%m-%d %H:%M}",
                f"{p.peak_users:,}",
                f"{p.origin_requests_per_s:,.0f}",
                f"{p.desired}{' (capped)' if p.capped else ''}",
                str(p.max_size),
                str(p.warm_pool),
                str(p.capacity_units),
                p.waiting_room,
            )
            for p in plans
        ]
        lines = [*fitted(rows), ""]
        for plan in plans:  # each event's steps below the table: rows stay within WIDTH
            lines += [f"{plan.key}:"]
            lines += _steps_lines("MinSize", plan.min_steps)
            lines += _steps_lines("LCUs", plan.lcu_steps)
            lines += _inbox_line(plan, settings)
            lines += _carried_by(plan, settings, now)
    lines += [
        f"not planned: {s.key} ({s.local_start:%Y-%m-%d %H:%M %Z}): {s.reason}" for s in skipped
    ]
    return lines


def next_event_lines(stack: str, settings: Settings, after: datetime) -> list[str]:
    """The calendar's next event for `stack` starting at or after `after` (the horizon's end),
    and the `make plan` that plans it: NOW half a horizon (at most a week) before its start,
    on the hour."""
    found = load_calendar().occurrences(stack, after, after + LOOK_AHEAD)
    upcoming = [o for o in found if o.start >= after]
    if not upcoming:
        return [f"next event: none on the calendar for {stack} in the next {LOOK_AHEAD.days} days"]
    o = upcoming[0]
    ahead = min(timedelta(days=settings.prescale.horizon_days) / 2, timedelta(days=7))
    at = (o.start - ahead).replace(minute=0, second=0, microsecond=0)
    return [
        f"next event, beyond the horizon: {o.key} ({o.local_start:%Y-%m-%d %H:%M %Z})",
        f"  plan it: make plan STACK={stack} NOW={at:%Y-%m-%dT%H:%M:%SZ}",
    ]


def _carried_by(plan: EventPlan, settings: Settings, now: datetime) -> list[str]:
    """Which AWS mechanism carries each lever of `plan`: none of them is a CI runner."""
    p = settings.prescale
    ahead = now + timedelta(seconds=p.create_ahead_s)
    actions = [a for a in plan_actions(plan) if a.start > now]
    declared = sum(a.start > ahead for a in actions)
    room = f"room ({plan.waiting_room})" if plan.waiting_room != "off" else "no room"
    return [
        f"  {'carried':<8} MinSize: {len(actions)} Auto Scaling scheduled actions (pulumi up "
        f"declares {declared}, the runner {len(actions) - declared})",
        f"  {'':<8} LCUs, warm pool {plan.warm_pool}, {room}, backstop: the runner Lambda, "
        f"every {p.run_every_minutes} min (Scheduler)",
    ]


def _steps_lines(label: str, steps: tuple[Step, ...], per_line: int = 8) -> list[str]:
    """`  MinSize  11-08 00:10 8, 00:40 15, ...`: a step's date only when it changes."""
    if not steps:
        return [f"  {label:<8} unchanged"]
    cells, day = [], None
    for step in steps:
        when = f"{step.at:%H:%M}" if step.at.date() == day else f"{step.at:%m-%d %H:%M}"
        day = step.at.date()
        cells.append(f"{when} {step.value}")
    chunks = [cells[i : i + per_line] for i in range(0, len(cells), per_line)]
    return [f"  {label if i == 0 else '':<8} {', '.join(chunk)}" for i, chunk in enumerate(chunks)]


def render_tree(run: OfflineRun) -> list[str]:
    """Components as a tree, in a stable order (type, then name), each with its resources by
    type and name; a component that declares nothing (Prescale with no events) is left out."""
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        children = run.children(parent)
        indent = "  " * depth
        components = sorted((c for c in children if not c.custom), key=lambda c: (c.type, c.name))
        for component in components:
            if not run.children(component.urn):
                continue
            lines.append(f"{indent}{component.type.split(':')[-1]} {component.name}")
            walk(component.urn, depth + 1)
        names: dict[str, list[str]] = {}
        for resource in children:
            if resource.custom:
                names.setdefault(resource.type, []).append(resource.name)
        for token, named in sorted(names.items()):
            shown = ", ".join(sorted(named)[:3]) + (", ..." if len(named) > 3 else "")
            lines.append(f"{indent}  {len(named):>2} x {token}: {shown}")

    walk(None, 0)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument(
        "--out",
        type=output_dir,
        default=ROOT / "build",
        help="directory for plan-<stack>.json (default: build/)",
    )
    parser.add_argument(
        "--diff",
        type=Path,
        metavar="BASE.json",
        help="compare with this plan and print a Markdown summary (exit 0 same, 1 changed)",
    )
    args = parser.parse_args(argv)
    try:
        base = load_plan(args.diff) if args.diff else None
        settings = load_stack_settings(args.stack)
        now = clock.now()
        plans = plan_events(load_calendar(), settings, args.stack, now)
    except (SettingsError, CalendarError, PlanError, clock.ClockError, PlanDiffError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = run_offline(args.stack, stack_config(args.stack))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: --out {args.out}: cannot make it ({exc.strerror})", file=sys.stderr)
        return 2
    path = args.out / f"plan-{args.stack}.json"
    # The instant the plan was made at: events and scheduled actions depend on it.
    document = {**run.plan_document(), "planned_at": clock.aws_timestamp(now)}
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if base is not None:
        then = base.get("planned_at")
        if then != document["planned_at"]:
            warning = (
                f"warning: {args.diff.name} was planned at {then or 'an unknown instant'}, this "
                f"plan at {document['planned_at']}: events and scheduled actions differ by time "
                "alone (set FLOODGATE_NOW to the same instant)"
            )
            print(warning, file=sys.stderr)
        try:
            diff = compare(base, document)
        except PlanDiffError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        summary = to_markdown(diff, f"`{args.diff.name}`")
        (args.out / f"plan-diff-{args.stack}.md").write_text(summary, encoding="utf-8")
        print(summary, end="")
        return 1 if diff.has_changes else 0

    print(f"Floodgate offline plan: stack {args.stack}")
    say(key_settings(settings), "  ", 19)
    print(
        f"\nUpcoming events as of {now:%Y-%m-%d %H:%M}Z "
        f"(horizon {settings.prescale.horizon_days} days):"
    )
    calendar = load_calendar()
    horizon = now + timedelta(days=settings.prescale.horizon_days)
    not_planned = skipped(calendar, args.stack, now, horizon)
    table = event_table(plans, settings, now, not_planned)
    say(table, "  ")
    upcoming = next_event_lines(args.stack, settings, horizon)
    say(upcoming, "  ")
    if plans:
        print("Rehearsal, each event's own curve, stack as configured (make rehearse for all):")
        for plan in plans:
            say([f"{plan.key}: {event_verdict(plan, settings)}"], "  ")
    print()
    say(render_tree(run))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"\n{len(run.registrations)} resources -> {shown}")
    print(policy_summary(verdicts_for(run)))
    print("                 (make policy STACK=... for the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
