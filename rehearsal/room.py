"""The waiting room as the stack runs it, driven by the inlet's own decisions.

Each step calls `functions/admission/inlet.admit_budget`, `walk` and `next_state` (the caller
has `regulate`d the fleet's ceiling on the room's state first), with the room's
`admission_rate` (and the simulation the pages' `retry_after`): the rehearsal never
re-implements a decision. What it adds is people: cohorts who join the line, poll, give up
(exponentially, with the settings' mean patience), and collect their token on their next poll.

The line holds cohorts (everyone who joined in one step). For `walk`, the head of the line is
laid out as places of `unit` people each, `unit = ceil(budget / PLACES_PER_STEP)`: a step admits
within 1 / PLACES_PER_STEP of its budget and never more than it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from functions.admission.inlet import (
    Fleet,
    Sessions,
    admit_budget,
    count_sessions,
    free_capacity,
    next_state,
    session_minutes,
    walk,
)
from functions.admission.room import RATE_WINDOW_S, Config, admission_rate
from rehearsal import model

PLACES_PER_STEP = 100


@dataclass
class Cohort:
    joined: float
    people: float
    """Still in line (alive or gone but not yet passed)."""
    scale: float
    """alive(t) = scale * exp(-(t - joined) / patience), people who have not given up."""


@dataclass
class Tally:
    """A sliding-window sum of (time, people) events."""

    window: float
    events: deque[tuple[float, float]] = field(default_factory=deque)
    total: float = 0.0

    def add(self, at: float, people: float) -> None:
        if people > 0:
            self.events.append((at, people))
            self.total += people

    def since(self, now: float) -> float:
        while self.events and now - self.events[0][0] > self.window:
            self.total -= self.events.popleft()[1]
        return max(self.total, 0.0)


@dataclass
class Minutes:
    """Tokens collected per minute, as the inlet's `collected#<minute>` counters hold them."""

    config: Config
    by_minute: dict[int, float] = field(default_factory=dict)

    def add(self, at: float, people: float) -> None:
        if people > 0:
            minute = int(at) // 60
            self.by_minute[minute] = self.by_minute.get(minute, 0.0) + people

    def sessions(self, now: float, load_at: float | None, admitted_in_show: float) -> Sessions:
        """The inlet's `count_sessions` over these minutes (older ones are dropped)."""
        first = session_minutes(self.config, now)[0]
        for minute in [m for m in self.by_minute if m < first]:
            del self.by_minute[minute]
        return count_sessions(self.config, self.by_minute, now, load_at, admitted_in_show)


@dataclass
class RoomSim:
    """The room's state item, its line, and the people it let in or lost."""

    config: Config
    patience_s: float
    state: dict[str, Any] = field(default_factory=lambda: {"state": "open", "calm_since": None})
    line: deque[Cohort] = field(default_factory=deque)
    collected: Minutes = field(init=False)
    admitted_show: Tally = field(init=False)
    history: list[list[float]] = field(default_factory=list)
    """[time, people admitted] over the last RATE_WINDOW_S: the room item's `history`."""
    upcoming: deque[tuple[float, float]] = field(default_factory=deque)
    """(collect at, people) admitted and not yet polled."""
    waits: list[tuple[float, float]] = field(default_factory=list)
    """(wait s, people) of everyone admitted from the line."""
    queued: float = 0.0
    gave_up: float = 0.0
    """People who left the line, including those admitted after they had gone (no-shows)."""
    budgets: list[tuple[int, float]] = field(default_factory=list)
    """(budget, admitted people) per queueing step: the room never admits beyond its budget."""
    allowance: float = 0.0
    """Newcomers the open room admits at once this step (metering: the inlet's last offer)."""
    used: float = 0.0
    offered: bool = False
    _alive_sum: float = 0.0
    """sum(scale * exp((joined - _ref) / patience)) over the line: people still waiting, in
    one multiplication (see `still_waiting`)."""
    _ref: float = 0.0
    _in_line: float = 0.0

    def __post_init__(self) -> None:
        self.collected = Minutes(self.config)
        self.admitted_show = Tally(self.config.show_s)

    @property
    def queueing(self) -> bool:
        return self.state["state"] == "queue"

    def waiting(self) -> float:
        """People in line as the room counts them (givers-up stay until the cursor passes)."""
        return max(self._in_line, 0.0)

    def still_waiting(self, now: float) -> float:
        """People in line who have not given up."""
        if (now - self._ref) / self.patience_s > 50:  # rebase before exp() overflows
            self._alive_sum *= math.exp(-(now - self._ref) / self.patience_s)
            self._ref = now
        return max(self._alive_sum * math.exp(-(now - self._ref) / self.patience_s), 0.0)

    def _weight(self, joined: float) -> float:
        return math.exp((joined - self._ref) / self.patience_s)

    def alive(self, cohort: Cohort, at: float) -> float:
        if at <= cohort.joined:
            return min(cohort.people, cohort.scale)
        return min(cohort.people, cohort.scale * math.exp(-(at - cohort.joined) / self.patience_s))

    def join(self, now: float, people: float) -> None:
        """People the gate turned away join the back of the line."""
        if people > 0:
            self.still_waiting(now)
            self.line.append(Cohort(now, people, people))
            self._alive_sum += people * self._weight(now)
            self._in_line += people
            self.queued += people

    def step(self, now: float, fleet: Fleet, forced: bool) -> tuple[float, str | None]:
        """One inlet step: admit from the line, then the room's next state.

        Returns the people who enter with a token this step and the transition, if any
        ("queue" when it starts queueing, "open" when it opens: the line walks in)."""
        while self.upcoming and self.upcoming[0][0] <= now:
            at, people = self.upcoming.popleft()
            self.collected.add(at, people)
        moved = admitted = 0.0
        exhausted = False
        if not self.queueing and self.config.meter:
            exhausted = self.offered and self.used >= self.allowance
            free = free_capacity(self.config, fleet, self.sessions(now, fleet.load_at))
            self.allowance, self.used, self.offered = free, 0.0, True
        else:
            self.allowance, self.used, self.offered = 0.0, 0.0, False
        if self.queueing:
            budget = admit_budget(self.config, fleet, self.sessions(now, fleet.load_at))
            moved, admitted = self._admit(now, budget)
            self.budgets.append((budget, moved))
        before = self.state["state"]
        waiting = round(self.waiting())
        self.history = [h for h in self.history if now - h[0] <= RATE_WINDOW_S]
        if moved:
            self.history.append([now, moved])  # places admitted, as the inlet records them
        rate = admission_rate(self.history, now)
        state, calm = next_state(
            self.config, self.state, fleet, waiting, forced, now, rate, exhausted
        )
        self.state.update(state=state, calm_since=calm)
        if state == before:
            return admitted, None
        return admitted, state

    @property
    def metering(self) -> bool:
        return not self.queueing and self.offered

    def take(self, now: float, people: float) -> float:
        """Metering: of `people` joining now, those the step's allowance admits at once (their
        tokens count as collected); the rest are told to try again."""
        got = min(max(people, 0.0), max(self.allowance - self.used, 0.0))
        self.used += got
        self.collected.add(now, got)
        return got

    def sessions(self, now: float, load_at: float | None = None) -> Sessions:
        """The tokens collected and admissions pending, as the inlet counts them."""
        return self.collected.sessions(now, load_at, self.admitted_show.since(now))

    def open_doors(self, now: float) -> float:
        """The room opened: everyone still polling walks in (no token); the rest gave up."""
        entered = 0.0
        for cohort in self.line:
            alive = self.alive(cohort, now)
            self.waits.append((now - cohort.joined, alive))
            self.gave_up += cohort.people - alive
            entered += alive
        self.line.clear()
        self._alive_sum = self._in_line = 0.0
        return entered

    def close(self, now: float) -> float:
        """End of the night: people still in line; those who gave up are counted."""
        left = 0.0
        for cohort in self.line:
            alive = self.alive(cohort, now)
            self.gave_up += cohort.people - alive
            left += alive
        return left

    def _admit(self, now: float, budget: int) -> tuple[float, float]:
        """Lay the head of the line out as places and let the inlet's `walk` move over it.
        Returns the people admitted and those of them still there to collect a token."""
        unit = max(1, math.ceil(budget / PLACES_PER_STEP))
        units = budget // unit
        limit = units + units // 4 + 25
        places: list[tuple[int, dict[str, Any] | None]] = []
        runs: list[tuple[Cohort, int, float, bool]] = []  # cohort, places, people, gone
        gone_item, here_item = {"seen_at": now - self.config.abandon_after_s - 1}, {"seen_at": now}
        for cohort in self.line:
            if len(places) >= limit:
                break
            looks_alive = self.alive(cohort, now - self.config.abandon_after_s)
            gone = max(cohort.people - looks_alive, 0.0)
            for people, item in ((gone, gone_item), (cohort.people - gone, here_item)):
                count = min(math.ceil(people / unit - 1e-9), limit - len(places))
                if count > 0:
                    places.extend([(len(places), item)] * count)
                    runs.append((cohort, count, people, item is gone_item))
        moved = walk(places, units, now, self.config.abandon_after_s)
        admitted = entered = 0.0
        left = moved.passed
        for cohort, count, people, gone in runs:
            if left <= 0:
                break
            taken = min(people, min(count, left) * unit)
            left -= count
            if gone:
                self.gave_up += taken
            else:
                shows = min(taken, self.alive(cohort, now))
                if shows > 0:
                    self.waits.append((now - cohort.joined, shows))
                    self.upcoming.append((now + model.POLL_S / 2, shows))
                    before = cohort.scale
                    cohort.scale = max(cohort.scale - shows * self._growth(cohort, now), 0.0)
                    self._alive_sum -= (before - cohort.scale) * self._weight(cohort.joined)
                    entered += shows
                self.gave_up += taken - shows
                admitted += taken
            cohort.people -= taken
            self._in_line -= taken
        while self.line and self.line[0].people <= 1e-9:
            gone = self.line.popleft()
            self._alive_sum -= gone.scale * self._weight(gone.joined)
        self.admitted_show.add(now, admitted)
        return admitted, entered

    def _growth(self, cohort: Cohort, now: float) -> float:
        """d(scale) per person alive now: removing k alive people lowers scale by k * this."""
        return math.exp((now - cohort.joined) / self.patience_s)
