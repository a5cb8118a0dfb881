"""The rehearsal's verdict: does the configured stack keep the settings' `rehearsal:` budget?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from planning.event_plan import EventPlan
from planning.settings import RehearsalSettings, Settings
from rehearsal.curves import scenario_nights
from rehearsal.simulate import Result, rehearse_all

BUDGET: tuple[tuple[str, str, str, str], ...] = (
    # measure, settings key, label, format
    ("raw_5xx", "max_raw_5xx", "raw 5xx", "{:,.0f}"),
    ("high_demand_pct", "max_high_demand_pct", "high-demand page", "{:.2f} %"),
    ("wait_p95_min", "max_p95_wait_minutes", "p95 wait", "{:.1f} min"),
    ("longest_queue_min", "max_queue_minutes", "longest queueing", "{:.0f} min"),
    ("kept_out_beyond_bound_pct", "max_kept_out_pct", "kept out beyond the bound", "{:.1f} %"),
    ("cost_vs_floor", "max_cost_vs_floor", "cost / floor", "{:.2f}x"),
    ("queue_api_peak_pct", "max_queue_api_pct", "queue API load", "{:.0f} % of capacity"),
)
POLICY = "configured"
"""The budget judges the stack as configured; the other policies are there to compare."""


@dataclass(frozen=True)
class Breach:
    scenario: str
    measure: str
    label: str
    value: str
    limit: str

    def __str__(self) -> str:
        return (
            f"{self.scenario}: {self.label} {self.value} > {self.limit} (rehearsal.{self.measure})"
        )


def breaches(results: Iterable[Result], budget: RehearsalSettings) -> list[Breach]:
    """Every measure of the configured policy that exceeds its limit, scenario by scenario."""
    found = []
    for result in results:
        if result.policy != POLICY:
            continue
        for measure, key, label, fmt in BUDGET:
            value, limit = result.measures[measure], float(getattr(budget, key))
            if value > limit + 1e-9:
                found.append(
                    Breach(result.scenario, key, label, fmt.format(value), fmt.format(limit))
                )
    return found


def summary(found: list[Breach]) -> str:
    """One line: within budget, or how many limits broke in which scenarios."""
    if not found:
        return "within budget"
    scenarios = sorted({b.scenario for b in found})
    return f"BREAKS BUDGET: {len(found)} limit(s) in {', '.join(scenarios)}"


def event_verdict(plan: EventPlan, settings: Settings) -> str:
    """The `event` scenario under the configured policy only: one line for `make plan`."""
    nights = scenario_nights(["event"], plan, settings, settings.admission.step_s)
    found = breaches(rehearse_all(nights, settings, (POLICY,)), settings.rehearsal)
    if not found:
        return "within budget"
    return "BREAKS BUDGET: " + "; ".join(f"{b.label} {b.value} > {b.limit}" for b in found)
