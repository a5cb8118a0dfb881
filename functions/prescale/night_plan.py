"""The night plan: every lever's planned level, as plain data the pre-scale engine acts on.

`planning.event_plan.night_plan` builds it from the stack's settings and event calendar. The
stack hands it to the runner in AWS as its schedule's input (JSON, `to_document`); the CI job
builds its own at its own instant. Python standard library only: this package deploys on its
own (functions/ import nothing of the project's), and the job and the rehearsal import it.

Times are aware UTC datetimes; in a document, `YYYY-MM-DDThh:mm:ssZ` strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

OWNED_PREFIX = "floodgate-"
"""Scheduled actions whose names start with this are Floodgate's; it never touches others."""
VERSION = 1
MAX_DOCUMENT_BYTES = 256 * 1024
"""The plan travels as the runner schedule's input to an asynchronous Lambda invocation.
Scheduler documents no input limit of its own; Lambda's asynchronous payload limit was 256 KB
before it became 1 MB (Invoke API reference), so the plan stays within the smaller figure."""
ROOM_MODES = ("armed", "queue", "off")


class NightPlanError(ValueError):
    """A plan document the engine cannot act on; the message names the key and the value."""


@dataclass(frozen=True)
class Step:
    """A planned level (`value`) from `at` until the next step: MinSize or reserved LCUs."""

    at: datetime
    value: int


@dataclass(frozen=True)
class Need:
    """What must be in service while a stage runs (`start` to `end`), not asked for ahead."""

    start: datetime
    end: datetime
    instances: int
    """In-service instances that carry the stage's users with one zone lost (within max)."""
    lcus: int
    """LCUs the stage's users use, plus the margin, never below the standing level."""


@dataclass(frozen=True)
class Action:
    """One owned scheduled action as planned: the job and the runner put it, AWS runs it."""

    name: str
    start: datetime
    time_zone: str
    min_size: int
    max_size: int
    restore: bool
    """The last action of an event: it hands the floor back when the window closes."""


@dataclass(frozen=True)
class EventLevers:
    """One event's levers: MinSize steps, LCU steps, warm pool, room mode, and their window."""

    key: str
    time_zone: str
    start: datetime
    """The event itself starts (the crowd arrives); `raise_at` comes before it."""
    raise_at: datetime
    """The window opens: the first MinSize raise (or start less the lead, if earlier)."""
    restore_at: datetime
    """End + cooldown: the restore action's time."""
    slip: timedelta
    """How late AWS may run a scheduled action: the window holds until restore + slip."""
    max_size: int
    min_steps: tuple[Step, ...]
    """MinSize from the first raise until back to the fleet's min (the restore)."""
    lcu_steps: tuple[Step, ...]
    """The reservation asked for, each step ahead of the stage that needs it."""
    needs: tuple[Need, ...]
    warm_pool: int
    prepared: int
    """MaxGroupPreparedCapacity that keeps `warm_pool` in the pool whatever desired is."""
    room: str
    baseline_rpm: int = 0
    """The load balancer's requests a minute at the stack's baseline (follow.night_share)."""
    forecast: tuple[Step, ...] = ()
    """The forecast: the load balancer's requests a minute at sample times from the raise to
    the restore (follow.py); () follows nothing: the plan as it stands."""

    def action_name(self, index: int) -> str:
        """`floodgate-<key>-stage-<n>`, the last one `floodgate-<key>-restore`."""
        last = index == len(self.min_steps) - 1
        return f"{OWNED_PREFIX}{self.key}-{'restore' if last else f'stage-{index + 1}'}"

    def actions(self) -> list[Action]:
        """One action per MinSize step, past ones included; the last is the restore."""
        last = len(self.min_steps) - 1
        return [
            Action(self.action_name(i), s.at, self.time_zone, s.value, self.max_size, i == last)
            for i, s in enumerate(self.min_steps)
        ]

    def min_size_at(self, moment: datetime) -> int | None:
        """The planned MinSize at `moment`; None outside the raise..restore steps."""
        return _level_at(self.min_steps, self.restore_at, moment)

    def min_size_since(self, moment: datetime, window: timedelta) -> int | None:
        """The highest MinSize the plan set in (`moment` - `window`, `moment`]: what AWS may
        still be applying, since it runs an action up to `slip` late."""
        levels = [self.min_size_at(moment - window), self.min_size_at(moment)] + [
            s.value for s in self.min_steps if moment - window < s.at <= moment
        ]
        known = [level for level in levels if level is not None]
        return max(known) if known else None

    def reservation_at(self, moment: datetime) -> int | None:
        """The planned LCU reservation at `moment`; None when the plan asks for nothing."""
        return _level_at(self.lcu_steps, self.restore_at, moment)

    def need_at(self, moment: datetime) -> Need | None:
        """The stage running at `moment`, if any."""
        return next((n for n in self.needs if n.start <= moment < n.end), None)

    def active(self, moment: datetime) -> bool:
        """Inside the window where capacity must not be lowered: raise_at..restore_at."""
        return self.raise_at <= moment < self.restore_at

    def holding(self, moment: datetime) -> bool:
        """Capacity raised for this event must not be lowered: from the raise until AWS has run
        the restore (which may be `slip` late): the lead, the event and the cooldown."""
        return self.raise_at <= moment and not self.over(moment)

    def over(self, moment: datetime) -> bool:
        """AWS has run the restore (its time and the slip have passed): nothing left to do."""
        return moment >= self.restore_at + self.slip


@dataclass(frozen=True)
class NightPlan:
    """Every lever of a stack for the events inside its horizon, soonest first."""

    stack: str
    horizon_days: int
    fleet_min: int
    fleet_max: int
    standing_lcus: int
    """The reservation kept outside events (0: none)."""
    warm_pool: int | None
    """The pool's size outside events; None: the fleet has no warm pool."""
    prepared: int | None
    pool_state: str | None
    events: tuple[EventLevers, ...]

    def to_document(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "stack": self.stack,
            "horizon_days": self.horizon_days,
            "fleet": {"min_size": self.fleet_min, "max_size": self.fleet_max},
            "standing_lcus": self.standing_lcus,
            "warm_pool": None
            if self.warm_pool is None
            else {"min_size": self.warm_pool, "prepared": self.prepared, "state": self.pool_state},
            "events": [_event_document(e) for e in self.events],
        }

    def to_json(self) -> str:
        """Compact, key-sorted JSON: the same plan is the same text (no churn in Pulumi)."""
        return json.dumps(self.to_document(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_document(cls, document: object) -> NightPlan:
        """Parse and check a plan document; NightPlanError names the key and the value."""
        doc = _mapping(document, "plan")
        if doc.get("version") != VERSION:
            raise NightPlanError(f"plan.version: {doc.get('version')!r} is not {VERSION}")
        fleet = _mapping(doc.get("fleet"), "plan.fleet")
        pool = doc.get("warm_pool")
        pool_doc = None if pool is None else _mapping(pool, "plan.warm_pool")
        events = doc.get("events")
        if not isinstance(events, list):
            raise NightPlanError(f"plan.events: must be a list (got {events!r})")
        plan = cls(
            stack=_text(doc.get("stack"), "plan.stack"),
            horizon_days=_count(doc.get("horizon_days"), "plan.horizon_days"),
            fleet_min=_count(fleet.get("min_size"), "plan.fleet.min_size"),
            fleet_max=_count(fleet.get("max_size"), "plan.fleet.max_size"),
            standing_lcus=_count(doc.get("standing_lcus"), "plan.standing_lcus"),
            warm_pool=None
            if pool_doc is None
            else _count(pool_doc.get("min_size"), "plan.warm_pool.min_size"),
            prepared=None
            if pool_doc is None
            else _count(pool_doc.get("prepared"), "plan.warm_pool.prepared"),
            pool_state=None
            if pool_doc is None
            else _text(pool_doc.get("state"), "plan.warm_pool.state"),
            events=tuple(_event(e, f"plan.events[{i}]") for i, e in enumerate(events)),
        )
        if [e.raise_at for e in plan.events] != sorted(e.raise_at for e in plan.events):
            raise NightPlanError("plan.events: must be soonest first")
        return plan

    @classmethod
    def from_json(cls, text: str) -> NightPlan:
        try:
            return cls.from_document(json.loads(text))
        except json.JSONDecodeError as exc:
            raise NightPlanError(f"plan: not JSON ({exc})") from None

    def current(self, moment: datetime) -> list[EventLevers]:
        """Events not over at `moment` (the restore run), soonest first."""
        return [e for e in self.events if not e.over(moment)]


def _level_at(steps: tuple[Step, ...], until: datetime, moment: datetime) -> int | None:
    if not steps or moment < steps[0].at or moment >= until:
        return None
    return [s.value for s in steps if s.at <= moment][-1]


def timestamp(moment: datetime) -> str:
    """`YYYY-MM-DDThh:mm:ssZ` in UTC: the form scheduled actions and the room table use."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_document(e: EventLevers) -> dict[str, Any]:
    return {
        "key": e.key,
        "time_zone": e.time_zone,
        "start": timestamp(e.start),
        "raise_at": timestamp(e.raise_at),
        "restore_at": timestamp(e.restore_at),
        "slip_s": int(e.slip.total_seconds()),
        "max_size": e.max_size,
        "min_steps": [[timestamp(s.at), s.value] for s in e.min_steps],
        "lcu_steps": [[timestamp(s.at), s.value] for s in e.lcu_steps],
        "needs": [[timestamp(n.start), timestamp(n.end), n.instances, n.lcus] for n in e.needs],
        "warm_pool": e.warm_pool,
        "prepared": e.prepared,
        "room": e.room,
        "baseline_rpm": e.baseline_rpm,
        "forecast": [[timestamp(s.at), s.value] for s in e.forecast],
    }


def _event(value: object, where: str) -> EventLevers:
    doc = _mapping(value, where)
    room = doc.get("room")
    if room not in ROOM_MODES:
        raise NightPlanError(f"{where}.room: {room!r} is not one of {', '.join(ROOM_MODES)}")
    needs = []
    for i, need in enumerate(_list(doc.get("needs"), f"{where}.needs")):
        at = f"{where}.needs[{i}]"
        if not isinstance(need, list) or len(need) != 4:
            raise NightPlanError(f"{at}: must be [start, end, instances, lcus] (got {need!r})")
        needs.append(
            Need(_time(need[0], at), _time(need[1], at), _count(need[2], at), _count(need[3], at))
        )
    return EventLevers(
        key=_text(doc.get("key"), f"{where}.key"),
        time_zone=_text(doc.get("time_zone"), f"{where}.time_zone"),
        start=_time(doc.get("start"), f"{where}.start"),
        raise_at=_time(doc.get("raise_at"), f"{where}.raise_at"),
        restore_at=_time(doc.get("restore_at"), f"{where}.restore_at"),
        slip=timedelta(seconds=_count(doc.get("slip_s"), f"{where}.slip_s")),
        max_size=_count(doc.get("max_size"), f"{where}.max_size"),
        min_steps=_steps(doc.get("min_steps"), f"{where}.min_steps"),
        lcu_steps=_steps(doc.get("lcu_steps"), f"{where}.lcu_steps"),
        needs=tuple(needs),
        warm_pool=_count(doc.get("warm_pool"), f"{where}.warm_pool"),
        prepared=_count(doc.get("prepared"), f"{where}.prepared"),
        room=str(room),
        baseline_rpm=_count(doc.get("baseline_rpm", 0), f"{where}.baseline_rpm"),
        forecast=_steps(doc.get("forecast", []), f"{where}.forecast"),
    )


def _steps(value: object, where: str) -> tuple[Step, ...]:
    steps = []
    for i, step in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        if not isinstance(step, list) or len(step) != 2:
            raise NightPlanError(f"{at}: must be [time, value] (got {step!r})")
        steps.append(Step(_time(step[0], at), _count(step[1], at)))
    if [s.at for s in steps] != sorted(s.at for s in steps):
        raise NightPlanError(f"{where}: steps must be in time order")
    return tuple(steps)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NightPlanError(f"{where}: must be an object (got {type(value).__name__})")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise NightPlanError(f"{where}: must be a list (got {value!r})")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise NightPlanError(f"{where}: must be a non-empty string (got {value!r})")
    return value


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NightPlanError(f"{where}: must be a whole number >= 0 (got {value!r})")
    return value


def _time(value: object, where: str) -> datetime:
    try:
        moment = datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise NightPlanError(f"{where}: {value!r} is not YYYY-MM-DDThh:mm:ssZ") from None
    return moment.replace(tzinfo=UTC)
