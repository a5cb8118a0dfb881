"""Rehearse an event night: the stack's own settings, plan and decision code against a crowd.

Usage: python -m scripts.rehearse --stack prod [--event NAME] [--scenario NAME] [--curve FILE]

Plays each scenario (the next event's nights and unannounced crowds on an ordinary evening, see
rehearsal/curves.py; or a real night from `--curve FILE.csv`) under four policies (configured,
reactive, static-peak, floor) in 10-second steps, prints one row per scenario and policy, writes
build/rehearsal-<stack>.json and one chart per scenario (build/rehearsal-<stack>-<scenario>.png;
the flash crowd's again over its first 30 minutes), and judges the configured stack against the
settings' `rehearsal:` budget. Exit codes: 0 within budget, 1 a scenario breaks it, 2 bad input
(settings, calendar, event, scenario or curve file).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if not __package__:  # run by path (`python scripts/rehearse.py`): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

from planning import clock
from planning.calendar import LOOK_AHEAD, CalendarError, load_calendar
from planning.event_plan import EventPlan, PlanError, plan_event
from planning.settings import Settings, SettingsError, load_stack_settings
from rehearsal import model
from rehearsal.curves import (
    EVENING_SCENARIOS,
    FLASH_AT_H,
    SCENARIOS,
    CurveError,
    Night,
    read_curve,
    scenario_nights,
)
from rehearsal.simulate import POLICIES, Result, rehearse_all
from rehearsal.verdict import breaches, exit_code, summary
from scripts import output_dir
from scripts.offline_cloud import ROOT
from scripts.text_table import fitted, say

ZOOM_MIN = 30
"""The flash crowd's chart is drawn again over its first this many minutes."""
COLUMNS = (
    ("raw 5xx", "raw_5xx", "{:,.0f}"),
    ("page %", "high_demand_pct", "{:.2f}"),
    ("worst 15m %", "failed_worst_pct", "{:.2f}"),
    ("failing min", "failing_min", "{:,.0f}"),
    ("metered", "metered", "{:,.0f}"),
    ("queued", "queued", "{:,.0f}"),
    ("gave up", "gave_up", "{:,.0f}"),
    ("wait p50/p95/max min", None, ""),
    ("longest queue min", "longest_queue_min", "{:,.0f}"),
    ("kept out %", "kept_out_pct", "{:.1f}"),
    ("bound %", "kept_out_bound_pct", "{:.1f}"),
    ("reopen min", "reopen_min", "{:,.0f}"),
    ("peak fleet", "peak_in_service", "{:,.0f}"),
    ("peak/need", "peak_vs_needed", "{:.2f}"),
    ("peak waiting", "peak_waiting", "{:,.0f}"),
    ("queue API peak %", "queue_api_peak_pct", "{:,.0f}"),
    ("inst-h", "instance_hours", "{:,.0f}"),
    ("cost $", "cost_usd", "{:,.0f}"),
    ("x floor", "cost_vs_floor", "{:.2f}"),
    ("edge $", "edge_cost_usd", "{:,.0f}"),
)


class RehearseError(ValueError):
    """Bad input for the rehearsal: the message says what and what is allowed."""


def choose_event(settings: Settings, stack: str, now: datetime, name: str | None) -> EventPlan:
    """The next occurrence of `name` (event name or occurrence key), or the next event."""
    found = load_calendar().occurrences(stack, now, now + LOOK_AHEAD)
    if name is not None:
        known = sorted({o.name for o in found})
        found = [o for o in found if name in (o.name, o.key)]
        if not found:
            raise RehearseError(
                f"--event {name!r}: no occurrence for stack {stack} in the next "
                f"{LOOK_AHEAD.days} days; events: {', '.join(known) or 'none'}"
            )
    if not found:
        raise RehearseError(f"stack {stack} has no event in the next {LOOK_AHEAD.days} days")
    return plan_event(found[0], settings)


def nights_for(args: argparse.Namespace, settings: Settings, now: datetime) -> list[Night]:
    step = settings.admission.step_s
    if args.curve is not None:
        if args.scenario is not None:
            raise RehearseError("give --scenario or --curve, not both")
        start, users = read_curve(args.curve, settings, step)
        plan = _plan_overlapping(settings, args.stack, start, step * len(users))
        return [Night("replay", start, step, users, plan, zone=start.tzinfo or UTC)]
    if args.scenario is not None and args.scenario not in SCENARIOS:
        raise RehearseError(f"--scenario {args.scenario!r}: allowed: {', '.join(SCENARIOS)}")
    scenarios = [args.scenario] if args.scenario else list(SCENARIOS)
    try:
        plan = choose_event(settings, args.stack, now, args.event)
    except RehearseError:
        if args.event is not None or args.scenario not in (None, *EVENING_SCENARIOS):
            raise
        plan = None  # no event: the evening scenarios only
    return scenario_nights(scenarios, plan, settings, step)


def table(results: list[Result]) -> list[str]:
    """One row per scenario and policy."""
    rows = [("scenario", "policy", *(label for label, _, _ in COLUMNS))]
    for r in results:
        m = r.measures
        cells = []
        for _, key, fmt in COLUMNS:
            if key is None:
                cells.append(
                    "{:.0f} / {:.0f} / {:.0f}".format(
                        m["wait_p50_min"], m["wait_p95_min"], m["wait_max_min"]
                    )
                )
            else:
                cells.append(fmt.format(m[key]))
        rows.append((r.scenario, r.policy, *cells))
    return fitted(rows, keep=2)


SERVICES = (
    ("EC2", "cost_ec2_usd"),
    ("EBS pool", "cost_ebs_warm_pool_usd"),
    ("ALB LCU", "cost_alb_lcu_usd"),
    ("CloudFront", "cost_cloudfront_usd"),
    ("WAF", "cost_waf_usd"),
    ("HTTP API", "cost_api_gateway_usd"),
    ("Lambda", "cost_lambda_usd"),
    ("DynamoDB", "cost_dynamodb_usd"),
)
"""The night's cost by service (US dollars), in the order of the request path's capacity and
then its per-request parts."""


def cost_table(results: list[Result]) -> list[str]:
    """One row per scenario and policy: each service's dollars, the capacity's (EC2, the warm
    pool's volumes, LCUs) over the floor's, and the whole path's."""
    rows = [("scenario", "policy", *(label for label, _ in SERVICES), "x floor", "all $")]
    for r in results:
        m = r.measures
        cells = [f"{m[key]:,.1f}" for _, key in SERVICES]
        total = m["cost_usd"] + m["edge_cost_usd"]
        rows.append((r.scenario, r.policy, *cells, f"{m['cost_vs_floor']:.2f}", f"{total:,.0f}"))
    return fitted(rows, keep=2)


def inbox_table(results: list[Result]) -> list[str]:
    """The configured stack's inbox on each night: submissions, their peak against the drain,
    the largest backlog, the longest wait (the figure `make plan` prints) and the time to clear
    ([] without one)."""
    rows = [("scenario", "submitted", "peak /s", "drained /s", "most waiting", "longest wait",
             "clears")]  # fmt: skip
    for r in results:
        b = r.inbox
        if b is None:
            continue
        if b.most_waiting == 0:
            wait, clears = "under 1 min", "never behind"
        else:
            wait = f"{b.longest_wait_min:,.0f} min"
            clears = "NOT within retention" if math.isinf(b.clears_min) else (
                f"{b.clears_min:,.0f} min"
            )  # fmt: skip
        rows.append((
            r.scenario, f"{b.submitted:,.0f}", f"{b.peak_per_s:,.1f}", f"{b.drain_per_s:g}",
            f"{b.most_waiting:,.0f}", wait, clears,
        ))  # fmt: skip
    return fitted(rows, keep=1) if len(rows) > 1 else []


def document(
    stack: str,
    plan_key: str | None,
    settings: Settings,
    results: list[Result],
    found: list[str],
    elapsed_s: float,
) -> dict[str, object]:
    return {
        "stack": stack,
        "event": plan_key,
        "step_s": settings.admission.step_s,
        "budget": settings.rehearsal.model_dump(exclude={"prices"}),
        "prices": settings.rehearsal.prices.model_dump(),
        "results": [
            {
                "scenario": r.scenario,
                "policy": r.policy,
                "measures": {k: round(v, 3) for k, v in r.measures.items()},
                "queue_api_limit": r.queue_api_limit or None,
                **(
                    {
                        "inbox": {
                            "submitted": round(r.inbox.submitted),
                            "peak_per_s": round(r.inbox.peak_per_s, 3),
                            "drain_per_s": r.inbox.drain_per_s,
                            "most_waiting": round(r.inbox.most_waiting),
                            "longest_wait_min": round(r.inbox.longest_wait_min, 1),
                            "oldest_min": max(r.inbox.oldest_min, default=0.0),
                            "clears_min": None
                            if math.isinf(r.inbox.clears_min)
                            else r.inbox.clears_min,
                        }
                    }
                    if r.inbox
                    else {}
                ),
            }
            for r in results
        ],
        "page_after_s": page_after(settings),
        "breaches": found,
        "elapsed_s": round(elapsed_s, 2),
    }


def page_after(settings: Settings) -> dict[str, int]:
    e = settings.edge
    return model.page_after_s(
        e.origin_connection_attempts, e.origin_connection_timeout_s, e.origin_read_timeout_s
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_stack_settings(args.stack)
        now = clock.now()
        nights = nights_for(args, settings, now)
    except (
        SettingsError,
        CalendarError,
        PlanError,
        clock.ClockError,
        CurveError,
        RehearseError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not nights:
        print("error: nothing to rehearse", file=sys.stderr)
        return 2
    began = time.perf_counter()
    total = len(nights) * len(POLICIES)
    done = 0

    live = sys.stderr.isatty()

    def progress(what: str) -> None:
        """One line rewritten in place on a terminal; a line per scenario in a log."""
        nonlocal done
        done += 1
        line = f"rehearsing {args.stack}: {what} ({done}/{total})"
        if live:
            print(f"\r{line}".ljust(70), end="", file=sys.stderr, flush=True)
        elif what.endswith(f"/ {POLICIES[0]}"):
            print(line, file=sys.stderr, flush=True)

    results = rehearse_all(nights, settings, POLICIES, progress)
    elapsed = time.perf_counter() - began
    if live:
        print(file=sys.stderr)
    plan = nights[0].plan
    event = (
        plan.key
        if plan
        else (
            "no event overlapping the curve" if args.curve else "no event (evening scenarios only)"
        )
    )
    say(
        [
            f"Floodgate rehearsal: stack {args.stack}, {event}, "
            f"{settings.admission.step_s}-second steps ({elapsed:.1f} s)"
        ]
    )
    print("\n".join(f"  {line}" for line in table(results)))
    print("\ncost by service, US$ (x floor judges the capacity: EC2, EBS and LCUs)")
    print("\n".join(f"  {line}" for line in cost_table(results)))
    inbox = inbox_table(results)
    if inbox:
        print("\ninbox (configured): submissions against the back office's drain")
        print("\n".join(f"  {line}" for line in inbox))
    found = breaches(results, settings.rehearsal)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: --out {args.out}: cannot make it ({exc.strerror})", file=sys.stderr)
        return 2
    path = args.out / f"rehearsal-{args.stack}.json"
    doc = document(
        args.stack, plan.key if plan else None, settings, results, [str(b) for b in found], elapsed
    )
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"\n-> {_shown(path)}")
    if not args.no_charts:
        from rehearsal.chart import draw

        for night in nights:
            chart = draw(
                night,
                [r for r in results if r.scenario == night.scenario],
                f"{args.stack}: {night.scenario} ({_about(night, args.curve)})",
                args.out / f"rehearsal-{args.stack}-{night.scenario}.png",
            )
            print(f"-> {_shown(chart)}")
            if night.scenario == "flash-crowd":  # its first half hour, minute by minute
                at = round(FLASH_AT_H * 60)
                chart = draw(
                    night,
                    [r for r in results if r.scenario == night.scenario],
                    f"{args.stack}: flash-crowd, its first {ZOOM_MIN} minutes",
                    args.out / f"rehearsal-{args.stack}-flash-crowd-first-{ZOOM_MIN}-min.png",
                    window=(at - 2, at + ZOOM_MIN),
                )
                print(f"-> {_shown(chart)}")
    waits = page_after(settings)
    say(
        [
            f"failing viewers get the high-demand page at once (an overloaded instance "
            f"refuses with {model.OVERLOAD_STATUS}); after {waits['no_connection']} s if the "
            f"origin accepts no connection, {waits['silent']} s if it connects and stays silent"
        ]
    )
    p = settings.rehearsal.prices
    say(
        [
            f"prices as of {p.as_of}: ${p.instance_hour_usd}/instance-hour, "
            f"${p.lcu_hour_usd}/LCU-hour ({p.source})"
        ]
    )
    say(
        [
            f"edge $ (not in x floor): CloudFront ${p.cloudfront_https_10k_usd}/10k and WAF "
            f"${p.waf_million_usd}/M viewer requests, HTTP API ${p.http_api_million_usd}/M, Lambda "
            f"${p.lambda_million_usd}/M + ${p.lambda_arm_gb_s_usd}/GB-s, DynamoDB "
            f"${p.dynamodb_million_writes_usd}/M writes ${p.dynamodb_million_reads_usd}/M reads; "
            "no Lambda@Edge"
        ]
    )
    say([f"verdict (configured policy): {summary(found)}"])
    for breach in found:
        print(f"  {breach}")
    return exit_code(found)


def _about(night: Night, curve: Path | None) -> str:
    """What a chart's night is: its event, a replayed file (and the event it falls on), or an
    evening with no schedule."""
    if curve is not None:
        on = f", on {night.plan.key}" if night.plan else ", no event on the calendar"
        return f"replay of {curve.name}{on}"
    if night.plan is not None:
        return night.plan.key
    return "an unannounced crowd, no schedule"


def _plan_overlapping(
    settings: Settings, stack: str, start: datetime, length_s: int
) -> EventPlan | None:
    """The event a replayed night falls on, if any: its schedules apply to `configured`."""
    end = start + timedelta(seconds=length_s)
    found = load_calendar().occurrences(stack, start - timedelta(days=1), end)
    return plan_event(found[0], settings) if found else None


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--event", help="event name or occurrence key (default: the next event)")
    parser.add_argument("--scenario", help=f"one of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument(
        "--curve",
        type=Path,
        help="CSV of a real night: timestamp and concurrent_users or requests_per_minute",
    )
    parser.add_argument("--out", type=output_dir, default=ROOT / "build", help="default: build/")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    return parser


if __name__ == "__main__":
    sys.exit(main())
