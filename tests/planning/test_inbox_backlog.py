"""The inbox's backlog against the back office's drain, on curves worked by hand."""

from __future__ import annotations

import math

from planning.inbox import backlog, submissions_per_s
from tests.helpers import settings_with


def _settings(prod_config, **changes):
    # 20-minute visits, 12 % of them submit: 6,000 people send 0.6 a second, 36 a minute.
    return settings_with(
        prod_config, admission__session_minutes=20, inbox__submit_pct=12.0, **changes
    )


def test_submissions_follow_the_visits(prod_config) -> None:
    s = _settings(prod_config)
    assert math.isclose(submissions_per_s(6_000, s), 0.6)


def test_a_night_below_the_drain_is_never_behind(prod_config) -> None:
    s = _settings(prod_config, inbox__drain_per_s=1.0, capacity__baseline_users=1_000)
    b = backlog([6_000.0] * 60, s)  # 0.6/s against 1/s
    assert (b.most_waiting, b.longest_wait_min, b.clears_min) == (0, 0.6, 0)
    assert b.waiting == (0.0,) * 60 and b.oldest_min == (0.0,) * 60
    assert math.isclose(b.submitted, 0.6 * 3600)


def test_a_burst_twice_the_drain_builds_and_clears_first_in_first_out(prod_config) -> None:
    """36 a minute arrive for 10 minutes against 18 drained: 18 more wait each minute, 180 at
    the end; half of what arrived has been drained, so the oldest waiting arrived in minute 5
    (4 minutes old at the end of minute 9), and the last to arrive then waits behind 198: 11
    minutes. Then nothing arrives: the 180 drain in 10 more minutes, 19 after the first minute
    behind."""
    s = _settings(prod_config, inbox__drain_per_s=0.3, capacity__baseline_users=1)
    b = backlog([6_000.0] * 10 + [0.0] * 15, s)
    assert math.isclose(b.most_waiting, 180)
    assert [round(w) for w in b.waiting[:12]] == [18 * m for m in range(1, 11)] + [162, 144]
    assert b.oldest_min[9] == 4
    assert b.clears_min == 19
    assert math.isclose(b.peak_per_s, 0.6)
    assert math.isclose(b.longest_wait_min, 11)


def test_a_back_office_slower_than_the_baseline_never_clears(prod_config) -> None:
    s = _settings(prod_config, inbox__drain_per_s=0.1, capacity__baseline_users=6_000)
    assert math.isinf(backlog([6_000.0] * 10, s).clears_min)
