"""The waiting room's state in DynamoDB: places, the admission cursor, sessions, keys.

Python standard library + boto3 only (plus awscrt in a layer for the KeyValueStore's SigV4A).

Places without a hot key
------------------------
A single counter item takes at most 1,000 writes/s (DynamoDB's per-partition write limit), so
20,000 joins/s cannot share one. A join instead does three writes, each to a different key:

* ``count#<second>#<shard>``: an atomic ADD that returns the visitor's sequence number ``seq``
  in that (second, shard) cell; ``shard`` is chosen at random among ``SHARDS`` = 32. At 20,000
  joins/s each counter item takes 20,000 / 32 = **625 writes/s** (1,000 max), and the 32 items of
  one second hash to different partitions. A new second brings 32 new keys, so no item stays hot.
* ``visitor#<id>`` (conditional put, makes join idempotent) and ``place#<order>``: random or
  unique keys, spread evenly by DynamoDB's hash. 20,000 joins/s x 3 = **60,000 writes/s** in
  total, i.e. at least 60 partitions: the table is declared with warm throughput for that, since
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

Sessions and capacity
---------------------
The inlet admits ``min(capacity - active, max_admit_per_s * step_s)`` per step, where capacity
is in-service instances x ``sessions_per_instance`` and ``active`` is the larger of (a) tokens
collected in the last ``session_s`` plus admitted-but-not-yet-collected within ``show_s`` (later
ones are no-shows and stop counting) and (b) the measured origin load (requests per target per
second over ``requests_per_instance_per_s``) times capacity, so people already inside without a
token are counted. Collections are counted on ``collected#<minute>#<shard>`` (8 shards: at the
2,000/s admission ceiling 250 writes/s per item).
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal, Protocol

from . import tokens

SHARDS = 32
SEQ_SPAN = 1_000_000
COLLECT_SHARDS = 8
SEAL_GRACE_S = 5
SEAL_MAX_SECONDS = 600
"""Seconds sealed per step at most (6 BatchGetItem calls per 100 s of history)."""
SEEN_WRITE_S = 30
"""A poll refreshes `seen_at` only when the stored value is older than this (write budget)."""
RATE_WINDOW_S = 300
ROOM_KEY = {"pk": "room"}
KEYS_CACHE_S = 60
BATCH_GET_MAX = 100  # DynamoDB BatchGetItem limit

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


@dataclass(frozen=True)
class Config:
    """The room's tunables; the Lambda reads them from its environment (see `from_env`)."""

    table: str
    room_id: str = "portal"
    secret_id: str = ""
    sessions_per_instance: int = 100
    requests_per_instance_per_s: float = 150.0
    max_admit_per_s: int = 200
    step_s: int = 10
    session_s: int = 1200
    token_ttl_s: int = 7200
    show_s: int = 120
    abandon_after_s: int = 90
    queue_at_load: float = 0.85
    open_below_load: float = 0.60
    calm_s: int = 600
    drain_s: int = 120
    polls_per_s: float = 0.0
    """Polls a second the status function is sized for: the page's interval keeps the line
    under it (planning.capacity.queue_api_design; 0: no limit)."""
    demand_floor_pct: float = 0.0
    """The scaling target (%): the demand metric never reads below it while people wait."""
    """A queueing room may open once its line would be let in within this many seconds."""
    asg_name: str = ""
    target_group: str = ""
    """CloudWatch dimension `targetgroup/<name>/<id>` for RequestCountPerTarget."""
    alarm_names: str = ""
    """Comma-separated origin 5xx alarms; admissions pause while any is in ALARM."""
    metric_namespace: str = "Floodgate/WaitingRoom"
    demand_metric: str = "DemandPercent"
    """The metric the web group's room-demand policy scales on (components/admission.py)."""

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Config:
        """Config from `FG_*` environment variables (set by components/admission.py)."""

        def num(name: str, default: float) -> float:
            return float(env.get(f"FG_{name.upper()}", default))

        base = cls(table=env["FG_TABLE"])
        values: dict[str, Any] = {}
        for name, value in base.__dict__.items():
            if name == "table":
                continue
            if isinstance(value, str):
                values[name] = env.get(f"FG_{name.upper()}", value)
            elif isinstance(value, int):
                values[name] = int(num(name, value))
            else:
                values[name] = num(name, value)
        return cls(table=base.table, **values)


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

    @cached_property
    def table(self) -> Any:
        """The boto3 Table, made once: building one costs ~3 ms of CPU (resource factory)."""
        return self.dynamodb.Table(self.config.table)

    # -- reads ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The room item, with defaults for a room that has never run."""
        return _room_defaults(self.table.get_item(Key=ROOM_KEY).get("Item") or {})

    def save(self, room: dict[str, Any]) -> None:
        """Write the room item, only if nobody else wrote it since `room` was read."""
        version = int(room["version"])
        self.table.put_item(
            Item=_dynamo({**room, "pk": ROOM_KEY["pk"], "version": version + 1}),
            ConditionExpression="attribute_not_exists(pk) OR version = :v",
            ExpressionAttributeValues={":v": version},
        )

    def signing_keys(self, now: float) -> dict[str, Any]:
        """`{"current": kid, "keys": {kid: {"key": hex, "retire_at": epoch|None}}}`, cached."""
        if self._keys is None or now - self._keys[0] > KEYS_CACHE_S:
            raw = self.secrets.get_secret_value(SecretId=self.config.secret_id)["SecretString"]
            self._keys = (now, _parse_keys(raw))
        return self._keys[1]

    # -- join and status --------------------------------------------------------------------

    def join(self, visitor: str | None, now: float) -> dict[str, Any]:
        """Give `visitor` a place; joining twice returns the same place. Visitor ids are minted
        here: an id the room does not know (a client's own choice) gets a new one."""
        room = self.state()
        if room["state"] != "queue":
            return {"state": room["state"]}
        if visitor is not None and tokens.valid_id(visitor):
            found = self.table.get_item(Key={"pk": f"visitor#{visitor}"}).get("Item")
            if found is not None:
                return self.status(visitor, now)
        return self._new_place(secrets.token_urlsafe(16), room, now, previous=None)

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
        """A join's three writes (module docstring); None if a concurrent join for `visitor` won."""
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
        got = self._batch_get([f"place#{order}", "room", f"tally#{second}"])
        room = _room_defaults(got.get("room", {}))
        if room["state"] != "queue":
            return {"state": room["state"], "visitor": visitor}
        place_item, tally = got.get(f"place#{order}"), got.get(f"tally#{second}")
        place = None if tally is None else _place(order, tally)
        sealed = second <= int(room["sealed_through"])
        stale = place_item is not None and int(place_item.get("period", 0)) != int(room["period"])
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
                minute = int(now) // 60
                self.table.update_item(
                    Key={"pk": f"collected#{minute}#{random.randrange(COLLECT_SHARDS)}"},
                    UpdateExpression="ADD n :one SET expires_at = if_not_exists(expires_at, :e)",
                    ExpressionAttributeValues={":one": 1, ":e": int(now) + 86_400},
                )
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
        "revoked": {},
        "version": 0,
        **_plain(item),
    }


def enter_queue(room: dict[str, Any], now: float) -> None:
    """Start a queue period at `now`: joins from this second on; everyone before is passed, and
    their places, from an older period, are requeued when they next poll (never admitted)."""
    room["period"] = int(room.get("period", 0)) + 1
    second = int(now)
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


def retry_after(eta_s: int | None, waiting: int = 0, polls_per_s: float = 0.0) -> int:
    """How long the waiting page waits before polling again (s): a tenth of the wait, and long
    enough that the whole line (`waiting` people) polls at most `polls_per_s` (the status
    function's design rate; 0: no limit); 5-60 s, so an admitted visitor notices within a
    minute, well inside `show_s`."""
    interval = 15 if eta_s is None else max(5, eta_s // 10)
    if polls_per_s > 0:
        interval = max(interval, math.ceil(waiting / polls_per_s))
    return min(POLL_MAX_S, interval)


def _parse_keys(raw: str) -> dict[str, Any]:
    keys = json.loads(raw)
    if keys.get("current") not in keys.get("keys", {}):
        raise RoomError(500, "keys", "signing-key secret has no current key")
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
