"""End to end on loopback: a thousand visitors on an event night.

Visitors talk HTTP to the queue API's handlers on 127.0.0.1 (tests/functions/local_api.py);
the handlers, on the server's threads, and the inlet call moto in this process (DynamoDB,
Secrets Manager, Auto Scaling, CloudWatch), with DynamoDB's per-item write atomicity; the edge
gate decides portal requests in node against the KeyValueStore the inlet keeps. Time is
simulated: the handlers' clock and the inlet's steps move together, 10 s per step.

The night: 1,000 people join in 10 s while the origin's 5xx alarm is in ALARM (admissions
pause). Every tenth closes the tab after joining; the others poll every `POLL_S`. The alarm
clears and the inlet admits at the rate cap until the fleet (8 instances x 100 sessions) is
full. The first wave's leavers were admitted before they counted as gone: no-shows, whose
places are freed after `show_s`. The second wave waits for sessions to end; by then the
leavers in it are stale and are passed over.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from functions.admission import admin, handlers, inlet
from functions.admission.room import SEQ_SPAN, SHARDS, Room, _place
from tests.functions.local_api import serve
from tests.functions.room_fixtures import create_cloud, make_room, set_alarm
from tests.moto_server import atomic_item_writes

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_857_000_000  # a whole minute
VISITORS, JOIN_SECONDS, LEAVER_EVERY = 1_000, 10, 10
INSTANCES, SESSIONS_PER_INSTANCE = 8, 100
CAPACITY = INSTANCES * SESSIONS_PER_INSTANCE
RATE_PER_S, STEP_S = 40, 10
ABANDON_AFTER_S, SHOW_S, POLL_S = 90, 120, 60
ALARM_UNTIL = T0 + 30
WAITING_PAGE = "/waiting-room/index.html?return=%2Fapply"


@dataclass
class Visitor:
    index: int
    cookies: dict[str, str] = field(default_factory=dict)
    joined_at: int = 0
    next_poll: int = 0
    token: str | None = None
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(simulated time, status answer) for every poll."""

    @property
    def leaves(self) -> bool:
        return self.index % LEAVER_EVERY == LEAVER_EVERY - 1


class Browser:
    """A keep-alive connection per worker thread; cookies kept per visitor."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.local = threading.local()

    def call(self, visitor: Visitor, method: str, path: str) -> dict[str, Any]:
        if not hasattr(self.local, "conn"):
            self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        cookie = "; ".join(f"{k}={v}" for k, v in visitor.cookies.items())
        self.local.conn.request(method, path, headers={"cookie": cookie} if cookie else {})
        response = self.local.conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        for header in response.headers.get_all("set-cookie") or []:
            name, _, rest = header.partition("=")
            visitor.cookies[name] = rest.split(";")[0]
        return answer


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process, with DynamoDB's per-item write atomicity (the handlers' threads
    write concurrently, as Lambda instances do)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    atomic_item_writes(monkeypatch.setattr)
    with mock_aws():
        yield


def gate(store: dict[str, str], now: int, requests: list[dict[str, Any]], tmp: Path) -> list[dict]:
    """The edge gate's decision for each request (tests/edge/gate_batch.mjs)."""
    batch = tmp / "batch.json"
    batch.write_text(json.dumps({"store": store, "now": now, "requests": requests}))
    out = subprocess.run(
        ["node", str(ROOT / "tests/edge/gate_batch.mjs"), str(batch)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def table_items(room: Room) -> dict[str, dict[str, Any]]:
    scan = room.dynamodb.meta.client.get_paginator("scan")
    return {
        i["pk"]: i for page in scan.paginate(TableName=room.config.table) for i in page["Items"]
    }


@pytest.mark.long
def test_a_thousand_visitors_get_in_in_line_order_at_capacity(aws, monkeypatch, tmp_path):
    create_cloud(INSTANCES)
    room = make_room(
        sessions_per_instance=SESSIONS_PER_INSTANCE,
        max_admit_per_s=RATE_PER_S,
        step_s=STEP_S,
        session_s=60,
        show_s=SHOW_S,
        abandon_after_s=ABANDON_AFTER_S,
        joins_per_address_per_min=VISITORS,  # a thousand people, all from 127.0.0.1
    )
    now = [T0]
    monkeypatch.setattr(handlers, "clock", lambda: now[0])
    admin.pin(room, "queue", T0)
    admin.pin(room, None, T0)  # queueing, under the inlet's control from here on
    set_alarm(room, "ALARM")
    visitors = [Visitor(i) for i in range(VISITORS)]
    pollers = [v for v in visitors if not v.leaves]
    reports: list[tuple[int, dict[str, Any]]] = []

    def join(v: Visitor) -> None:
        answer = browser.call(v, "POST", "/queue/join")
        assert answer["state"] == "queue" and answer["admitted"] is False
        v.joined_at = now[0]
        v.next_poll = now[0] + 50 + (v.index % 4) * 10  # first polls spread over 40 s

    def poll(v: Visitor) -> None:
        answer = browser.call(v, "GET", "/queue/status")
        v.answers.append((now[0], answer))
        if answer["admitted"]:
            v.token = v.cookies["fg_admit"]
        v.next_poll = now[0] + POLL_S

    with serve(room) as (host, port), ThreadPoolExecutor(max_workers=4) as pool:
        browser = Browser(host, port)
        per_second = VISITORS // JOIN_SECONDS
        for second in range(JOIN_SECONDS):
            now[0] = T0 + 1 + second
            list(pool.map(join, visitors[second * per_second : (second + 1) * per_second]))
        now[0] = T0 + 20
        while any(v.token is None for v in pollers):
            assert now[0] < T0 + 1_200, "everyone who keeps polling is in within 20 minutes"
            if now[0] == ALARM_UNTIL:
                set_alarm(room, "OK")
            reports.append((now[0], inlet.step(room, now[0])))
            list(pool.map(poll, [v for v in pollers if not v.token and v.next_poll <= now[0]]))
            now[0] += STEP_S

    # Nobody got in while the origin was failing; then the rate cap, then the fleet, bound.
    admitted = [r["admitted"] for _, r in reports]
    assert all(r["admitted"] == 0 for t, r in reports if t < ALARM_UNTIL)
    assert max(admitted) == RATE_PER_S * STEP_S
    assert any(r["budget"] == 0 and r["waiting"] > 0 for t, r in reports if t > ALARM_UNTIL)
    # Per minute, and over any 60 s of steps, never more people than the fleet serves.
    per_minute = Counter()
    for t, r in reports:
        per_minute[t // 60] += r["admitted"]
    assert max(per_minute.values()) <= CAPACITY, per_minute
    window = 60 // STEP_S
    assert max(sum(admitted[i : i + window]) for i in range(len(admitted))) <= CAPACITY
    assert [r["cursor_place"] for _, r in reports] == sorted(r["cursor_place"] for _, r in reports)

    # One place each, no gaps: 1..1000, FIFO to the second of joining.
    items = table_items(room)
    tallies = {k.split("#")[1]: v for k, v in items.items() if k.startswith("tally#")}
    ids = {v.cookies["fg_visitor"]: v for v in visitors}
    assert len(ids) == VISITORS
    place_of: dict[str, int] = {}
    for visitor_id, v in ids.items():
        order = int(items[f"visitor#{visitor_id}"]["order"])
        second = order // SEQ_SPAN // SHARDS
        assert second == v.joined_at, "a place in the second the visitor joined"
        place = _place(order, tallies[str(second)])
        assert place is not None
        place_of[visitor_id] = place
        assert items[f"place#{order}"]["visitor"] == visitor_id
    assert sorted(place_of.values()) == list(range(1, VISITORS + 1))
    by_place = sorted(place_of, key=place_of.__getitem__)
    assert [ids[i].joined_at for i in by_place] == sorted(v.joined_at for v in visitors)

    # Admission follows the line exactly: at every poll, a visitor is admitted if and only if
    # the cursor (from the last step) has reached their place, and sees the place they hold.
    cursor_at = dict(reports)
    for visitor_id in ids.keys() & {i for i in ids if not ids[i].leaves}:
        for t, answer in ids[visitor_id].answers:
            assert answer["place"] == place_of[visitor_id]
            assert answer["admitted"] == (place_of[visitor_id] <= cursor_at[t]["cursor_place"])
            assert not answer.get("requeued")
    # Leavers: those reached within ABANDON_AFTER_S were admitted (no-shows, never collected),
    # the rest were passed over; both kinds exist tonight. Pollers were never passed over.
    places = {place_of[i]: items[f"place#{items[f'visitor#{i}']['order']}"] for i in ids}
    leavers = [place_of[i] for i, v in ids.items() if v.leaves]
    skipped = sorted(p for p, item in places.items() if item.get("skipped"))
    assert set(skipped) < set(leavers) and skipped
    assert not any(places[p].get("collected_at") for p in leavers)
    no_shows = len(leavers) - len(skipped)
    assert no_shows > 0
    assert sum(admitted) == len(pollers) + no_shows
    assert sum(r["skipped"] for _, r in reports) == len(skipped)

    # At the edge: every admitted visitor's token passes (browser and API client alike);
    # everyone else is sent to the waiting page, or told to retry if an API client.
    assert room.kvs is not None
    store = room.kvs.items()
    assert json.loads(store["room"])["state"] == "queue"
    requests = [{"cookie": v.token} for v in pollers]
    requests += [{"cookie": v.token, "accept": "application/json"} for v in pollers]
    requests += [{} for _ in visitors]
    requests += [{"accept": "application/json"} for v in visitors if v.leaves]
    results = gate(store, now[0], requests, tmp_path)
    inside, outside = results[: 2 * len(pollers)], results[2 * len(pollers) :]
    assert all(r == {"pass": True} for r in inside)
    browsers, api_clients = outside[:VISITORS], outside[VISITORS:]
    assert all(r == {"pass": False, "status": 302, "location": WAITING_PAGE} for r in browsers)
    assert all(r["status"] == 429 for r in api_clients)
