"""The inbox's arithmetic: submissions a night brings, what the back office drains, the backlog
between them. Pure: `make plan` prints it for each planned night and the rehearsal plays it.

Submissions a second = people on the site x `inbox.submit_pct` / the visit's length
(`admission.session_minutes`): each visit submits once with that chance. The consumer drains
at most `inbox.drain_per_s`; a submission waits, first in first out, behind the backlog it
joins. SQS's standard queue is not strictly first in first out; the wait is the plan's, not a
promise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from planning.settings import Settings


def submissions_per_s(users: float, settings: Settings) -> float:
    """Submissions a second from `users` people on the site."""
    visit_s = settings.admission.session_minutes * 60
    return users * settings.inbox.submit_pct / 100 / visit_s


@dataclass(frozen=True)
class Backlog:
    """A night's submissions against the back office's pace."""

    peak_per_s: float
    """Submissions a second at the night's busiest minute."""
    drain_per_s: float
    submitted: float
    """Submissions over the night."""
    most_waiting: float
    """The largest backlog, in submissions."""
    longest_wait_min: float
    """The longest a submission waits for the back office, in minutes."""
    clears_min: float
    """Minutes from the first minute arrivals outrun the drain until nothing waits (0: never
    behind; inf: still waiting when the queue's retention runs out)."""
    waiting: tuple[float, ...] = ()
    """Submissions waiting at the end of each minute of the curve (the chart's line)."""
    oldest_min: tuple[float, ...] = ()
    """The age of the oldest waiting submission at the end of each minute, in minutes."""


def backlog(users_per_min: Sequence[float], settings: Settings) -> Backlog:
    """Minute by minute: what arrives, what the drain takes, what waits; after the curve, the
    stack's baseline until the backlog is gone or the queue's retention is up."""
    drain_per_min = settings.inbox.drain_per_s * 60
    waiting = most = wait = total = peak = 0.0
    behind_since: int | None = None
    clears = 0.0
    after = [float(settings.capacity.baseline_users)] * (settings.inbox.retention_s // 60)
    series: list[float] = []
    for minute, users in enumerate([*users_per_min, *after]):
        if minute >= len(users_per_min) and waiting == 0:
            break
        arriving = submissions_per_s(users, settings) * 60
        if minute < len(users_per_min):
            total, peak = total + arriving, max(peak, arriving / 60)
        wait = max(wait, (waiting + arriving) / drain_per_min)
        waiting = max(0.0, waiting + arriving - drain_per_min)
        most = max(most, waiting)
        if minute < len(users_per_min):
            series.append(waiting)
        if waiting > 0 and behind_since is None:
            behind_since = minute
        if waiting == 0 and behind_since is not None:
            clears, behind_since = max(clears, minute - behind_since), None
    if behind_since is not None:
        clears = math.inf
    return Backlog(
        peak, settings.inbox.drain_per_s, total, most, wait, clears, tuple(series),
        tuple(_oldest(series, users_per_min, settings)),
    )  # fmt: skip


def _oldest(waiting: list[float], users: Sequence[float], settings: Settings) -> list[float]:
    """First in, first out: what waits at the end of a minute is the latest arrivals, so the
    oldest of them arrived in the earliest minute their count reaches back to."""
    arrived = [submissions_per_s(u, settings) * 60 for u in users[: len(waiting)]]
    out: list[float] = []
    since = 0  # the first minute whose arrivals may still wait
    for minute, now in enumerate(waiting):
        if now <= 0:
            out.append(0.0)
            since = minute + 1
            continue
        need, start = now, minute
        while start > since and need > arrived[start]:
            need -= arrived[start]
            start -= 1
        out.append(float(minute - start))
    return out
