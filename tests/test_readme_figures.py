"""The README's and docs' figures are what the commands print.

Two checks. Each night the pages quote is rehearsed again here, as the command they name runs
it, and each figure is looked for in the pages worded as that command would put it. And every
number in the pages' prose (outside code) is accounted for: a figure a phrase here produces, a
setting of some stack, a value the program derives from them, a named constant of the code, or
an AWS, standard or historical fact listed below with its source. A figure that drifts, or one
nothing produces, fails.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from functions.admission import inlet
from planning.capacity import (
    admit_rate_per_s,
    origin_requests_per_s,
    people_per_instance,
    queue_api_design,
    room_item_reads,
)
from planning.clock import now
from planning.event_plan import lcu_used
from planning.settings import Settings, load_stack_settings
from rehearsal.curves import FLASH_MULTIPLE, scenario_nights
from rehearsal.simulate import Result, rehearse_all
from scripts.rehearse import choose_event

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "settings.md"),
]
"""The pages a person reads: the README and docs/ (settings.md is generated from the model)."""
TEXT = " ".join(" ".join(p.read_text(encoding="utf-8").split()) for p in PAGES)
"""Every page with each run of whitespace one space: a figure may wrap."""
TIMES = "\u00d7"
"""The times sign, as the pages write some ratios."""
STACKS = ("dev", "staging", "prod", "pr")
NUMBER = re.compile(r"(?<![\w.#/\-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!(?!x\b)\w|\.\d|/\d|-\d)")
"""A figure in prose: `1,000`, `0.7`, `1.54` in `1.54x`; not `IPv4`, `EC2.2`, `/24`,
`SHA-256`, `5xx` or a version's parts."""

HTTP_STATUSES = tuple(
    str(code)
    for code in (200, 202, 302, 303, 400, 403, 404, 405, 409, 410, 411, 413, 414, 415, 416, 429,
                 460, 500, 501, 502, 503, 504)
)  # fmt: skip
FACTS: dict[str, str] = {
    # The incident and the calendar.
    "17,000": "users a week before US election night 2016 (DESIGN.md; rehearsal.curves.SEED_2016)",
    "200,000": "users by 11 p.m. that night (DESIGN.md)",
    "2016": "the year of that night",
    "2027": "the next immigration levels plan (stacks/events.yaml)",
    "2028": "the next US election (stacks/events.yaml)",
    "2023": "Amazon Linux 2023, the AMI family the README names",
    "3.11": "the Python version the project runs on (pyproject.toml)",
    # HTTP statuses (RFC 9110; 460 is the ALB's own, Elastic Load Balancing user guide).
    **dict.fromkeys(HTTP_STATUSES, "an HTTP status (RFC 9110; 460 the ALB's, its user guide)"),
    "5545": "RFC 5545, iCalendar",
    "8601": "ISO 8601, dates and times",
    "2473": "pulumi-aws issue 2473 (scheduled actions with past start times)",
    "34189": "terraform-provider-aws issue 34189 (instance refresh)",
    # AWS limits the pages cite and no code computes with.
    "125": "scheduled actions per Auto Scaling group (Amazon EC2 Auto Scaling quotas)",
    "256": "KB, Lambda's asynchronous invocation payload (Lambda quotas); also carries_per_network",
    "1,000": "Lambda's default concurrency per Region, Lambda@Edge's per Region, DynamoDB's "
    "writes/s per partition (Lambda, CloudFront and DynamoDB quotas)",
    "3,000": "DynamoDB read units per second per partition (DynamoDB quotas)",
    "10,000": "Lambda@Edge requests per second per Region (CloudFront quotas)",
    "40,000": "DynamoDB read and write units per table by default (DynamoDB quotas)",
    "65,536": "characters in a GitHub issue comment (GitHub REST API)",
    "5": "MB, a CloudFront KeyValueStore (CloudFront quotas)",
    "400": "KB, a DynamoDB item (DynamoDB quotas)",
    "2": "vCPUs of a c7g.large or m7i.large (EC2 instance types)",
}
"""Figures that are facts of the world, not outputs of Floodgate, each with its source."""

CODE_FACTS: dict[str, tuple[str, str]] = {
    "72": ("scripts/preview.py", 'default=parse_duration("72h")'),
    "16": ("functions/admission/room.py", "`revoked#<0-15>`"),
    "140,000": ("functions/admission/room.py", "400 KB item limit: 140,000 in all"),
    "9,500": ("functions/admission/room.py", "9,500 of them stopped the room from being saved"),
    "20,000": ("tests/edge/return.test.mjs", "20000"),
}
"""Figures the code or its tests hold where no constant names them: the file, and the text in it
that says so (checked, so the figure goes when the code changes)."""


@cache
def night(stack: str, event: str | None, scenarios: tuple[str, ...], today: bool) -> dict:
    """`make rehearse STACK=<stack> [EVENT=<event>]`'s results for `scenarios`, by (scenario,
    policy); `today`: as of the real clock (the next event a newcomer sees), else the tests'."""
    s = load_stack_settings(stack)
    plan = choose_event(s, stack, datetime.now(UTC) if today else now(), event)
    nights = scenario_nights(list(scenarios), plan, s, s.admission.step_s)
    results = rehearse_all(nights, s, ("configured", "reactive", "static-peak", "floor"))
    return {(r.scenario, r.policy): r for r in results}


def quoted() -> list[str]:
    """Each rehearsal figure the pages quote, worded as they word it, from a fresh run."""
    runs: dict[tuple[str, str], Result] = night(
        "prod", "us-general-election", ("event", "2016", "half-forecast", "flash-crowd"), False
    )
    election = {k: r.measures for k, r in runs.items()}
    nxt = {k: r.measures for k, r in night("prod", None, ("event", "half-forecast"), True).items()}
    staging = night("staging", None, ("event", "half-forecast"), True)
    e, y16, half = (election[(n, "configured")] for n in ("event", "2016", "half-forecast"))
    flash = {p: election[("flash-crowd", p)] for p in ("configured", "static-peak", "reactive")}
    floor16 = election[("2016", "floor")]
    staged = {
        n: staging[(n, "configured")].measures["cost_vs_floor"] for n in ("event", "half-forecast")
    }
    f = flash["configured"]
    assert election[("event", "reactive")]["raw_5xx"] == 0  # "passes election night too"
    reactive_per_min = max(runs[("flash-crowd", "reactive")].series.failed)
    return [
        f"no high-demand page at {e['cost_vs_floor']:.2f}x the floor",
        f"passes election night too in this model, at "
        f"{election[('event', 'reactive')]['cost_vs_floor']:.2f}x",
        f"{nxt[('event', 'reactive')]['raw_5xx']:,.0f} raw 5xx on the next event (below) and "
        f"{flash['reactive']['raw_5xx']:,.0f} in a flash crowd",
        f"(`static-peak`) costs {election[('event', 'static-peak')]['cost_vs_floor']:.2f}x",
        f"2016 night on the same plan {y16['cost_vs_floor']:.2f}x and half the forecast "
        f"{half['cost_vs_floor']:.2f}x",
        f"{nxt[('event', 'configured')]['cost_vs_floor']:.2f}x on its forecast and "
        f"{nxt[('half-forecast', 'configured')]['cost_vs_floor']:.2f}x at half",
        f"Staging's part of that night costs {staged['event']:.2f}x on its forecast and "
        f"{staged['half-forecast']:.2f}x",
        f"about {reactive_per_min:,.0f} requests a minute with a raw 5xx",
        f"`static-peak`, {flash['static-peak']['peak_in_service']:.0f} instances all evening, "
        f"still fails {flash['static-peak']['failed_worst_pct']:.0f} % of its worst 15 minutes",
        f"it queues {round(f['queued'], -3):,.0f} arrivals",
        f"reopens after {f['longest_queue_min']:.0f} minutes: p95 wait {f['wait_p95_min']:.0f} "
        f"minutes, {f['kept_out_pct']:.1f} % of the wanted time kept out (no room could keep out "
        f"less than {f['kept_out_bound_pct']:.1f} %",
        f"the fleet's peak {f['peak_vs_needed']:.2f}{TIMES} what the demand needed, at "
        f"{f['cost_vs_floor']:.2f}{TIMES} the floor's cost",
        f"the room queues for {f['longest_queue_min']:.0f} minutes and reopens",
        f"reopens after {f['longest_queue_min']:.0f} minutes (p95 wait {f['wait_p95_min']:.0f} "
        f"minutes)",
        f"short of the plan's {flash['static-peak']['peak_in_service']:.0f} and the fleet peaks "
        f"at {y16['peak_in_service']:.0f}",
        f"(the floor: {floor16['peak_in_service']:.0f})",
        f"LCUs ${y16['cost_alb_lcu_usd']:.1f} (the standing 100 and what the night uses above "
        f"them) against the floor's ${floor16['cost_alb_lcu_usd']:.1f}: "
        f"{y16['cost_vs_floor']:.2f}{TIMES} the floor",
        f"${e['edge_cost_usd']:.0f} on prod's election night beside ${e['cost_usd']:.0f} of "
        f"instances and LCUs",
        f"{e['metered'] / 1e6:.1f} million on prod's election night",
        f"the real 2016 night (12x, not the forecast's 20x) costs {y16['cost_vs_floor']:.2f}x the "
        f"floor and half the forecast {half['cost_vs_floor']:.2f}x",
    ]


def planned() -> list[str]:
    """The next event's reservation as the pages word it (`make plan`'s LCU steps)."""
    s = load_stack_settings("prod")
    plan = choose_event(s, "prod", datetime.now(UTC), None)
    asked, released = plan.lcu_steps[0], plan.lcu_steps[-1]
    jump = f"{plan.occurrence.start:%H:%MZ}"
    units = f"{asked.value} LCUs asked at {asked.at:%H:%MZ}"
    crowd = FLASH_MULTIPLE * s.capacity.baseline_users
    needs = lcu_used(crowd, origin_requests_per_s(crowd, s), s)
    carry_s = s.admission.carry_minutes * 60
    return [
        f"reserved {asked.value} LCUs, asked at {asked.at:%H:%MZ} (two hours and a runner "
        f"interval before its {jump} jump) and released at {released.at:%H:%MZ}",
        f"{units} for its {jump} jump, released at {released.at:%H:%MZ}",
        f"the crowd needs {needs:.0f} LCUs",
        f"flash crowd needs {needs:.0f} LCUs against the standing "
        f"{s.load_balancer.minimum_capacity_units}",
        f"{crowd:,.0f} people inside at queue time are {crowd / carry_s:.0f} carries a second over "
        f"{s.admission.carry_minutes} minutes, inside the queue API's design point, where a "
        f"minute would be {crowd / 60:,.0f}",
    ]


def derived(s: Settings) -> list[str]:
    """What the program derives from a stack's settings, as the pages word it: people per
    instance, the admission rate, the queue API's design point, the room item's reads, origin
    requests at the planned peak (and with a fifth of requests public pages cached 60 s)."""
    design = queue_api_design(s.model_copy(update={"admission": s.admission.model_copy(
        update={"join_concurrency": None, "status_concurrency": None})}))  # fmt: skip
    derived_s = s.model_copy(update={"admission": s.admission.model_copy(
        update={"status_concurrency": None})})  # fmt: skip
    reads = room_item_reads(derived_s)
    peak = s.capacity.baseline_users * s.capacity.peak_multiple
    cached = s.model_copy(update={"capacity": s.capacity.model_copy(
        update={"public_page_pct": 20, "public_page_ttl_s": 60})})  # fmt: skip
    a = s.admission
    return [
        f"{people_per_instance(s):,}",
        f"{admit_rate_per_s(s):,}",
        f"{design.joins_per_s:,.0f} {design.joins_per_s + 0.5:,.0f} {design.polls_per_s:,.0f}",
        f"{design.join_concurrency} {design.status_concurrency}",
        f"{reads.reads_per_s:,.0f} {reads.units_per_s:,.0f}",
        f"{reads.uncached_reads_per_s:,.0f} {reads.uncached_reads_per_s / 2:,.0f}",
        f"{peak:,} {origin_requests_per_s(peak, s):,.0f}",
        f"{origin_requests_per_s(peak, cached):,.0f}",
        f"{0.75 * min(a.show_s, a.abandon_after_s):.0f}",
        f"{round(30.5 * 24 * 60 / s.prescale.run_every_minutes, -2):,.0f}",
    ]


def _leaves(value: object) -> Iterator[tuple[str, float]]:
    """Every numeric leaf of a settings dump, with its key."""
    if isinstance(value, dict):
        for key, item in value.items():
            for sub, number in _leaves(item):
                yield (sub or str(key)), number
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield "", float(value)


def _spellings(number: float) -> set[str]:
    return {f"{number:,.0f}"} if number == int(number) else {f"{number:g}", f"{number:,.2f}"}


def settings_figures() -> set[str]:
    """Every numeric setting of every stack, in seconds, minutes and hours where it is a time."""
    out: set[str] = set()
    for stack in STACKS:
        s = load_stack_settings(stack)
        for key, number in _leaves(s.model_dump()):
            out |= _spellings(number)
            if key.endswith("_s") and number % 60 == 0:
                out |= _spellings(number / 60) | _spellings(number / 3600)
            if key.endswith("_minutes"):
                out |= _spellings(number * 60)
        r, lb = s.rehearsal, s.load_balancer
        out |= {f"{r.max_cost_vs_floor:.1f}", f"{r.max_cost_vs_floor_below_forecast:.1f}"}
        out |= {f"{1 + lb.scaling_pct_per_5_min / 100:.1f}", f"{inlet.DECREASE:.1f}"}
        out |= {m.group(0) for phrase in derived(s) for m in NUMBER.finditer(phrase)}
    return out


def code_constants() -> set[str]:
    """Module-level numeric constants of the program (`ROOM_CACHE_S = 1.0`,
    `A, B = 4_000, 12_000`), spelt as the pages would."""
    out: set[str] = set()
    for folder in ("planning", "functions", "rehearsal", "policies", "components", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
                for const in ast.walk(value) if value is not None else ():
                    number = const.value if isinstance(const, ast.Constant) else None
                    if isinstance(number, int | float) and not isinstance(number, bool):
                        out |= _spellings(float(number))
    return out


def prose(text: str) -> str:
    """A page without its code blocks, inline code and link targets."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]+`", "``", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_every_figure_the_pages_quote_is_what_the_command_prints() -> None:
    s = load_stack_settings("prod")
    assert s.prescale.alb_reservation_lead_s == 2 * 3600  # "two hours"
    missing = [p for p in quoted() + planned() if p not in TEXT]
    assert missing == [], "figures that a fresh run words differently:\n" + "\n".join(missing)


def test_each_figure_the_code_holds_is_still_there() -> None:
    stale = [
        f"{figure}: {path} no longer says {needle!r}"
        for figure, (path, needle) in CODE_FACTS.items()
        if needle not in (ROOT / path).read_text(encoding="utf-8")
    ]
    assert stale == []


def test_every_number_in_the_pages_has_a_source() -> None:
    phrases = quoted() + planned()
    produced = {m.group(0) for p in phrases for m in NUMBER.finditer(p)}
    known = produced | settings_figures() | code_constants() | set(FACTS) | set(CODE_FACTS)
    unsourced = sorted(
        f"{page.relative_to(ROOT)}: {m.group(0)} ({text[max(0, m.start() - 40) : m.end() + 10]!r})"
        for page in PAGES
        for text in [prose(page.read_text(encoding="utf-8"))]
        for m in NUMBER.finditer(text)
        if m.group(0) not in known
    )
    assert unsourced == [], "figures no command, setting or listed fact produces:\n" + "\n".join(
        unsourced
    )
