"""One PNG per scenario: demand against each policy's capacity, failures, and the room; the
whole night beside the minutes that matter, in the night's local time."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MultipleLocator

from planning.inbox import Backlog
from rehearsal.curves import Night
from rehearsal.simulate import Result

COLOURS = {
    "configured": "#1f77b4",
    "reactive": "#d62728",
    "static-peak": "#7f7f7f",
    "floor": "#2ca02c",
}
ZOOM_BEFORE_MIN, ZOOM_MIN = 10, 60
"""The minutes that matter: from this many before the first thing that happens (the room
queues, a request fails, or the demand's steepest rise) for an hour."""


def zoom_window(results: list[Result]) -> tuple[int, int]:
    """Minutes [from, to) of the night that tell its story: around the configured stack's first
    queueing or failure, else the demand's steepest one-minute rise."""
    by_policy = {r.policy: r for r in results}
    shown = by_policy.get("configured") or next(iter(by_policy.values()))
    s = shown.series
    minutes = len(s.in_service)
    events = [m for m, (q, f) in enumerate(zip(s.queueing, s.failed, strict=False)) if q or f > 0]
    if events:
        at = events[0]
    else:
        demand = s.demand_instances
        rises = [demand[m] - demand[m - 1] for m in range(1, len(demand))]
        at = 1 + max(range(len(rises)), key=rises.__getitem__) if rises else 0
    lo = max(0, at - ZOOM_BEFORE_MIN)
    return lo, min(minutes, lo + ZOOM_MIN)


def draw(
    night: Night,
    results: list[Result],
    title: str,
    path: Path,
    window: tuple[int, int] | None = None,
) -> Path:
    """Three panels (instances, failed requests per minute, people waiting and admitted per
    minute; the configured room's queueing shaded), and a fourth with the inbox's backlog and
    the age of its oldest submission when the stack has an inbox: the whole night beside
    `zoom_window`, or only minutes [from, to) of `window`, ticked every 5 minutes. Legends sit
    below the data."""
    by_policy = {r.policy: r for r in results}
    minutes = len(next(iter(by_policy.values())).series.in_service)
    views = [window] if window is not None else [(0, minutes), zoom_window(results)]
    inbox = by_policy["configured"].inbox if "configured" in by_policy else None
    rows = 4 if inbox is not None else 3
    fig, grid = plt.subplots(
        rows,
        len(views),
        figsize=(11 if window is not None else 16, 9.5 if rows == 3 else 12),
        sharex="col",
        height_ratios=(3, 2, 2, 2)[:rows],
        squeeze=False,
    )
    local = night.start.astimezone(night.zone)
    for column, (lo, hi) in enumerate(views):
        axes = (grid[0][column], grid[1][column], grid[2][column])
        _panels(axes, by_policy, lo, hi, local, detail=window is not None or column == 1)
        if inbox is not None:
            _inbox_panel(grid[3][column], inbox, lo, hi)
        if len(views) > 1:
            span = "the whole night" if column == 0 else "the minutes that matter"
            axes[0].set_title(span, fontsize=10)
    zone = getattr(night.zone, "key", None) or local.strftime("UTC%z")
    grid[rows - 1][0].set_xlabel(f"{zone} local time; shaded: the room queueing")
    handles, labels = [], []
    for axis in fig.axes:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"{title}, {local:%A %d %B %Y}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _panels(
    axes: tuple[Axes, Axes, Axes],
    by_policy: dict[str, Result],
    lo: int,
    hi: int,
    local: datetime,
    detail: bool,
) -> None:
    """One column: minutes [lo, hi) of every policy; ticks every 5 minutes when `detail`."""
    top, middle, bottom = axes
    hours = [m / 60 for m in range(lo, hi)]
    configured = by_policy.get("configured")
    if configured is not None:
        demand = configured.series.demand_instances[lo:hi]
        top.plot(hours[: len(demand)], demand, color="black", linewidth=2.2,
                 label="demand (instances the crowd needs)")  # fmt: skip
    failures = False
    for policy, result in by_policy.items():
        in_service, failed = result.series.in_service[lo:hi], result.series.failed[lo:hi]
        style = "--" if policy in ("floor", "static-peak") else "-"
        top.plot(hours[: len(in_service)], in_service, style, color=COLOURS.get(policy),
                 label=f"{policy}: in service")  # fmt: skip
        if failed:
            middle.plot(hours[: len(failed)], failed, color=COLOURS.get(policy))
            failures = failures or max(failed) > 0
    top.set_ylabel("instances")
    middle.set_ylabel("failed origin\nrequests / min")
    if not failures:
        _empty(middle, "nothing failed")
    if configured is not None:
        waiting, admitted = configured.series.waiting[lo:hi], configured.series.admitted[lo:hi]
        bottom.plot(hours[: len(waiting)], waiting, color="#9467bd",
                    label="people waiting (configured)")  # fmt: skip
        right = bottom.twinx()
        right.plot(hours[: len(admitted)], admitted, color="#ff7f0e", linewidth=0.8,
                   label="admitted / min (right)")  # fmt: skip
        right.set_ylabel("admitted / min")
        right.set_ylim(bottom=0)
        if max(waiting, default=0) <= 0 and max(admitted, default=0) <= 0:
            _empty(bottom, "nobody waited")
            right.set_ylim(0, 1)
        for axis in axes:
            _shade(axis, hours, configured.series.queueing[lo:hi])
    bottom.set_ylabel("people waiting")
    step_h = 5 / 60 if detail else (1 if hi - lo <= 12 * 60 else 2)
    bottom.xaxis.set_major_locator(MultipleLocator(step_h))
    bottom.set_xlim(hours[0], hours[-1])
    bottom.xaxis.set_major_formatter(
        FuncFormatter(lambda h, _: f"{local + timedelta(hours=h):%H:%M}")
    )
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.get_ylim()[1] > 1 or axis is top:
            axis.set_ylim(bottom=0)


def _inbox_panel(axis: Axes, inbox: Backlog, lo: int, hi: int) -> None:
    """Submissions waiting for the back office (left) and the oldest one's age (right)."""
    hours = [m / 60 for m in range(lo, hi)]
    waiting, oldest = inbox.waiting[lo:hi], inbox.oldest_min[lo:hi]
    axis.plot(hours[: len(waiting)], waiting, color="#8c564b",
              label="submissions waiting (inbox)")  # fmt: skip
    axis.set_ylabel("submissions\nwaiting")
    right = axis.twinx()
    right.plot(hours[: len(oldest)], oldest, color="#17becf", linewidth=0.8,
               label="oldest waiting, min (right)")  # fmt: skip
    right.set_ylabel("oldest, min")
    right.set_ylim(bottom=0)
    if max(waiting, default=0) <= 0:
        _empty(axis, f"the back office keeps up ({inbox.drain_per_s:g}/s)")
        right.set_ylim(0, 1)
    else:
        axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)


def _empty(axis: Axes, words: str) -> None:
    """A panel with nothing to show says so, on a 0-1 axis rather than matplotlib's 0-0.05."""
    axis.set_ylim(0, 1)
    axis.text(0.5, 0.5, words, transform=axis.transAxes, ha="center", va="center", color="#555")


def _shade(axis: Axes, hours: list[float], queueing: list[bool]) -> None:
    start = None
    for i, queued in enumerate([*queueing, False]):
        if queued and start is None:
            start = i
        elif not queued and start is not None:
            axis.axvspan(hours[start], hours[min(i, len(hours) - 1)], color="#9467bd", alpha=0.15)
            start = None
