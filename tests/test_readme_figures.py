"""The README's figures are what the commands print: each night the README quotes is rehearsed
again here, as the command it names runs it, and every figure is looked for in the README as
that command would put it; and no ratio (`1.54x`, or with the times sign) appears in the
README that is neither one of those nor a setting. A figure that drifts, or one no command
produces, fails."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from functions.admission import inlet
from planning.capacity import origin_requests_per_s
from planning.clock import now
from planning.event_plan import lcu_used
from planning.settings import load_stack_settings
from rehearsal.curves import FLASH_MULTIPLE, scenario_nights
from rehearsal.simulate import rehearse_all
from scripts.rehearse import choose_event

ROOT = Path(__file__).resolve().parent.parent
README = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
"""The README with every run of whitespace one space: a figure may wrap."""
TIMES = "\u00d7"
"""The times sign, as the README writes some ratios."""
RATIO = re.compile(r"(?<![\w.])(\d+\.\d+) ?[x\u00d7]")
Measures = dict[tuple[str, str], dict[str, float]]


@cache
def night(stack: str, event: str | None, scenarios: tuple[str, ...], today: bool) -> Measures:
    """`make rehearse STACK=<stack> [EVENT=<event>]`'s measures for `scenarios`, by (scenario,
    policy); `today`: as of the real clock (the next event a newcomer sees), else the tests'."""
    s = load_stack_settings(stack)
    plan = choose_event(s, stack, datetime.now(UTC) if today else now(), event)
    nights = scenario_nights(list(scenarios), plan, s, s.admission.step_s)
    results = rehearse_all(nights, s, ("configured", "reactive", "static-peak", "floor"))
    return {(r.scenario, r.policy): r.measures for r in results}


def quoted() -> list[str]:
    """Each figure the README quotes, worded as the README words it, from a fresh run."""
    election = night(
        "prod", "us-general-election", ("event", "2016", "half-forecast", "flash-crowd"), False
    )
    nxt = night("prod", None, ("event", "half-forecast"), True)
    staging = night("staging", None, ("event", "half-forecast"), True)
    e, y16, half = (election[(n, "configured")] for n in ("event", "2016", "half-forecast"))
    flash = {p: election[("flash-crowd", p)] for p in ("configured", "static-peak", "reactive")}
    floor16 = election[("2016", "floor")]
    staged = {n: staging[(n, "configured")]["cost_vs_floor"] for n in ("event", "half-forecast")}
    f = flash["configured"]
    assert election[("event", "reactive")]["raw_5xx"] == 0  # "passes election night too"
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
        f"`static-peak`, {flash['static-peak']['peak_in_service']:.0f} instances all evening, "
        f"still fails {flash['static-peak']['failed_worst_pct']:.0f} % of its worst 15 minutes",
        f"it queues {round(f['queued'], -3):,.0f} arrivals",
        f"reopens after {f['longest_queue_min']:.0f} minutes: p95 wait {f['wait_p95_min']:.0f} "
        f"minutes, {f['kept_out_pct']:.1f} % of the wanted time kept out (no room could keep out "
        f"less than {f['kept_out_bound_pct']:.1f} %",
        f"the fleet's peak {f['peak_vs_needed']:.2f}{TIMES} what the demand needed, at "
        f"{f['cost_vs_floor']:.2f}{TIMES} the floor's cost",
        f"the room queues for {f['longest_queue_min']:.0f} minutes and reopens",
        f"the fleet peaks at {y16['peak_in_service']:.0f}",
        f"(the floor: {floor16['peak_in_service']:.0f})",
        f"LCUs ${y16['cost_alb_lcu_usd']:.1f} (the standing 100 and what the night uses above "
        f"them) against the floor's ${floor16['cost_alb_lcu_usd']:.1f}: "
        f"{y16['cost_vs_floor']:.2f}{TIMES} the floor",
    ]


def planned() -> list[str]:
    """The next event's reservation as the README words it (`make plan`'s LCU steps)."""
    s = load_stack_settings("prod")
    plan = choose_event(s, "prod", datetime.now(UTC), None)
    asked, released = plan.lcu_steps[0], plan.lcu_steps[-1]
    jump = f"{plan.occurrence.start:%H:%MZ}"
    units = f"{asked.value} LCUs asked at {asked.at:%H:%MZ}"
    crowd = FLASH_MULTIPLE * s.capacity.baseline_users
    needs = lcu_used(crowd, origin_requests_per_s(crowd, s), s)
    return [
        f"reserved {asked.value} LCUs, asked at {asked.at:%H:%MZ} (two hours and a runner "
        f"interval before its {jump} jump) and released at {released.at:%H:%MZ}",
        f"{units} for its {jump} jump, released at {released.at:%H:%MZ}",
        f"the crowd needs {needs:.0f} LCUs",
        f"flash crowd needs {needs:.0f} LCUs against the standing "
        f"{s.load_balancer.minimum_capacity_units}",
    ]


def settings_ratios() -> set[str]:
    """Ratios the README may quote from the settings: the cost budgets, the load balancer's
    growth per five minutes, the inlet's multiplicative decrease."""
    s = load_stack_settings("prod")
    r, lb = s.rehearsal, s.load_balancer
    return {
        f"{r.max_cost_vs_floor:.1f}",
        f"{r.max_cost_vs_floor_below_forecast:.1f}",
        f"{1 + lb.scaling_pct_per_5_min / 100:.1f}",
        f"{inlet.DECREASE:.1f}",
    }


def test_every_figure_the_readme_quotes_is_what_the_command_prints() -> None:
    s = load_stack_settings("prod")
    assert s.prescale.alb_reservation_lead_s == 2 * 3600  # "two hours"
    phrases = quoted() + planned()
    missing = [p for p in phrases if p not in README]
    assert missing == [], "README figures that a fresh run words differently:\n" + "\n".join(
        missing
    )
    produced = {m for p in phrases for m in RATIO.findall(p)} | settings_ratios()
    unsourced = sorted({m for m in RATIO.findall(README)} - produced)
    assert unsourced == [], f"ratios in the README no command or setting produces: {unsourced}"
