"""The rehearsal's charts: the flash crowd's first half hour drawn minute by minute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from planning.settings import load_stack_settings
from rehearsal.chart import draw
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
