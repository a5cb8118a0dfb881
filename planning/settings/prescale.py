"""The `prescale` section: how known events become capacity before they start."""

from __future__ import annotations

from typing import Self

from pydantic import (
    Field,
    model_validator,
)

from planning.settings.base import LogRetentionDays, _at, _Model

RUNNER_CONCURRENCY = 1
"""One pre-scale pass at a time: the runner's reserved concurrency. An invocation throttled by
a pass still running is retried by Lambda for at most its event age (one interval), then
dropped: the next one is an interval away."""


class PrescaleSettings(_Model):
    """How known events become capacity in service before they start.

    ALB LCU dimensions (per LCU-hour, EC2 targets): 25 new connections/s, 3,000 active
    connections, 1 GB processed per hour, 1,000 rule evaluations/s (10 rules free per request).
    """

    horizon_days: int = Field(default=120, ge=1, le=400)
    """Only events starting within this many days are declared (125 scheduled actions/ASG)."""
    cold_launch_s: int = Field(default=300, ge=30, le=1800)
    """Seconds from launch to serving for a new instance: boot, the bootstrap (user data, then
    the application), and the ALB's health checks. 3-5 minutes is AWS's typical figure for an
    application that installs at boot; measure yours (the group's activity history shows each
    launch's start and end) and set it. Must fit in `fleet.launch_hook_timeout_s`, which holds
    an instance out of service until its bootstrap has finished."""
    warm_launch_s: int = Field(default=60, ge=10, le=600)
    """Seconds from start to serving for a warm-pool instance: it ran its whole bootstrap before
    it was stopped (the launch hook holds it until then), so only the boot, the application's
    start as a service and the health checks remain (~30-60 s, AWS warm pools: "ready to serve
    in seconds rather than minutes"). At most `cold_launch_s`."""
    schedule_slip_s: int = Field(default=120, ge=0, le=900)
    """Scheduled actions can run up to 2 minutes late ("the action might be delayed for up to
    two minutes", Auto Scaling user guide, scheduled scaling)."""
    run_every_minutes: int = Field(default=5, ge=1, le=15)
    """The runner in AWS (a Lambda on an EventBridge Scheduler rate schedule) passes over every
    lever this often: the LCU steps, the warm pool, the room's calendar and the group backstop
    happen within this of their time, with no CI runner. The plan asks for each LCU step this
    much earlier still. 1 is Scheduler's finest rate."""
    log_group_retention_days: LogRetentionDays = 90
    """Days the runner's CloudWatch log keeps each pass's changes and failures."""
    create_ahead_s: int = Field(default=1800, ge=600, le=86_400)
    """`pulumi up` declares only scheduled actions starting more than this after its instant:
    an update takes 10-20 minutes, and AWS refuses a start time already past when the create
    lands. Nearer ones are left to the runner, and actions Pulumi stops declaring are kept in
    AWS (retain_on_delete) until they run."""
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
    """Seconds before a stage needs more LCUs that they are asked for; the runner's interval
    (`run_every_minutes`) is added on top. AWS fulfils most reservations "within a few
    minutes, but can take up to a few hours" (ELB user guide, request LCU reservation); until
    then the ALB keeps scaling on its own and the runner reports the request pending. Longer
    is surer and costs more (the rehearsal's cost column shows how much)."""
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

    @model_validator(mode="after")
    def _launches(self) -> Self:
        if self.warm_launch_s > self.cold_launch_s:
            raise _at(
                "warm_launch_s",
                self.warm_launch_s,
                f"must be <= cold_launch_s ({self.cold_launch_s}): a warm instance skips the "
                "bootstrap a cold one runs",
            )
        return self
