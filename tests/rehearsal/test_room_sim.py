"""The rehearsal's room counts people inside as the inlet does (`inlet.count_sessions` over
per-minute collections, as the `collected#<minute>` counters hold them)."""

from __future__ import annotations

import math

import pytest

from rehearsal.room import RoomSim
from tests.functions.room_fixtures import config_for_tests

CONFIG = config_for_tests(session_s=1_200, show_s=120)
NOW = 1_000_000 * 60 + 30.0  # the middle of a minute


def test_tokens_count_by_minute_and_leave_the_window_after_three_visits() -> None:
    sim = RoomSim(CONFIG, patience_s=1_800)
    for ago, people in ((3_660, 1_000), (1_260, 1_000), (600, 1_000), (10, 1_000)):
        sim.collected.add(NOW - ago, people)
    s = sim.sessions(NOW, load_at=NOW - 90)
    assert s.staying == pytest.approx(1_000 * (math.exp(-1.05) + math.exp(-0.5) + 1), abs=2)
    assert s.collected_in_show == 1_000  # the minute 10 s back; 600 s back is past show_s
    # The load's minute began 90 + 30 s back: this minute and the one before count whole.
    assert s.collected_since_load == 1_000
    assert min(sim.collected.by_minute) >= int(NOW - 3_660) // 60 + 1, "old minutes are dropped"


def test_metered_newcomers_count_inside_at_once_within_the_allowance() -> None:
    sim = RoomSim(CONFIG, patience_s=1_800)
    sim.allowance = 50.0
    assert sim.take(NOW, 80) == 50.0
    assert sim.take(NOW, 10) == 0.0
    s = sim.sessions(NOW, load_at=None)
    assert (s.staying, s.collected_since_load) == (50, 50)
