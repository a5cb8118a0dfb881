"""The web group as AWS runs it: desired/min/max, launches that take time, a warm pool, target
tracking on ALBRequestCountPerTarget, scheduled actions that run late, a zone that goes away."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from planning.capacity import max_with_zone_lost
from planning.event_plan import Action
from rehearsal import model


@dataclass
class Tracking:
    """One target tracking policy: the datapoints of its metric that CloudWatch has published
    (value, instances it was measured over), newest last, and its target."""

    target: float
    visible: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=model.SCALE_IN_DATAPOINTS)
    )
    _unpublished: tuple[float, float] | None = None

    def publish(self, value: float, instances: float) -> None:
        """End of a minute: the minute before becomes visible (CloudWatch publishes about a
        minute late); this one waits."""
        if self._unpublished is not None:
            self.visible.append(self._unpublished)
        self._unpublished = (value, max(instances, 1.0))

    def needed(self) -> int:
        """Instances that bring the latest datapoint to the target (proportional)."""
        value, instances = self.visible[-1]
        return math.ceil(value * instances / self.target - 1e-9)

    def wants_out(self) -> bool:
        last = list(self.visible)[-model.SCALE_OUT_DATAPOINTS :]
        return len(last) == model.SCALE_OUT_DATAPOINTS and all(v > self.target for v, _ in last)

    def ready_in(self) -> bool:
        low = model.SCALE_IN_THRESHOLD * self.target
        return len(self.visible) == model.SCALE_IN_DATAPOINTS and all(
            v < low for v, _ in self.visible
        )


@dataclass
class Group:
    """One Auto Scaling group; times are seconds from the start of the night."""

    min_size: int
    max_size: int
    desired: int
    target_per_min: float
    """Target tracking's ALBRequestCountPerTarget target (requests per instance per minute)."""
    warmup_s: int
    demand_target_pct: float | None = None
    """The room-demand policy's target (%), when the stack has a room."""
    demand_period_s: int = 60
    """That policy's period (10 or 30: the inlet publishes it at high resolution)."""
    cpu_target_pct: float | None = None
    """The ASGAverageCPUUtilization policy's target (%)."""
    pool_target: int = 0
    """Warm-pool instances kept stopped and ready (0: no pool)."""
    tracking: bool = True
    serving: deque[list[float]] = field(default_factory=deque)
    """[since, count] batches in service, oldest first."""
    pending: list[list[float]] = field(default_factory=list)
    """[ready_at, count] batches launching into service."""
    pool: float = 0
    pool_pending: list[list[float]] = field(default_factory=list)
    cap: int | None = None
    """Running instances the group can hold (set when a zone is lost)."""
    requests: Tracking = field(init=False)
    """ALBRequestCountPerTarget: requests per target per minute."""
    demand: Tracking | None = field(init=False)
    cpu: Tracking | None = field(init=False)
    _demand_sum: float = 0.0
    _demand_steps: int = 0

    def __post_init__(self) -> None:
        self.requests = Tracking(self.target_per_min)
        target = self.demand_target_pct
        self.demand = Tracking(target) if target is not None else None
        self.cpu = Tracking(self.cpu_target_pct) if self.cpu_target_pct is not None else None

    @property
    def in_service(self) -> float:
        return sum(b[1] for b in self.serving)

    def serving_share(self, now: float, slow_start_s: int) -> float:
        """Instances' worth of requests the ALB routes to the group: with slow start, a new
        target's share rises linearly from 0 over `slow_start_s` (Elastic Load Balancing, target
        groups, slow start mode); without, every in-service instance takes a full share."""
        if slow_start_s <= 0:
            return self.in_service
        return sum(b[1] * min(1.0, max(now - b[0], 0.0) / slow_start_s) for b in self.serving)

    @property
    def launching(self) -> float:
        return sum(b[1] for b in self.pending)

    def start_at(self, count: int) -> None:
        """The night starts with `count` in service and the pool full."""
        self.serving.append([-1e9, float(count)])
        self.pool = float(self.pool_target)

    def scheduled(self, action: Action) -> None:
        """A scheduled action: min and max; desired is brought within them (none sets it)."""
        self.min_size, self.max_size = action.min_size, action.max_size
        self.desired = min(max(self.desired, self.min_size), self.max_size)

    def lose_zone(self, zones: int) -> None:
        """One of `zones` equal zones goes: its instances (serving, launching, pooled) with it;
        the group holds at most what capacity.max_with_zone_lost allows from then on."""
        keep = (zones - 1) / zones
        for batch in (*self.serving, *self.pending, *self.pool_pending):
            batch[1] *= keep
        self.pool *= keep
        self.cap = max_with_zone_lost(self.max_size, zones)

    def publish(self, requests_last_minute: float, cpu_pct: float | None = None) -> None:
        """End of a minute: the requests and CPU policies' metrics for it (published a minute
        late)."""
        targets = self.in_service
        self.requests.publish(requests_last_minute / max(targets, 1.0), targets)
        if self.cpu is not None and cpu_pct is not None:
            self.cpu.publish(cpu_pct, targets)

    def publish_demand(self, demand_pct: float, step_s: float) -> None:
        """The inlet's demand for one of its steps: the room-demand policy's datapoint is the
        average over its period (visible a period later)."""
        if self.demand is None:
            return
        self._demand_sum += demand_pct
        self._demand_steps += 1
        if self._demand_steps * step_s >= self.demand_period_s - 1e-9:
            self.demand.publish(self._demand_sum / self._demand_steps, self.in_service)
            self._demand_sum, self._demand_steps = 0.0, 0

    def track(self, now: float) -> None:
        """Target tracking: out to the largest capacity any policy asks for once it has
        SCALE_OUT_DATAPOINTS above its target; in only when every policy is ready to (15 below
        90 % of its target), to the largest they ask for, and never while instances warm up."""
        if not self.tracking:
            return
        declared = [p for p in (self.requests, self.demand, self.cpu) if p is not None]
        policies = [p for p in declared if p.visible]
        if not policies:
            return
        out = [p.needed() for p in policies if p.wants_out()]
        if out and max(out) > self.desired:
            self.desired = max(out)
        elif (
            not out
            and len(policies) == len(declared)
            and all(p.ready_in() for p in policies)
            and not any(now - b[0] < self.warmup_s for b in self.serving)
        ):
            self.desired = min(self.desired, max(p.needed() for p in policies))
        self.desired = min(max(self.desired, self.min_size), self.max_size)

    def reconcile(self, now: float) -> None:
        """Bring running instances to desired (launch from the pool first, then cold; terminate
        the newest first) and refill the pool; move launches that are ready into service."""
        for batch in [b for b in self.pending if b[0] <= now]:
            self.pending.remove(batch)
            self.serving.append(batch)
        for batch in [b for b in self.pool_pending if b[0] <= now]:
            self.pool_pending.remove(batch)
            self.pool += batch[1]
        want = min(self.desired, self.cap) if self.cap is not None else self.desired
        running = self.in_service + self.launching
        if want > running + 1e-9:
            need = want - running
            warm = min(need, self.pool)
            self.pool -= warm
            self._launch(self.pending, now, warm, model.WARM_LAUNCH_S)
            self._launch(self.pending, now, need - warm, model.COLD_LAUNCH_S)
        elif want < running - 1e-9:
            self._terminate(running - want)
        room = self.max_size - (self.in_service + self.launching) - self.pool
        short = self.pool_target - self.pool - sum(b[1] for b in self.pool_pending)
        if short > 1e-9 and room > 1e-9:
            self._launch(self.pool_pending, now, min(short, room), model.COLD_LAUNCH_S)

    @staticmethod
    def _launch(into: list[list[float]], now: float, count: float, span: tuple[int, int]) -> None:
        """`count` instances, ready evenly across `span` seconds (five batches at most): the
        last batch at the top of the range."""
        if count <= 1e-9:
            return
        batches = max(1, min(5, math.ceil(count)))
        low, high = span
        for i in range(batches):
            into.append([now + low + (high - low) * (i + 1) / batches, count / batches])

    def _terminate(self, count: float) -> None:
        for source in (self.pending, self.serving):
            while count > 1e-9 and source:
                batch = source[-1]
                taken = min(batch[1], count)
                batch[1] -= taken
                count -= taken
                if batch[1] <= 1e-9:
                    source.pop()
