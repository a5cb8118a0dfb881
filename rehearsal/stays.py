"""How long people stay on the site: who of the people inside leaves at each step.

Two distributions with the same mean (`admission.session_minutes`):
- exponential (the default): each step the same share leaves, whatever their arrival (no echo
  of a crowd's arrivals one session later);
- lognormal, sigma LOGNORMAL_SIGMA: most visits are short and a few last hours, so a crowd's
  arrivals leave mostly within the first session and partly hours later. An assumption, not a
  measurement: portals' visit lengths are right-skewed; set it from the portal's analytics.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Kind = Literal["exponential", "lognormal"]
KINDS: tuple[Kind, ...] = ("exponential", "lognormal")
LOGNORMAL_SIGMA = 1.0
"""Shape of the lognormal visit length (log-space standard deviation): median 61 % of the mean,
1 % of visits past 6.2 x the mean."""
TAIL_Z = 3.719
"""Departures past the standard normal's 1 - 1e-4 quantile are dropped (lognormal): one
visit in 10,000 stays all night."""


class Stays:
    """People inside, and when they leave. `step()` once per step, then `enter()` whoever
    came in during it; `remove()` takes people out early (their sessions end)."""

    def __init__(self, kind: Kind, mean_s: float, step_s: int, inside: float) -> None:
        self.kind = kind
        self.inside = max(inside, 0.0)
        self._stay = math.exp(-step_s / mean_s)
        if kind == "exponential":
            return
        sigma = LOGNORMAL_SIGMA
        mu = math.log(mean_s) - sigma**2 / 2
        edges = [step_s * k for k in range(1, _steps_to_tail(mu, sigma, step_s) + 1)]
        cdf = np.array([0.0, *(_lognormal_cdf(t, mu, sigma) for t in edges)])
        self._pdf = np.diff(cdf)
        """Share of a step's arrivals who leave 1, 2, ... steps later."""
        survival = 1.0 - cdf[:-1]
        residual = np.cumsum(survival[::-1])[::-1]
        residual = residual / residual[0]
        self._steady = -np.diff(np.append(residual, 0.0))
        """Share of a steady crowd already inside who leave 1, 2, ... steps on (equilibrium
        residual life: P(R > r) = integral of survival from r, over the mean)."""
        self._due = np.zeros(len(self._pdf) + 1)
        self._due[1 : len(self._steady) + 1] += self.inside * self._steady
        self._at = 0

    def step(self) -> float:
        """Advance one step: the people who leave during it (and no longer count as inside)."""
        if self.kind == "exponential":
            left = self.inside * (1 - self._stay)
        else:
            self._at += 1
            slot = self._at % len(self._due)
            left = min(float(self._due[slot]), self.inside)
            self._due[slot] = 0.0
        self.inside -= left
        return left

    def enter(self, people: float) -> None:
        """`people` came in this step."""
        if people <= 0:
            return
        self.inside += people
        if self.kind == "lognormal":
            start, n = (self._at + 1) % len(self._due), len(self._pdf)
            head = min(n, len(self._due) - start)
            self._due[start : start + head] += people * self._pdf[:head]
            self._due[: n - head] += people * self._pdf[head:]

    def remove(self, people: float) -> None:
        """Take `people` out now, evenly across everyone inside (their sessions ended)."""
        people = min(max(people, 0.0), self.inside)
        if people <= 0:
            return
        keep = 1 - people / self.inside
        self.inside -= people
        if self.kind == "lognormal":
            self._due *= keep


def _lognormal_cdf(t: float, mu: float, sigma: float) -> float:
    return 0.5 * math.erfc(-(math.log(t) - mu) / (sigma * math.sqrt(2)))


def _steps_to_tail(mu: float, sigma: float, step_s: int) -> int:
    """Steps until all but 1e-4 of visits have ended."""
    return max(1, math.ceil(math.exp(mu + TAIL_Z * sigma) / step_s))
