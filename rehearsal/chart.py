"""One PNG per scenario: demand against each policy's capacity, failures, and the room."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MultipleLocator

from rehearsal.curves import Night
from rehearsal.simulate import Result

COLOURS = {
    "configured": "#1f77b4",
    "reactive": "#d62728",
    "static-peak": "#7f7f7f",
    "floor": "#2ca02c",
}


def draw(
    night: Night,
    results: list[Result],
    title: str,
    path: Path,
    window: tuple[int, int] | None = None,
) -> Path:
    """Three panels over the night's hours: instances, failed requests per minute, people
    waiting and admitted per minute; the configured room's queueing shaded on all. `window`:
    only minutes [from, to) of the night, ticked every 5 minutes (a crowd's first half hour)."""
    by_policy = {r.policy: r for r in results}
    minutes = len(next(iter(by_policy.values())).series.in_service)
    lo, hi = window if window is not None else (0, minutes)

    def cut(values: list) -> list:
        return values[lo:hi]

    hours = [m / 60 for m in range(lo, min(hi, minutes))]
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(11, 9), sharex=True, height_ratios=(3, 2, 2)
    )
    configured = by_policy.get("configured")
    demand = cut(configured.series.demand_instances) if configured else []
    top.plot(
        hours[: len(demand)],
        demand,
        color="black",
        linewidth=2.2,
        label="demand (instances the crowd needs)",
    )
    for policy, result in by_policy.items():
        in_service, failed = cut(result.series.in_service), cut(result.series.failed)
        style = "--" if policy in ("floor", "static-peak") else "-"
        top.plot(
            hours[: len(in_service)],
            in_service,
            style,
            color=COLOURS.get(policy),
            label=f"{policy}: in service",
        )
        if failed:
            middle.plot(
                hours[: len(failed)],
                failed,
                color=COLOURS.get(policy),
                label=policy,
            )
    top.set_ylabel("instances")
    top.legend(loc="upper left", fontsize=8)
    middle.set_ylabel("failed origin\nrequests / min")
    middle.legend(loc="upper left", fontsize=8)
    if configured is not None:
        waiting, admitted = cut(configured.series.waiting), cut(configured.series.admitted)
        bottom.plot(
            hours[: len(waiting)], waiting, color="#9467bd", label="people waiting (configured)"
        )
        right = bottom.twinx()
        right.plot(
            hours[: len(admitted)],
            admitted,
            color="#ff7f0e",
            linewidth=0.8,
            label="admitted / min",
        )
        right.set_ylabel("admitted / min")
        right.set_ylim(bottom=0)
        right.legend(loc="upper right", fontsize=8)
        for axis in (top, middle, bottom):
            _shade(axis, hours, cut(configured.series.queueing))
    bottom.set_ylabel("people waiting")
    bottom.legend(loc="upper left", fontsize=8)
    zone = ZoneInfo(night.plan.occurrence.time_zone) if night.plan else UTC
    local = night.start.astimezone(zone)
    bottom.set_xlabel(f"{zone}, night of {local:%Y-%m-%d}; shaded: the room queueing")
    bottom.xaxis.set_major_locator(MultipleLocator(1 if window is None else 5 / 60))
    bottom.set_xlim(hours[0], hours[-1])
    bottom.xaxis.set_major_formatter(
        FuncFormatter(lambda h, _: f"{local + timedelta(hours=h):%H:%M}")
    )
    for axis in (top, middle, bottom):
        axis.grid(alpha=0.3)
        axis.set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _shade(axis: Axes, hours: list[float], queueing: list[bool]) -> None:
    start = None
    for i, queued in enumerate([*queueing, False]):
        if queued and start is None:
            start = i
        elif not queued and start is not None:
            axis.axvspan(hours[start], hours[min(i, len(hours) - 1)], color="#9467bd", alpha=0.15)
            start = None
