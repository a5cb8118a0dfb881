"""The `prescale` section: how known events become capacity before they start."""

from __future__ import annotations

from pydantic import (
    Field,
)

from planning.settings.base import _Model


class PrescaleSettings(_Model):
    """How known events become capacity in service before they start.

    ALB LCU dimensions (per LCU-hour, EC2 targets): 25 new connections/s, 3,000 active
    connections, 1 GB processed per hour, 1,000 rule evaluations/s (10 rules free per request).
    """

    horizon_days: int = Field(default=120, ge=1, le=400)
    """Only events starting within this many days are declared (125 scheduled actions/ASG)."""
    cold_launch_s: int = Field(default=300, ge=30, le=1800)
    """Cold instance to serving (3-5 min with app start)."""
    warm_launch_s: int = Field(default=60, ge=10, le=600)
    """Warm-pool instance to serving (~30-60 s)."""
    schedule_slip_s: int = Field(default=120, ge=0, le=900)
    """Scheduled actions can run up to 2 minutes late."""
    margin_s: int = Field(default=900, ge=0, le=86_400)
    """Seconds added to every lead on top of launch, warmup and slip."""
    cooldown_s: int = Field(default=3600, ge=0, le=86_400)
    """Capacity stays raised this long after an event ends, for the tail of the crowd."""
    warm_pool_share_pct: float = Field(default=25, ge=0, le=100)
    """Warm pool during an event, as a share of the event's desired capacity (surprise margin)."""
    stage_minutes: int = Field(default=30, ge=15, le=1440)
    """Capacity follows the event's shape in stages this long: each stage's MinSize and LCUs
    hold the shape's highest point in it. One scheduled action per change (a 10-hour election
    night takes 18; AWS allows 125 per group)."""
    alb_reservation_lead_s: int = Field(default=7200, ge=3600, le=14 * 86_400)
    """Seconds before a stage needs more LCUs that they are asked for; the hourly job adds up
    to an hour. AWS fulfils most reservations "within a few minutes, but can take up to a few
    hours" (ELB user guide, request LCU reservation); until then the ALB keeps scaling on its
    own and the job reports the request pending. Longer is surer and costs more (the
    rehearsal's cost column shows how much)."""
    lcu_margin_pct: float = Field(default=10, ge=0, le=200)
    """LCUs reserved above what a stage's users use (the largest LCU dimension below): the
    per-request figures are estimates; the ALB still scales above its reservation."""
    new_connections_per_request: float = Field(default=0.1, gt=0, le=1)
    """Share of origin requests that open a new connection (keep-alive reuses the rest)."""
    active_connections_per_user: float = Field(default=1.0, gt=0, le=10)
    """Connections one user holds open to the ALB (LCU active-connections dimension)."""
    bytes_per_request: int = Field(default=20_000, gt=0)
    """Average bytes per origin request, both directions (dynamic HTML and API responses)."""
    rules_per_request: int = Field(default=1, ge=0, le=100)
    """Listener rules evaluated per request (the first 10 are free in the LCU count)."""
