"""`make bench`: figures for the offline program, the policy pack, the event planner, the
pre-scale job, the queue API, the plan diff, the rehearsal, the edge and the inbox.

Prints figures; asserts nothing (speed belongs here, not in unit tests). Targets: prod evaluates
under mocks in < 3 s median; a year of events plans in < 1 s; a second pre-scale run makes zero
writes and only the describe calls it needs.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from planning import clock
from planning.calendar import Calendar, load_calendar, parse_calendar
from planning.event_plan import plan_events
from planning.settings import load_stack_settings
from policies import RULES
from policies.offline import evaluate
from scripts import plan_diff
from scripts.offline_cloud import run_offline, stack_config
from scripts.policy import plan_resources
from scripts.prescale import Clients, run
from tests.helpers import client
from tests.moto_server import moto_thread

RUNS = 7
NOW = "2028-01-01T00:00:00Z"


def bench_program() -> None:
    print(f"{'stack':<8} {'resources':>9} {'first run s':>12} {'median s':>9} {'min s':>7}")
    for stack in ("prod", "staging", "dev", "pr"):
        config = stack_config(stack)
        timings: list[float] = []
        count = 0
        for _ in range(RUNS + 1):
            start = time.perf_counter()
            count = len(run_offline(stack, config).registrations)
            timings.append(time.perf_counter() - start)
        first, rest = timings[0], timings[1:]
        print(
            f"{stack:<8} {count:>9} {first:>12.2f} {statistics.median(rest):>9.2f} "
            f"{min(rest):>7.2f}"
        )
    print(f"(first run of prod includes importing pulumi-aws; median over {RUNS} later runs)")


WEEKLY = {"events": [{"name": "weekly-briefing", "time_zone": "America/Toronto",
                      "start": "2028-01-04T10:00:00", "duration_h": 2, "peak_multiple": 3,
                      "rule": "FREQ=WEEKLY;COUNT=52"}]}  # fmt: skip


def bench_policy_pack() -> None:
    """Every rule of policies/ over each stack's offline plan (evaluation not included)."""
    print(f"\npolicy pack over the offline plan ({len(RULES)} rules; median of {RUNS}):")
    for stack in ("prod", "dev"):
        resources = plan_resources(run_offline(stack, stack_config(stack)))
        timings, verdicts = [], evaluate(resources)
        for _ in range(RUNS):
            start = time.perf_counter()
            evaluate(resources)
            timings.append(time.perf_counter() - start)
        print(
            f"  {stack:<8} {len(resources):>4} resources  {len(verdicts):>3} verdicts  "
            f"median {statistics.median(timings) * 1000:6.1f} ms"
        )


def bench_planner() -> None:
    settings = load_stack_settings("prod")
    year = settings.model_copy(
        update={"prescale": settings.prescale.model_copy(update={"horizon_days": 365})}
    )
    now = clock.parse_instant(NOW)
    print(f"\nplanner: one year of prod events from {NOW} (parsing included)")
    sources: list[tuple[str, Callable[[], Calendar]]] = [
        ("shipped calendar (events.yaml + .ics)", load_calendar),
        ("synthetic weekly calendar", lambda: parse_calendar(WEEKLY)),
    ]
    for label, load in sources:
        timings, count = [], 0
        for _ in range(RUNS):
            start = time.perf_counter()
            count = len(plan_events(load(), year, "prod", now))
            timings.append(time.perf_counter() - start)
        median_ms, max_ms = statistics.median(timings) * 1000, max(timings) * 1000
        print(f"  {label:<38} {count:>3} events  median {median_ms:6.1f} ms  max {max_ms:6.1f} ms")


def bench_prescale() -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with moto_thread() as url:
        ec2, autoscaling = client("ec2", url), client("autoscaling", url)
        template = ec2.create_launch_template(
            LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-0c9f0b5e1a2d3c4b5"}
        )["LaunchTemplate"]
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="web-asg",
            MinSize=6,
            MaxSize=120,
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
            AvailabilityZones=["ca-central-1a", "ca-central-1b", "ca-central-1d"],
        )
        autoscaling.put_warm_pool(AutoScalingGroupName="web-asg", MinSize=12)
        clients = Clients(autoscaling, client("elbv2", url), client("dynamodb", url))
        print("\npre-scale job against moto on 127.0.0.1 (prod, as of 2028-10-01):")
        for label in ("first run", "second run"):
            clients.calls.clear()
            start = time.perf_counter()
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                code = run(
                    ["--stack", "prod", "--asg-name", "web-asg", "--now", "2028-10-01T00:00:00Z"],
                    clients,
                )
            elapsed = time.perf_counter() - start
            calls = ", ".join(f"{op} {n}" for op, n in sorted(clients.calls.items()))
            print(
                f"  {label:<10} exit {code}  {elapsed * 1000:6.0f} ms  writes {clients.writes:>2}"
                f"  calls: {calls}"
            )


def bench_room(visitors: int = 300) -> None:
    """Queue API throughput against in-process moto (one thread): join, status, inlet step."""
    from moto import mock_aws

    from functions.admission import admin, inlet
    from tests.functions.room_fixtures import create_cloud, make_room

    t0 = 1_857_000_000.0
    with mock_aws():
        create_cloud(instances=2)
        room = make_room(sessions_per_instance=1000)
        admin.pin(room, "queue", t0)
        start = time.perf_counter()
        ids = [room.join(None, t0 + 1 + i / visitors)["visitor"] for i in range(visitors)]
        join_s = time.perf_counter() - start
        start = time.perf_counter()
        step = inlet.step(room, t0 + 10)
        step_s = time.perf_counter() - start
        start = time.perf_counter()
        for visitor in ids:
            room.status(visitor, t0 + 11)
        status_s = time.perf_counter() - start
    print(f"\nqueue API against in-process moto ({visitors} visitors, one thread):")
    print(f"  join    {visitors / join_s:8.0f} per s  ({join_s / visitors * 1000:5.1f} ms each)")
    print(
        f"  status  {visitors / status_s:8.0f} per s  ({status_s / visitors * 1000:5.1f} ms each,"
        " token issued)"
    )
    print(f"  inlet step sealing and admitting {step['admitted']}: {step_s * 1000:.0f} ms")
    print("  (moto's per-call overhead dominates; DynamoDB answers single-digit ms)")


def bench_plan_diff() -> None:
    """Comparing two prod plans (the PR comment), and the whole `make plan-diff` against HEAD."""
    base = run_offline("prod", stack_config("prod")).plan_document()
    changed = stack_config("prod")
    changed["floodgate:settings"]["fleet"]["max_size"] = 140
    changed["floodgate:settings"]["alarms"]["email_subscriptions"].append("ops@example.ca")
    head = run_offline("prod", changed).plan_document()
    timings, summary = [], ""
    for _ in range(RUNS):
        start = time.perf_counter()
        summary = plan_diff.to_markdown(plan_diff.compare(base, head), "base")
        timings.append(time.perf_counter() - start)
    print(
        f"\nplan diff of prod ({len(head['resources'])} resources, max_size and one e-mail "
        f"changed): median {statistics.median(timings) * 1000:.1f} ms, "
        f"{len(summary):,} characters"
    )
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        code = plan_diff.main(["--base", "HEAD", "--stack", "prod", "--out", out])
        elapsed = time.perf_counter() - start
    print(
        f"  make plan-diff BASE=HEAD (worktree + two plans, each in its own interpreter): "
        f"{elapsed:.1f} s, exit {code}"
    )


def bench_rehearsal() -> None:
    """Every scenario x every policy of prod's election night (14 h at 10-second steps)."""
    from rehearsal.curves import SCENARIOS, scenario_nights
    from rehearsal.simulate import POLICIES, rehearse_all
    from scripts.rehearse import choose_event

    settings = load_stack_settings("prod")
    plan = choose_event(settings, "prod", clock.now(), "us-general-election")
    timings, steps = [], 0
    for _ in range(3):
        start = time.perf_counter()
        nights = scenario_nights(list(SCENARIOS), plan, settings, settings.admission.step_s)
        rehearse_all(nights, settings, POLICIES)
        timings.append(time.perf_counter() - start)
        steps = sum(len(n.users) for n in nights) * len(POLICIES)
    print(
        f"\nrehearsal of prod, {plan.key}: {len(SCENARIOS)} scenarios x {len(POLICIES)} "
        f"policies, {steps:,} steps: median {statistics.median(timings):.2f} s, "
        f"max {max(timings):.2f} s (charts not included)"
    )


LAMBDA_EDGE_S, LAMBDA_EDGE_GB = 0.005, 0.125
"""What an origin-request trigger like the failover rewrite took: 5 ms billed at 128 MB."""


def bench_edge() -> None:
    """The edge at prod's planned peak and on its election night: origin requests, Lambda@Edge
    on the healthy path, reads of the queue API's hottest item, and the request-path cost."""
    from planning.capacity import origin_requests_per_s, peak_check, room_item_reads
    from rehearsal.curves import scenario_nights
    from rehearsal.simulate import rehearse
    from scripts.rehearse import choose_event

    s = load_stack_settings("prod")
    users = peak_check(s).peak_users
    counted = s.model_copy(
        update={
            "capacity": s.capacity.model_copy(
                update={"public_page_pct": 20, "public_page_ttl_s": 60}
            )
        }
    )
    print(f"\nedge of prod at the planned peak ({users:,} people):")
    print(
        f"  origin req/s       {origin_requests_per_s(users, s):,.0f} as planned "
        f"(public pages counted on: {s.capacity.public_page_pct:g} %); if the plan counts on "
        f"20 % public pages at max-age 60 s: {origin_requests_per_s(users, counted):,.0f}, "
        f"with the origin sending no-store {origin_requests_per_s(users, counted, False):,.0f}"
    )
    resources = plan_resources(run_offline("prod", stack_config("prod")))
    (distribution,) = [r for r in resources if r.type == "aws:cloudfront/distribution:Distribution"]
    behaviours = [
        distribution.outputs["defaultCacheBehavior"],
        *distribution.outputs.get("orderedCacheBehaviors", []),
    ]
    triggered = [b for b in behaviours if b.get("lambdaFunctionAssociations")]
    healthy = origin_requests_per_s(users, s) if triggered else 0.0
    print(
        f"  Lambda@Edge        {healthy:,.0f} invocations/s on the healthy path ({len(triggered)} "
        f"of {len(behaviours)} behaviours carry one; the failover trigger ran on every origin "
        f"request: {origin_requests_per_s(users, s):,.0f}/s)"
    )
    hot, every = room_item_reads(s), room_item_reads(s, cache_s=0)
    print(
        f"  hottest item       {hot.reads_per_s:,.0f} reads/s ({hot.units_per_s:,.0f} units) of "
        f"the room item at the queue API's design point; read by every join and poll "
        f"{every.reads_per_s:,.0f} ({every.units_per_s:,.0f} units; 3,000 per partition)"
    )
    plan = choose_event(s, "prod", clock.now(), "us-general-election")
    (night,) = scenario_nights(["event"], plan, s, s.admission.step_s)
    m = rehearse(night, s, "configured").measures
    p = s.rehearsal.prices
    trigger = m["origin_requests"] * (
        p.lambda_edge_million_usd / 1e6 + LAMBDA_EDGE_S * LAMBDA_EDGE_GB * p.lambda_edge_gb_s_usd
    )
    print(
        f"  night's cost       {plan.key}: instances and LCUs ${m['cost_usd']:,.0f}, request path "
        f"${m['edge_cost_usd']:,.0f} (CloudFront, WAF, HTTP API, Lambda, DynamoDB; prices "
        f"{p.as_of}); the removed trigger would add ${trigger:,.0f} "
        f"({m['origin_requests'] / 1e6:,.0f} M origin requests)"
    )


def bench_inbox(submissions: int = 5_000) -> None:
    """The inbox on moto's server (127.0.0.1): `submissions` through the edge function and the
    SQS-SendMessage mapping (one in twenty uploaded to the bucket instead) from 16 clients at
    once, with repeated keys and keyless posts, then
    four consumers with one killed every 97 deliveries; accept latency and the drain rate."""
    from tests.functions import inbox_load
    from tests.moto_server import atomic_item_writes

    atomic_item_writes()
    with moto_thread() as url:
        report = inbox_load.run(url, submissions, consumers=4, kill_every=97, bound_s=3_600)
    ms = report.accept_ms
    not_done = report.unique - len(report.office.effects)
    twice = sum(n > 1 for n in report.office.calls.values())
    resolved = sum(s == "done" for s in report.receipts.values())
    print(f"\ninbox on moto at 127.0.0.1 ({submissions:,} submissions, {report.unique:,} unique):")
    print(
        f"  accept (SendMessage as the integration maps it)  p50 {statistics.median(ms):5.1f} ms"
        f"  p99 {ms[int(len(ms) * 0.99)]:5.1f} ms  (16 clients)"
    )
    print(
        f"  drain (reference consumer, 4 at once)  {report.drained / report.drain_s:6.0f} per s"
        f"  ({report.drained:,} in {report.drain_s:.1f} s, {report.redelivered:,} redelivered)"
    )
    print(
        f"  receipts not done {not_done}, posted twice {twice}, messages still queued at the"
        f" bound {report.left_waiting},"
        f" in the dead-letter queue {report.dead_letters}, receipts done {resolved:,} of"
        f" {len(ms):,} (repeated keys share a receipt)"
    )
    print(
        f"  uploads {report.uploads:,} (PUT, S3's event into the queue), bodies left in the"
        f" bucket after the drain {report.uploads_left}"
    )
    print("  (moto's per-call cost dominates; the back office's own pace is inbox.drain_per_s)")


def main() -> None:
    os.environ[clock.NOW_VARIABLE] = "2028-10-01T00:00:00Z"  # same schedules every run
    benches = [
        bench_program,
        bench_policy_pack,
        bench_planner,
        bench_prescale,
        bench_room,
        bench_plan_diff,
        bench_rehearsal,
        bench_edge,
        bench_inbox,
    ]
    for number, bench in enumerate(benches, start=1):
        # Progress on stderr (the whole run takes minutes); the figures go to stdout.
        print(
            f"[{number}/{len(benches)}] {bench.__name__.removeprefix('bench_')}...",
            file=sys.stderr,
            flush=True,
        )
        bench()


if __name__ == "__main__":
    main()
