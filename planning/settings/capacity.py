"""The `capacity` section: the crowd to plan for."""

from __future__ import annotations

from pydantic import (
    Field,
)

from planning.settings.base import _Model


class CapacitySettings(_Model):
    """What the stack must carry; used to check that the fleet's max holds the planned peak."""

    baseline_users: int = Field(ge=1)
    """Concurrent users on an ordinary evening."""
    peak_multiple: float = Field(default=20.0, ge=1)
    """Planned surge as a multiple of baseline (2016: 12x observed; plan for 20x)."""
    requests_per_user_per_s: float = Field(default=0.05, gt=0)
    """Requests one active user sends per second, page assets included."""
    cdn_offload_pct: float = Field(default=60.0, ge=0, lt=100)
    """Share of requests CloudFront answers from cache."""
