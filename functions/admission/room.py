"""The waiting room's state in DynamoDB: places, the admission cursor, sessions, keys.

Python standard library + boto3 only (plus awscrt in a layer for the KeyValueStore's SigV4A).

Places without a hot key
------------------------
A single counter item takes at most 1,000 writes/s (DynamoDB's per-partition write limit), so
20,000 joins/s cannot share one. A join instead does four writes, each to a different key:

* ``joins#<address>#<minute>``: an atomic ADD counting the new places the viewer's address took
  this minute; past ``joins_per_address_per_min`` the join is refused (429) before it takes a
  place, so one client cannot fill the head of the line. Its load is one address's join rate.

* ``count#<second>#<shard>``: an atomic ADD that returns the visitor's sequence number ``seq``
  in that (second, shard) cell; ``shard`` is chosen at random among ``SHARDS`` = 32. At 20,000
  joins/s each counter item takes 20,000 / 32 = **625 writes/s** (1,000 max), and the 32 items of
  one second hash to different partitions. A new second brings 32 new keys, so no item stays hot.
* ``visitor#<id>`` (conditional put, makes join idempotent) and ``place#<order>``: random or
  unique keys, spread evenly by DynamoDB's hash. 20,000 joins/s x 4 = **80,000 writes/s** in
  total, i.e. at least 80 partitions: the table is declared with warm throughput for that, since
  a new on-demand table starts at 4,000 writes/s.

A visitor's ``order = (second * SHARDS + shard) * SEQ_SPAN + seq - 1``: unique, and FIFO to the
second (everyone who joined in an earlier second is ahead of everyone who joined later; within a
second, shard 0 goes first). Five seconds after a second ends (``SEAL_GRACE_S``) the inlet
*seals* it: reads its 32 counters and, if anyone joined in it, writes ``tally#<second>`` =
places before this second plus the per-shard counts, so ``place = before + sum(shards[:shard])
+ seq`` is a dense 1, 2, 3... line and "people ahead" is a subtraction. Sealing reads 1,920
counters a minute (20 BatchGetItem calls) whatever the join rate, and writes one tally per
second that had joins; a sealed second without a tally had none.

A join that fails half-way leaves a counted sequence with no ``place#`` item: a hole, passed
by the inlet without admitting anyone. A visitor whose place was skipped (stopped polling) or
lost (a join slower than the seal grace) is put at the back on their next poll.

The one item every join and poll reads is the room item (state, cursor, period, pace): read by
each, prod's design point (2,834 joins/s + 5,667 polls/s) would put ~4,250 read units/s on its
partition, past DynamoDB's 3,000. Joins and polls read it through ``Room.shared_state``, which
a container reuses for ``room_cache_s`` (1 s): at most one read a second per container (331 at
prod's design point). A state change reaches a page at most that late, and its next poll.

Sessions and capacity
---------------------
The inlet admits ``min(capacity x ceiling - active, max_admit_per_s * step_s)`` per step, where
capacity is in-service instances x ``sessions_per_instance``, the ceiling is the share of it the
fleet's health shows it serves (inlet.regulate), and ``active`` is the larger of (a) tokens
collected over the last three ``session_s``, each by exp(-age / session_s), plus
admitted-but-not-yet-collected within ``show_s`` (later ones are no-shows and stop counting) and
(b) the people of the latest published minute's origin requests (over
``requests_per_instance_per_s``), less those expected to have left since, plus every token
collected since that minute began, so people already inside without a token are counted
(inlet.count_sessions, inlet.free_capacity). Collections are counted on
``collected#<minute>#<shard>`` (COLLECT_SHARDS). While open and metering, the join admits
newcomers at once within ``capacity x ceiling - active`` (no rate cap) for the step
(Room.meter, counters ``metered#<step>#<shard>``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal, Protocol

from . import tokens

SHARDS = 32
SEQ_SPAN = 1_000_000
ITEM_WRITES_PER_S = 1_000
"""One DynamoDB item takes at most 1,000 write units a second (one partition's limit; Amazon
DynamoDB Developer Guide, "Best practices for designing and using partition keys")."""
COUNTER_SHARDS = 20
"""Items a per-minute or per-step counter is split over: 20,000 increments a second, the
room's design (`admission.design_joins_per_s`, at most this x ITEM_WRITES_PER_S): every metered
join counts once on the step's allowance and once as a token collected."""
COLLECT_SHARDS = COUNTER_SHARDS
METER_STALE_STEPS = 3
"""An allowance this many inlet steps old means the inlet stopped: metering admits everyone."""
METER_SHARDS, METER_TRIES = COUNTER_SHARDS, 3
"""Counters a step's allowance is split over (metered#<step>#<shard>), and how many of them a
join tries (a refused join costs up to METER_TRIES writes, on counters already full)."""
SEAL_GRACE_S = 5
SEAL_MAX_SECONDS = 600
"""Seconds sealed per step at most (6 BatchGetItem calls per 100 s of history)."""
SEEN_WRITE_S = 30
"""A poll refreshes `seen_at` only when the stored value is older than this (write budget)."""
RATE_WINDOW_S = 300
ROOM_KEY = {"pk": "room"}
KEYS_CACHE_S = 60
KEY_PUBLISH_S = 300
"""A rotated-in key is in the KeyValueStore this long before anything signs with it or the
gate's room entry names it: the gate never meets a current key the store lacks (which fails
open). AWS states no propagation time for KeyValueStore writes: five minutes is an assumption,
and `gate-fail-open` counts any lag longer than it."""
BATCH_GET_MAX = 100  # DynamoDB BatchGetItem limit
REVOKED_SHARDS = 16
"""Revocations live in their own items, `revoked#<0-15>` (a map visitor -> until, epoch s),
chosen by a hash of the visitor. An entry takes ~40 bytes, so each item holds ~9,000 before
DynamoDB's 400 KB item limit: 140,000 in all, past the KeyValueStore's 5 MB that the edge reads
them from. Kept in the room item, 9,500 of them stopped the room from being saved."""

State = Literal["open", "queue", "closed"]
STATES: tuple[State, ...] = ("open", "queue", "closed")


class RoomError(Exception):
    """A request the room refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class KeyValueStore(Protocol):
    """What the room needs of the CloudFront KeyValueStore: read everything, apply a diff."""

    def items(self) -> dict[str, str]: ...

    def apply(self, puts: dict[str, str], deletes: list[str]) -> None: ...


ORIGIN_HEADER = "X-Floodgate-Origin-Verify"
"""The header CloudFront adds on its way to the queue API and the ALB: a request without one of
the stack's values did not come through the distribution and its WAF."""


FAULT_LOG = "floodgate-queue fault"
"""How the handlers log a join or poll that failed unexpectedly (answered 429, never 5xx); a
metric filter on the join and status logs counts it (components/admission.py)."""


class ConfigError(ValueError):
    """The Lambda's environment does not describe a room; raised at cold start."""


def _rule(kind: type, low: float | None = None, high: float | None = None,
          empty: bool = False) -> Any:  # fmt: skip
    """A Config field with no default: its `FG_*` variable must be set, of `kind`, and (numbers)
    within [low, high] or (text) non-empty unless `empty`."""
    return field(metadata={"kind": kind, "low": low, "high": high, "empty": empty})


@dataclass(frozen=True)
class Config:
    """The room's tunables. No field has a default: the Lambda reads every one from its `FG_*`
    environment (components/admission.py, from planning.capacity.room_tunables), and a missing,
    misspelt or out-of-range variable stops the function at cold start (`from_env`)."""

    table: str = _rule(str)
    room_id: str = _rule(str)
    secret_id: str = _rule(str)
    kvs_arn: str = _rule(str)
    sessions_per_instance: int = _rule(int, 1)
    requests_per_instance_per_s: float = _rule(float, 0.001)
    max_admit_per_s: int = _rule(int, 1)
    step_s: int = _rule(int, 1, 60)
    session_s: int = _rule(int, 60)
    session_max_s: int = _rule(int, 180)
    """A session's absolute life from its issue (the gate reads it from the KeyValueStore)."""
    carry_s: int = _rule(int, 60, 3600)
    """How long after queueing began a session alone passes what is not a page load."""
    carries_per_network: int = _rule(int, 1)
    """Sessions of one network carried in per queueing period (Room.carry)."""
    token_ttl_s: int = _rule(int, 60)
    show_s: int = _rule(int, 1)
    abandon_after_s: int = _rule(int, 1)
    queue_at_load: float = _rule(float, 0.01, 1.0)
    """A fraction of requests_per_instance_per_s (0.85), never a percentage."""
    open_below_load: float = _rule(float, 0.0, 1.0)
    """A fraction, below queue_at_load."""
    calm_s: int = _rule(int, 0)
    drain_s: int = _rule(int, 0)
    """A queueing room may open once its line would be let in within this many seconds."""
    polls_per_s: float = _rule(float, 0.0)
    """Polls a second the status function is sized for: the page's interval keeps the line
    under it (planning.capacity.queue_api_design; 0: no limit)."""
    demand_floor_pct: float = _rule(float, 0.0, 100.0)
    """The scaling target (%): the demand metric never reads below it while people wait."""
    asg_name: str = _rule(str)
    target_group: str = _rule(str)
    """CloudWatch dimension `targetgroup/<name>/<id>` for RequestCountPerTarget."""
    load_balancer: str = _rule(str)
    """CloudWatch dimension `app/<name>/<id>` of the load balancer (its 5xx, 4xx, rejected
    connections and response time)."""
    target_5xx_pct: float = _rule(float, 0.0, 100.0)
    """Target 5xx per request (%) in a minute above which the fleet is not healthy (the
    alarms' alarms.target_5xx_rate_pct)."""
    elb_5xx_pct: float = _rule(float, 0.0, 100.0)
    """The same for the load balancer's own 5xx and 4xx (alarms.alb_5xx_rate_pct)."""
    alb_scaling_pct_per_5_min: float = _rule(float, 0.001, 1000.0)
    """How fast the ALB scales on its own (% every 5 minutes): the room admits no faster
    (load_balancer.scaling_pct_per_5_min)."""
    response_p95_s: float = _rule(float, 0.001)
    """p95 TargetResponseTime (s) above which the fleet is not healthy
    (alarms.response_time_p95_s)."""
    capacity_cpu_pct: float = _rule(float, 1.0, 100.0)
    """The instances' CPU (%) at requests_per_instance_per_s: the room reads what they serve
    from their CPU (inlet.next_ceiling)."""
    ceiling_floor: float = _rule(float, 0.01, 1.0)
    """The lowest share of the derived capacity the room admits to, however sick the fleet
    reads: the line keeps moving as people inside leave."""
    alarm_names: str = _rule(str, empty=True)
    """Comma-separated origin 5xx alarms; admissions pause while any is in ALARM."""
    metric_namespace: str = _rule(str)
    demand_metric: str = _rule(str)
    """The metric the web group's room-demand policy scales on (components/admission.py)."""
    meter: int = _rule(int, 0, 1)
    """1: while open, the gate sends newcomers' page loads through the join, which admits them
    at once within each step's free capacity (Room.meter)."""
    demand_period_s: int = _rule(int, 10, 60)
    """That policy's period: under 60, the metric is published at high resolution."""
    origin_secret_id: str = _rule(str)
    """The secret holding the values CloudFront may send in ORIGIN_HEADER, comma-separated (two
    slots, so a rotation never refuses an edge location still sending the old one). A secret,
    not an environment variable: the environment shows in the console and in every preview."""
    room_cache_s: float = _rule(float, 0.0, 5.0)
    """Seconds a container reuses the room item for joins and polls (0: read it every time):
    every request reading it would make it a hot key past DynamoDB's 3,000 read units/s per
    partition (planning.capacity.room_item_reads)."""
    portal_origins: str = _rule(str, empty=True)
    """Comma-separated `https://<name>` of the portal (edge.domain_names): a join from a browser
    without Fetch Metadata must name one of them in `Origin` (handlers.cross_site)."""
    joins_per_address_per_min: int = _rule(int, 1)
    """New places one viewer address may take a minute (the handler's own limit; WAF's
    rate rule on /queue/join is the first line)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Config from `FG_<FIELD>` variables; every problem is reported at once, naming the
        variable, its value and what is allowed. Unknown `FG_*` names (typos) are refused."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        names = {f"FG_{f.name.upper()}": f for f in fields(cls)}
        problems += [f"{k}: not a room setting (misspelt?)"
                     for k in sorted(env) if k.startswith("FG_") and k not in names]  # fmt: skip
        for variable, f in names.items():
            raw = env.get(variable)
            if raw is None:
                problems.append(f"{variable}: missing")
                continue
            try:
                values[f.name] = _parse(raw, **f.metadata)
            except ValueError as error:
                problems.append(f"{variable}={raw!r}: {error}")
        if not problems and not tokens.valid_id(values["room_id"]):
            problems.append(f"FG_ROOM_ID={values['room_id']!r}: must match {tokens.ID_PATTERN}")
        if not problems and values["open_below_load"] >= values["queue_at_load"]:
            problems.append("FG_OPEN_BELOW_LOAD: must be below FG_QUEUE_AT_LOAD")
        if problems:
            raise ConfigError("the room's environment is invalid: " + "; ".join(problems))
        return cls(**values)


def _parse(raw: str, kind: type, low: float | None, high: float | None, empty: bool) -> Any:
    """One `FG_*` value as `kind`, within its bounds (ValueError says what is allowed)."""
    if kind is str:
        if not raw and not empty:
            raise ValueError("must not be empty")
        return raw
    try:
        value = int(raw) if kind is int else float(raw)
    except ValueError:
        raise ValueError(f"must be {'an integer' if kind is int else 'a number'}") from None
    if (
        not math.isfinite(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        raise ValueError(f"must be in [{low}, {'∞' if high is None else high}]")
    return value


@dataclass
class Room:
    """The room item plus the clients the handlers share; one per Lambda container."""

    config: Config
    dynamodb: Any
    """boto3 DynamoDB *resource*."""
    secrets: Any = None
    autoscaling: Any = None
    cloudwatch: Any = None
    kvs: KeyValueStore | None = None
    _keys: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)
    _origin: tuple[float, list[str]] | None = field(default=None, repr=False)
    _room: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)

    @cached_property
    def table(self) -> Any:
        """The boto3 Table, made once: building one costs ~3 ms of CPU (resource factory)."""
        return self.dynamodb.Table(self.config.table)

    # -- reads ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The room item, with defaults for a room that has never run."""
        return _room_defaults(self.table.get_item(Key=ROOM_KEY).get("Item") or {})

    def shared_state(self, now: float) -> dict[str, Any]:
        """The room item as joins and polls see it: this container's copy while it is younger
        than `room_cache_s`, else read (eventually consistent, as before). The inlet and admin
        read `state()`, fresh, because they write it back."""
        if self._room_fresh(now):
            return self._shared_room
        return self._keep_room(now, self.table.get_item(Key=ROOM_KEY).get("Item") or {})

    @property
    def _shared_room(self) -> dict[str, Any]:
        assert self._room is not None
        return self._room[1]

    def _keep_room(self, now: float, item: dict[str, Any]) -> dict[str, Any]:
        self._room = (now, _room_defaults(item))
        return self._room[1]

    def _room_fresh(self, now: float) -> bool:
        return self._room is not None and 0 <= now - self._room[0] < self.config.room_cache_s

    def save(self, room: dict[str, Any]) -> None:
        """Write the room item, only if nobody else wrote it since `room` was read."""
        version = int(room["version"])
        self.table.put_item(
            Item=_dynamo({**room, "pk": ROOM_KEY["pk"], "version": version + 1}),
            ConditionExpression="attribute_not_exists(pk) OR version = :v",
            ExpressionAttributeValues={":v": version},
        )

    def signing_keys(self, now: float, fresh: bool = False) -> dict[str, Any]:
        """`{"current": kid, "keys": {kid: {"key": hex, "retire_at": epoch|None}}, "next":
        {"kid": kid, "at": epoch}|None}`, cached for KEYS_CACHE_S unless `fresh` (what writes
        the edge's keys must never act on a copy older than an emergency rotation): the secret
        as of `now`, a `next` key whose time has come already current (admin.rotate publishes a
        key before it signs)."""
        if fresh or self._keys is None or now - self._keys[0] > KEYS_CACHE_S:
            raw = self.secrets.get_secret_value(SecretId=self.config.secret_id)["SecretString"]
            self._keys = (now, _parse_keys(raw))
        keys = self._keys[1]
        upcoming = keys.get("next")
        if upcoming and now >= float(upcoming["at"]):
            return {**keys, "current": upcoming["kid"], "next": None}
        return keys

    def origin_secrets(self, now: float) -> list[str]:
        """The values CloudFront may send in ORIGIN_HEADER (empty ones dropped), cached."""
        if self._origin is None or now - self._origin[0] > KEYS_CACHE_S:
            raw = self.secrets.get_secret_value(SecretId=self.config.origin_secret_id)
            self._origin = (now, [v for v in raw["SecretString"].split(",") if v])
        return self._origin[1]

    # -- revocations --------------------------------------------------------------------------

    def revocations(self, now: float) -> dict[str, int]:
        """Live revocations, visitor -> until (epoch s)."""
        shards = self._batch_get([f"revoked#{n}" for n in range(REVOKED_SHARDS)], consistent=True)
        return {
            visitor: int(until)
            for item in shards.values()
            for visitor, until in (item.get("revoked") or {}).items()
            if float(until) > now
        }

    def revoke(self, visitor: str, until: int) -> None:
        """Refuse `visitor` at the edge until `until` (one entry in its shard's map)."""
        key = {"pk": f"revoked#{zlib.crc32(visitor.encode()) % REVOKED_SHARDS}"}
        failed = self.dynamodb.meta.client.exceptions.ConditionalCheckFailedException
        for _ in range(3):
            try:
                self.table.update_item(
                    Key=key,
                    UpdateExpression="SET revoked.#v = :until",
                    ConditionExpression="attribute_exists(revoked)",
                    ExpressionAttributeNames={"#v": visitor},
                    ExpressionAttributeValues={":until": until},
                )
                return
            except failed:  # the shard's first revocation: create its map
                try:
                    self.table.put_item(
                        Item={**key, "revoked": {visitor: until}},
                        ConditionExpression="attribute_not_exists(pk)",
                    )
                    return
                except failed:
                    continue  # created meanwhile: set the entry
        raise RoomError(503, "revoke", f"could not record the revocation in {key['pk']}")

    def drop_expired_revocations(self, now: float) -> int:
        """Remove revocations whose time has passed, each only if nobody renewed it meanwhile;
        returns how many. Moves any left in the room item by earlier versions to the shards."""
        room = self.state()
        legacy = room.pop("revoked", None) or {}
        for visitor, until in legacy.items():
            if float(until) > now:
                self.revoke(visitor, int(until))
        if legacy:
            self.save(room)
        dropped = 0
        shards = self._batch_get([f"revoked#{n}" for n in range(REVOKED_SHARDS)], consistent=True)
        for pk, item in shards.items():
            expired = [(v, u) for v, u in (item.get("revoked") or {}).items() if float(u) <= now]
            for start in range(0, len(expired), 50):  # a 4 KB expression holds 50 comfortably
                chunk = expired[start : start + 50]
                names = {f"#v{i}": v for i, (v, _) in enumerate(chunk)}
                values = {f":u{i}": u for i, (_, u) in enumerate(chunk)}
                try:
                    self.table.update_item(
                        Key={"pk": pk},
                        UpdateExpression="REMOVE " + ", ".join(f"revoked.{n}" for n in names),
                        ConditionExpression=" AND ".join(
                            f"revoked.#v{i} = :u{i}" for i in range(len(chunk))
                        ),
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                    )
                    dropped += len(chunk)
                except self.dynamodb.meta.client.exceptions.ConditionalCheckFailedException:
                    pass  # one was renewed: the next run drops the rest
        return dropped

    # -- join and status --------------------------------------------------------------------

    def join(
        self, visitor: str | None, now: float, address: str | None = None,
        session: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Give `visitor` a place; joining twice returns the same place. Visitor ids are minted
        here: an id the room does not know (a client's own choice) gets a new one. `address`
        (the viewer's, from CloudFront) may take `joins_per_address_per_min` new places a
        minute; None (no address known) is not limited. A `session` the gate issued before
        queueing began is carried in instead (`carry`)."""
        room = self.shared_state(now)
        if room["state"] == "open" and self.config.meter and not room.get("pinned"):
            return self.meter(room, now, address)
        if room["state"] != "queue":
            return {"state": room["state"]}
        if session is not None and address is not None:
            carried = self.carry(session, address, room, now)
            if carried is not None:
                return carried
        if visitor is not None and tokens.valid_id(visitor):
            found = self.table.get_item(Key={"pk": f"visitor#{visitor}"}).get("Item")
            if found is not None:
                return self.status(visitor, now)
        if address is not None:
            self._count_join(address, now)
        return self._new_place(secrets.token_urlsafe(16), room, now, previous=None)

    def carry(
        self, session: str, address: str, room: dict[str, Any], now: float
    ) -> dict[str, Any] | None:
        """Admit at once someone who was inside when queueing began: their session (cookie
        `fg_session`, signed by the gate) was issued before `queue_since`, is within
        `session_max_s` of its issue, comes from its own network and that network is not
        revoked. They get an admission token for a visitor minted here, once per session (a
        repeat gets the same visitor, unless it was revoked since) and for at most
        `carries_per_network` sessions of a network per queueing period; the token ends with
        the session's absolute life. None if the session does not hold or its network is past
        the bound (the caller gives a place in line). The token (`v2`) passes only from the
        session's network: a carry is cheap to get, so it is no bearer token elsewhere."""
        network = tokens.network_id(self.config.room_id, address)
        keys = self.signing_keys(now)
        live = {kid: entry["key"] for kid, entry in keys["keys"].items()
                if entry.get("retire_at") is None or float(entry["retire_at"]) > now}  # fmt: skip
        held = tokens.read_session(session, self.config.room_id, now, live)
        if held is None or network is None or held[0] != network:
            return None
        issued, since = held[1], int(room.get("queue_since") or 0)
        ends = issued + self.config.session_max_s
        if not 0 < issued <= since or now >= ends or self._revoked(network, now):
            return None
        key = {"pk": f"carry#{network}#{issued}"}
        found = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        visitor = secrets.token_urlsafe(16)
        if found is None:
            counted = self.table.update_item(
                Key={"pk": f"carries#{network}#{since}"},
                UpdateExpression="ADD n :one SET expires_at = if_not_exists(expires_at, :exp)",
                ExpressionAttributeValues={":one": 1, ":exp": ends + 86_400},
                ReturnValues="UPDATED_NEW",
            )
            if int(counted["Attributes"]["n"]) > self.config.carries_per_network:
                print(json.dumps({"carry": "refused", "network": network, "issued": issued}))
                return None
            try:
                self.table.put_item(
                    Item={**key, "visitor": visitor, "expires_at": ends},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                print(json.dumps({"carried": visitor, "network": network, "issued": issued}))
            except self.dynamodb.meta.client.exceptions.ConditionalCheckFailedException:
                found = self.table.get_item(Key=key, ConsistentRead=True)["Item"]
        if found is not None:
            visitor = str(found["visitor"])
            if self._revoked(visitor, now):
                return None  # revoked: a place in line like anyone (revocation is an eviction)
        expires_at = min(int(now) + self.config.token_ttl_s, ends)
        kid = keys["current"]
        token = tokens.sign(self.config.room_id, visitor, expires_at, kid, live[kid], network)
        return {"state": "queue", "admitted": True, "carried": True, "token": token,
                "token_expires_at": expires_at}  # fmt: skip

    def meter(self, room: dict[str, Any], now: float, address: str | None) -> dict[str, Any]:
        """While the room is open and meters arrivals, admit a newcomer at once if this step's
        allowance (the free capacity the inlet offered at `allowance_from`, over METER_SHARDS
        counters) has room; else RoomError 429: the page tries again and, the allowance used up,
        the inlet queues at its next step. An allowance older than METER_STALE_STEPS steps (the
        inlet is not running) admits everyone, logged: the room never holds the portal shut
        because its own loop stopped. A revoked network is refused. The token names the
        viewer's network (v2): it was cheap to get, so it is no bearer token elsewhere.
        Metered joins take no place, so the per-address limit on new places does not count them
        (a shared address on an ordinary night is many newcomers); WAF's rate rule on
        /queue/join still does."""
        network = None if address is None else tokens.network_id(self.config.room_id, address)
        if address is None or network is None:
            raise RoomError(429, "metered", "no viewer address to admit: try again")
        if self._revoked(network, now):
            raise RoomError(403, "revoked", "this network's admission was revoked")
        since = int(room.get("allowance_from") or 0)
        stale = now - since > METER_STALE_STEPS * self.config.step_s + self.config.room_cache_s
        if stale:
            print(json.dumps({"meter": "stale", "allowance_from": since}))
        elif not self._take_allowance(room):
            raise RoomError(429, "metered", "the room is full this moment: try again")
        self._count_collected(now)
        keys = self.signing_keys(now)
        kid = keys["current"]
        expires_at = int(now) + self.config.token_ttl_s
        visitor = secrets.token_urlsafe(16)
        token = tokens.sign(
            self.config.room_id, visitor, expires_at, kid, keys["keys"][kid]["key"], network
        )
        print(json.dumps({"metered": visitor, "network": network}))  # what revoke can name
        return {"state": "open", "admitted": True, "metered": True, "token": token,
                "token_expires_at": expires_at}  # fmt: skip

    def _count_collected(self, now: float) -> None:
        """One token collected this minute (the inlet counts them as people inside)."""
        self.table.update_item(
            Key={"pk": f"collected#{int(now) // 60}#{random.randrange(COLLECT_SHARDS)}"},
            UpdateExpression="ADD n :one SET expires_at = if_not_exists(expires_at, :e)",
            ExpressionAttributeValues={":one": 1, ":e": int(now) + 86_400},
        )

    def _take_allowance(self, room: dict[str, Any]) -> bool:
        """One of the step's allowance, from up to METER_TRIES of its counters (a random one,
        then the next): each holds an equal share of it, so one can be full while another is
        not. A refused join costs at most METER_TRIES conditional writes."""
        allowance, since = int(room.get("allowance") or 0), int(room["allowance_from"])
        shards = min(METER_SHARDS, allowance)  # a small allowance on fewer counters
        if shards <= 0:
            return False
        first = random.randrange(shards)
        for shard in ((first + i) % shards for i in range(min(METER_TRIES, shards))):
            cap = allowance // shards + (1 if shard < allowance % shards else 0)
            try:
                self.table.update_item(
                    Key={"pk": f"metered#{since}#{shard}"},
                    UpdateExpression="ADD n :one SET expires_at = if_not_exists(expires_at, :e)",
                    ConditionExpression="attribute_not_exists(n) OR n < :cap",
                    ExpressionAttributeValues={":one": 1, ":cap": cap, ":e": since + 86_400},
                )
                return True
            except self.dynamodb.meta.client.exceptions.ConditionalCheckFailedException:
                continue
        return False

    def metered(self, since: int) -> int:
        """Newcomers admitted on the allowance offered at `since` (all its shards)."""
        keys = [f"metered#{since}#{s}" for s in range(METER_SHARDS)]
        items = self._batch_get(keys, consistent=True)
        return sum(int(item.get("n", 0)) for item in items.values())

    def _revoked(self, name: str, now: float) -> bool:
        """`name` (a visitor or network id) is revoked now: one consistent read of its shard."""
        key = {"pk": f"revoked#{zlib.crc32(name.encode()) % REVOKED_SHARDS}"}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
        until = (item.get("revoked") or {}).get(name)
        return until is not None and float(until) > now

    def _count_join(self, address: str, now: float) -> None:
        """Count a new place against `address` this minute; RoomError 429 past the limit."""
        minute = int(now) // 60
        counted = self.table.update_item(
            Key={"pk": f"joins#{address}#{minute}"},
            UpdateExpression="ADD n :one SET expires_at = if_not_exists(expires_at, :exp)",
            ExpressionAttributeValues={":one": 1, ":exp": (minute + 2) * 60},
            ReturnValues="UPDATED_NEW",
        )
        if int(counted["Attributes"]["n"]) > self.config.joins_per_address_per_min:
            raise RoomError(
                429, "busy", "too many people joined from this address this minute; try again"
            )

    def _new_place(
        self, visitor: str, room: dict[str, Any], now: float, previous: int | None
    ) -> dict[str, Any]:
        """Take a place and answer without reading it back: its second is not sealed yet."""
        order = self._take_place(visitor, room, now, previous)
        if order is None:  # a concurrent join for this visitor won: answer with theirs
            return self.status(visitor, now)
        return self._answer(visitor, order, room, {"seen_at": int(now)}, None, now)

    def _take_place(
        self, visitor: str, room: dict[str, Any], now: float, previous: int | None
    ) -> int | None:
        """A join's place writes (module docstring); None if a concurrent join for `visitor` won."""
        # Never into a second the inlet has sealed: that place would be past its tally.
        second = max(int(now), int(room["sealed_through"]) + 1)
        shard = random.randrange(SHARDS)
        counted = self.table.update_item(
            Key={"pk": f"count#{second}#{shard}"},
            UpdateExpression="ADD n :one SET expires_at = if_not_exists(expires_at, :exp)",
            ExpressionAttributeValues={":one": 1, ":exp": second + 2 * 86_400},
            ReturnValues="UPDATED_NEW",
        )
        seq = int(counted["Attributes"]["n"])
        if seq > SEQ_SPAN:
            raise RoomError(503, "full", "too many joins this second; try again")
        order = (second * SHARDS + shard) * SEQ_SPAN + seq - 1
        expires = int(now) + 2 * 86_400
        condition = "attribute_not_exists(pk)" if previous is None else "#o = :previous"
        values: dict[str, Any] = {} if previous is None else {":previous": previous}
        try:
            self.table.put_item(
                Item={"pk": f"visitor#{visitor}", "order": order, "expires_at": expires},
                ConditionExpression=condition,
                **({"ExpressionAttributeNames": {"#o": "order"}} if previous is not None else {}),
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except self.dynamodb.meta.client.exceptions.ConditionalCheckFailedException:
            return None  # our counted sequence has no place: a hole the inlet passes
        self.table.put_item(
            Item={
                "pk": f"place#{order}",
                "visitor": visitor,
                "joined_at": int(now),
                "seen_at": int(now),
                "period": int(room["period"]),
                "expires_at": expires,
            }
        )
        return order

    def status(self, visitor: str | None, now: float) -> dict[str, Any]:
        """Place, people ahead, wait estimate; the token once admitted (same token each time)."""
        if visitor is None or not tokens.valid_id(visitor):
            raise RoomError(400, "no-visitor", "no visitor id: join first")
        found = self.table.get_item(Key={"pk": f"visitor#{visitor}"}).get("Item")
        if found is None:
            raise RoomError(404, "unknown-visitor", "unknown visitor: join again")
        order = int(found["order"])
        second = order // SEQ_SPAN // SHARDS
        fresh = self._room_fresh(now)
        got = self._batch_get([f"place#{order}", f"tally#{second}", *([] if fresh else ["room"])])
        room = self._shared_room if fresh else self._keep_room(now, got.get("room", {}))
        if room["state"] != "queue":
            return {"state": room["state"], "visitor": visitor}
        place_item, tally = got.get(f"place#{order}"), got.get(f"tally#{second}")
        place = None if tally is None else _place(order, tally)
        sealed = second <= int(room["sealed_through"])
        stale = place_item is not None and int(place_item.get("period", 0)) != int(room["period"])
        if place_item is None and not sealed:
            # A join (or a requeue by another tab) wrote the visitor before the place: in flight,
            # not a hole. Requeueing now would give this visitor a second new place.
            return self._answer(visitor, order, room, {"seen_at": int(now)}, None, now)
        if place_item is None or place_item.get("skipped") or (sealed and place is None) or stale:
            # Stopped polling and was passed, a hole, or a place from an earlier queue period
            # (the room opened and queued again: the cursor jumped past it, which must not
            # admit a herd): back of the line, a fresh place.
            return {**self._new_place(visitor, room, now, previous=order), "requeued": True}
        return self._answer(visitor, order, room, place_item, place, now)

    def _answer(
        self,
        visitor: str,
        order: int,
        room: dict[str, Any],
        place_item: dict[str, Any],
        place: int | None,
        now: float,
    ) -> dict[str, Any]:
        """The status answer for a visitor holding `order` (`place` None until sealed)."""
        cursor = int(room["cursor_place"])
        rate = admission_rate(room["history"], now)
        answer: dict[str, Any] = {
            "state": "queue",
            "visitor": visitor,
            "place": place,
            "admitted_up_to": cursor,
            "waiting": max(int(room["total_places"]) - cursor, 0),
            "rate_per_min": round(rate * 60, 1),
            "paused": bool(room.get("paused")),
        }
        if place is not None and place <= cursor:
            if place_item.get("revoked"):
                raise RoomError(403, "revoked", "this visitor's admission was revoked")
            collected = place_item.get("collected_at")
            if collected is not None and int(collected) + self.config.token_ttl_s <= now:
                # The admission has lapsed: answering "admitted" with an expired token would send
                # the page and the gate round in a loop. Back of the line, a fresh place.
                return {**self._new_place(visitor, room, now, previous=order), "requeued": True}
            return {
                **answer,
                "admitted": True,
                **self._token(visitor, order, place_item, now),
            }
        ahead = (place if place is not None else int(room["total_places"]) + 1) - cursor - 1
        if now - int(place_item.get("seen_at", 0)) >= SEEN_WRITE_S:
            self.table.update_item(
                Key={"pk": f"place#{order}"},
                UpdateExpression="SET seen_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": int(now)},
            )
        eta = None if rate <= 0 else int(ahead / rate)
        return {**answer, "admitted": False, "ahead": max(ahead, 0), "eta_s": eta}

    def _token(
        self,
        visitor: str,
        order: int,
        place_item: dict[str, Any],
        now: float,
    ) -> dict[str, Any]:
        collected = place_item.get("collected_at")
        if collected is None:
            try:
                self.table.update_item(
                    Key={"pk": f"place#{order}"},
                    UpdateExpression="SET collected_at = :now",
                    ConditionExpression="attribute_not_exists(collected_at)",
                    ExpressionAttributeValues={":now": int(now)},
                )
                self._count_collected(now)
                collected = int(now)
            except self.dynamodb.meta.client.exceptions.ConditionalCheckFailedException:
                item = self.table.get_item(Key={"pk": f"place#{order}"}, ConsistentRead=True)
                collected = int(item["Item"]["collected_at"])
        expires_at = int(collected) + self.config.token_ttl_s
        keys = self.signing_keys(now)
        kid = keys["current"]
        token = tokens.sign(
            self.config.room_id,
            visitor,
            expires_at,
            kid,
            keys["keys"][kid]["key"],
        )
        return {"token": token, "token_expires_at": expires_at}

    # -- helpers ------------------------------------------------------------------------------

    def _batch_get(self, keys: list[str], consistent: bool = False) -> dict[str, dict[str, Any]]:
        """Items by pk (absent keys are left out); retries unprocessed keys."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self.config.table: {
                    "Keys": [{"pk": k} for k in dict.fromkeys(keys[start : start + BATCH_GET_MAX])],
                    "ConsistentRead": consistent,
                }
            }
            for attempt in range(8):
                answer = self.dynamodb.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(self.config.table, []):
                    found[item["pk"]] = _plain(item)
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RoomError(503, "throttled", "DynamoDB kept keys unprocessed")
        return found


JOIN_PREFIX_V6 = 48
"""IPv6 joins are counted per /48 (viewer_address)."""


def viewer_address(header: str | None) -> str | None:
    """The address a join is counted against, from CloudFront-Viewer-Address (`ip:port`, IPv6
    unbracketed): the IPv4 address, or the IPv6 /48 (a site's prefix: a household or a host is
    commonly given a /48 or /56, and counting /64s let 200 of one /48 take 200 places in a
    second); None if absent or unreadable. WAF's rate rules cannot aggregate a prefix (their
    keys are an address, a header, custom keys or a constant), so this is the limit that binds
    IPv6 clients."""
    if not header:
        return None
    try:
        ip = ipaddress.ip_address(header.strip().rsplit(":", 1)[0].strip("[]"))
    except ValueError:
        return None
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{JOIN_PREFIX_V6}", strict=False).network_address) + (
            f"/{JOIN_PREFIX_V6}"
        )
    return str(ip)


def _room_defaults(item: dict[str, Any]) -> dict[str, Any]:
    """The room item with defaults for a room that has never run."""
    return {
        "state": "open",
        "pinned": None,
        "sealed_through": 0,
        "total_places": 0,
        "cursor_place": 0,
        "cursor_order": -1,
        "calm_since": None,
        "period": 0,
        "history": [],
        "paused": False,
        "ceiling": 1.0,
        "allowance": 0,
        "allowance_from": 0,
        "health_at": None,
        "lowered_at": None,
        "version": 0,
        **_plain(item),
    }


def enter_queue(room: dict[str, Any], now: float) -> None:
    """Start a queue period at `now`: joins from this second on; everyone before is passed, and
    their places, from an older period, are requeued when they next poll (never admitted)."""
    room["period"] = int(room.get("period", 0)) + 1
    second = int(now)
    room["queue_since"] = second  # the gate honours only sessions issued before it
    room["sealed_through"] = max(int(room["sealed_through"]), second - 1)
    room["cursor_order"] = max(int(room["cursor_order"]), second * SHARDS * SEQ_SPAN - 1)
    room["cursor_place"] = room["total_places"]
    room["calm_since"] = None


def _place(order: int, tally: dict[str, Any]) -> int | None:
    """The 1-based place of `order` from its second's tally; None if the tally missed it."""
    cell, seq = divmod(order, SEQ_SPAN)
    shard = cell % SHARDS
    counts = [int(n) for n in tally["shards"]]
    if seq >= counts[shard]:
        return None
    return int(tally["before"]) + sum(counts[:shard]) + seq + 1


def admission_rate(history: list[Any], now: float) -> float:
    """Admissions per second over the last `RATE_WINDOW_S` (history: [[epoch s, n], ...])."""
    recent = [int(n) for at, n in history if now - float(at) <= RATE_WINDOW_S]
    if not recent:
        return 0.0
    span = max(now - min(float(at) for at, _ in history if now - float(at) <= RATE_WINDOW_S), 60)
    return sum(recent) / span


POLL_MAX_S = 60
"""A long line polls no more often than this (planning.capacity.POLL_MAX_S sizes the API)."""


def retry_after(
    eta_s: int | None, waiting: int = 0, polls_per_s: float = 0.0, patient_s: int = 0
) -> int:
    """How long the waiting page waits before polling again (s): a tenth of the wait, and long
    enough that the whole line (`waiting` people) polls at most `polls_per_s` (the status
    function's design rate; 0: no limit); 5-60 s, so an admitted visitor notices within a
    minute. A line longer than the design (it would poll faster than `polls_per_s` even at
    60 s) may wait up to 3/4 of `patient_s` (the shorter of show_s and abandon_after_s: an
    admitted visitor still notices within their show window, and nobody polling is skipped
    as gone; the page jitters its polls by +-20 %)."""
    interval = 15 if eta_s is None else max(5, eta_s // 10)
    cap = POLL_MAX_S
    if polls_per_s > 0:
        interval = max(interval, math.ceil(waiting / polls_per_s))
        if waiting / polls_per_s > POLL_MAX_S:
            cap = max(POLL_MAX_S, patient_s * 3 // 4)
    return min(cap, interval)


def _parse_keys(raw: str) -> dict[str, Any]:
    keys = json.loads(raw)
    if keys.get("current") not in keys.get("keys", {}):
        raise RoomError(500, "keys", "signing-key secret has no current key")
    upcoming = keys.get("next")
    known = isinstance(upcoming, dict) and upcoming.get("kid") in keys["keys"] and "at" in upcoming
    if upcoming is not None and not known:
        raise RoomError(500, "keys", "signing-key secret's next key is not one of its keys")
    return keys


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    """Floats as Decimal, as the boto3 resource layer requires."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value
