"""The rehearsal's charts: the whole night beside its minutes that matter, in local time, and the
flash crowd's first half hour drawn minute by minute."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from planning.settings import load_stack_settings
from rehearsal.chart import ZOOM_BEFORE_MIN, ZOOM_MIN, draw, zoom_window
from rehearsal.curves import FLASH_AT_H, scenario_nights
from rehearsal.simulate import rehearse_all


def test_a_window_draws_only_its_minutes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches the window ignored or misplaced: every line of the zoomed chart lies within the
    crowd's first 30 minutes (night hours FLASH_AT_H to FLASH_AT_H + 0.5), the x axis spans
    them, and the demand line climbs inside them (the crowd is there, not a flat evening)."""
    s = load_stack_settings("prod")
    nights = scenario_nights(["flash-crowd"], None, s, s.admission.step_s)
    results = rehearse_all(nights, s, ("configured", "reactive"))
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    at = round(FLASH_AT_H * 60)
    draw(nights[0], results, "zoom", tmp_path / "zoom.png", window=(at - 2, at + 30))
    (fig,) = drawn
    top, middle, bottom = fig.axes[:3]
    lo, hi = (at - 2) / 60, (at + 29) / 60
    assert bottom.get_xlim() == pytest.approx((lo, hi))
    for axis in (top, middle, bottom):
        for line in axis.get_lines():
            xs = [float(x) for x in np.asarray(line.get_xdata())]
            assert xs and lo - 1e-9 <= min(xs) and max(xs) <= hi + 1e-9
    demand = [float(y) for y in np.asarray(top.get_lines()[0].get_ydata())]
    assert len(demand) == 32 and demand[-1] > 5 * demand[0]


def test_a_night_is_drawn_whole_beside_its_minutes_that_matter_in_local_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches a chart in UTC, without its date, or whose zoom misses the story: the evening
    starts at 18:00 Toronto time and its crowd comes at 20:00; the right-hand column starts
    ZOOM_BEFORE_MIN before the room first queues and spans an hour; the title names the local
    date; a panel with nothing in it says so instead of a 0-0.05 axis."""
    s = load_stack_settings("prod")
    nights = scenario_nights(["flash-crowd"], None, s, s.admission.step_s)
    results = rehearse_all(nights, s, ("configured", "floor"))
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    draw(nights[0], results, "prod: flash-crowd", tmp_path / "night.png")
    (fig,) = drawn
    queued = results[0].series.queueing.index(True)
    lo, hi = zoom_window(results)
    assert (lo, hi) == (queued - ZOOM_BEFORE_MIN, queued - ZOOM_BEFORE_MIN + ZOOM_MIN)
    panels = [
        a for a in fig.axes if a.get_ylabel() in ("instances", "failed origin\nrequests / min")
    ]
    whole, zoom = panels[0], panels[1]
    assert zoom.get_xlim() == pytest.approx((lo / 60, (hi - 1) / 60))
    assert whole.get_xlim()[1] - whole.get_xlim()[0] > 10  # hours
    assert fig.get_suptitle() == "prod: flash-crowd, Tuesday 03 October 2028"
    labels = [t.get_text() for a in fig.axes for t in a.texts]
    assert labels.count("nothing failed") == 2  # the floor fails nobody, nor the room
    crowd = round(FLASH_AT_H * 60)
    local = nights[0].start.astimezone(nights[0].zone)
    assert f"{local:%H:%M} {local + timedelta(minutes=crowd):%H:%M}" == "18:00 20:00"
