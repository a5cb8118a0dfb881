"""The queue handlers against moto: places, status, the inlet, admin actions, HTTP shapes."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from functions.admission import admin, handlers, inlet, tokens
from functions.admission import room as room_module
from functions.admission.room import (
    SEAL_GRACE_S,
    SEQ_SPAN,
    SHARDS,
    Config,
    ConfigError,
    Room,
    RoomError,
    _place,
)
from tests.functions.room_fixtures import (
    KEY_HEX,
    T0,
    TEST_ENV,
    items,
    join_many,
    set_alarm,
    via_edge,
)
from tests.moto_server import atomic_item_writes


def places(room: Room, visitors: list[str], now: float) -> list[int]:
    return [room.status(v, now)["place"] for v in visitors]


def test_join_is_idempotent_and_places_are_dense_after_sealing(room) -> None:
    visitors = join_many(room, 12)
    again = room.join(visitors[3], T0 + 2)
    assert again["visitor"] == visitors[3]
    assert len(list(items(room, "place#"))) == 12, "a second join writes no new place"
    assert room.status(visitors[0], T0 + 2)["place"] is None, "not sealed yet"
    inlet.step(room, T0 + 1 + SEAL_GRACE_S + 1)
    assert sorted(places(room, visitors, T0 + 8)) == list(range(1, 13))


def test_concurrent_joins_never_share_a_place(room, monkeypatch) -> None:
    atomic_item_writes(monkeypatch.setattr)
    with ThreadPoolExecutor(max_workers=8) as pool:
        visitors = list(
            pool.map(lambda i: room.join(None, T0 + 1 + i / 120)["visitor"], range(120))
        )
    assert len(set(visitors)) == 120
    orders = [int(i["pk"].split("#")[1]) for i in items(room, "place#")]
    assert len(orders) == len(set(orders)) == 120
    inlet.step(room, T0 + 10)
    assert room.state()["total_places"] == 120
    tallies = {int(i["pk"].split("#")[1]): i for i in items(room, "tally#")}
    numbered = [_place(o, tallies[o // SEQ_SPAN // SHARDS]) or 0 for o in orders]
    assert sorted(numbered) == list(range(1, 121)), "no place is given twice, none is missing"


def test_status_reports_ahead_and_an_eta_from_the_admission_rate(room) -> None:
    visitors = join_many(room, 30)
    inlet.step(room, T0 + 10)  # seals, admits 10 (capacity)
    answers = [room.status(v, T0 + 20) for v in visitors]
    last = max(answers, key=lambda a: a["place"])
    assert last["admitted"] is False and last["place"] == 30
    assert last["admitted_up_to"] == 10
    assert last["ahead"] == last["place"] - 11
    assert last["rate_per_min"] == 10.0  # 10 admitted over the 60 s minimum window
    assert last["eta_s"] == last["ahead"] * 6


def test_inlet_admits_what_the_fleet_from_autoscaling_can_serve(room) -> None:
    visitors = join_many(room, 30)
    report = inlet.step(room, T0 + 10)
    assert report["in_service"] == 2  # from moto's Auto Scaling group
    assert (report["budget"], report["admitted"]) == (10, 10)
    admitted = [v for v in visitors if room.status(v, T0 + 11).get("admitted")]
    assert len(admitted) == 10
    # All 10 collected their tokens: the fleet is full, nobody else gets in.
    assert inlet.step(room, T0 + 20)["admitted"] == 0
    room.autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=4)
    assert inlet.step(room, T0 + 30)["admitted"] == 10, "two more instances, ten more people"


def test_no_shows_stop_counting_after_the_show_window(room) -> None:
    visitors = join_many(room, 30)
    assert inlet.step(room, T0 + 10)["admitted"] == 10
    assert inlet.step(room, T0 + 20)["admitted"] == 0, "admitted, may still be on their way"
    later = T0 + 10 + room.config.show_s + 1
    cursor = room.state()["cursor_order"]
    for v in visitors:  # the twenty still waiting keep polling; the ten admitted never came
        if room.table.get_item(Key={"pk": f"visitor#{v}"})["Item"]["order"] > cursor:
            assert room.status(v, later - 5)["admitted"] is False
    assert inlet.step(room, later)["admitted"] == 10, "nobody collected: no-shows compensated"


def test_inlet_pauses_while_the_origin_alarm_is_in_alarm(room) -> None:
    visitors = join_many(room, 5)
    set_alarm(room, "ALARM")
    report = inlet.step(room, T0 + 10)
    assert (report["alarm"], report["budget"], report["admitted"]) == (True, 0, 0)
    assert room.status(visitors[0], T0 + 11)["paused"] is True, "the page says so"
    set_alarm(room, "OK")
    assert inlet.step(room, T0 + 20)["admitted"] == 5
    assert room.status(visitors[0], T0 + 21)["paused"] is False


def test_abandoned_places_are_skipped_and_the_holder_requeued(room) -> None:
    visitors = join_many(room, 3)
    inlet.step(room, T0 + 10)  # seals and admits all three? capacity 10: yes
    more = join_many(room, 15, at=T0 + 11, every=1.0)  # one a second: a known order
    for v in visitors:
        room.status(v, T0 + 12)  # the first three collect: 7 seats left
    stay = more[5:]
    late = T0 + 11 + room.config.abandon_after_s + 5
    for v in stay:
        room.status(v, late - 1)  # still polling; more[:5] closed their tabs
    report = inlet.step(room, late)
    assert report["skipped"] == 5
    assert report["admitted"] == 7
    back = room.status(more[0], late + 1)
    assert back["requeued"] is True and back["admitted"] is False


def test_origin_load_switches_an_open_room_to_queue(room) -> None:
    admin.pin(room, "open", T0)
    admin.pin(room, None, T0)
    target_group = "targetgroup/web/0123456789abcdef"
    room.config = Config(**{**room.config.__dict__, "target_group": target_group})
    assert inlet.step(room, T0 + 20)["state"] == "open"
    room.cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCountPerTarget",
                "Dimensions": [{"Name": "TargetGroup", "Value": target_group}],
                "Value": 0.9 * 150 * 60,  # 90 % of 150 requests/s per instance, for a minute
                "Timestamp": datetime.fromtimestamp(T0 + 25, UTC),
            }
        ],
    )
    report = inlet.step(room, T0 + 30)
    assert (report["state"], report["load"]) == ("queue", 0.9)
    assert json.loads(room.kvs.data["room"])["state"] == "queue", "the edge follows"


def test_calm_room_opens_only_after_the_calm_period(room) -> None:
    room.config = Config(**{**room.config.__dict__, "calm_s": 60})
    assert inlet.step(room, T0 + 10)["state"] == "queue"  # nobody waiting, starts calm
    assert inlet.step(room, T0 + 20 + room.config.calm_s - 20)["state"] == "queue"
    assert inlet.step(room, T0 + 20 + room.config.calm_s)["state"] == "open"
    assert json.loads(room.kvs.data["room"])["state"] == "open"


def test_calendar_event_forces_the_queue(room) -> None:
    admin.pin(room, "open", T0)
    admin.pin(room, None, T0)
    night = {
        "mode": "queue",
        "starts_at": "2028-11-06T00:00:00Z",
        "ends_at": "2028-11-07T00:00:00Z",
    }
    room.table.put_item(Item={"pk": "calendar", "events": {"night": night}})
    assert inlet.step(room, T0 + 10)["state"] == "open"  # T0 is 2028-11-05T01:20:00Z
    during = 1_857_100_000.0  # 2028-11-06T05:06:40Z
    assert inlet.step(room, during)["state"] == "queue"
    # The window ends: the room is no longer held (nobody waits, load is nil) and calms down.
    after = 1_857_200_000.0  # 2028-11-07T08:53:20Z
    assert inlet.step(room, after)["state"] == "queue"  # calm from here
    assert inlet.step(room, after + room.config.calm_s)["state"] == "open"


def test_a_draining_line_lets_the_room_open_without_reaching_zero(room) -> None:
    room.config = Config(**{**room.config.__dict__, "calm_s": 20, "drain_s": 60})
    join_many(room, 30)  # 30 waiting; capacity 10 at a time
    first = inlet.step(room, T0 + 10)
    assert (first["admitted"], first["waiting"], first["state"]) == (10, 20, "queue")
    # 20 left at 10 admitted over the last minute (the window is at least 60 s): 120 s > 60 s.
    assert inlet.step(room, T0 + 40)["state"] == "queue"
    slow = Config(**{**room.config.__dict__, "drain_s": 120})
    room.config = slow  # now 20 / (10 / 60 s) = 120 s: calm, and open after calm_s
    assert inlet.step(room, T0 + 50)["state"] == "queue"
    report = inlet.step(room, T0 + 50 + slow.calm_s)
    assert (report["state"], report["waiting"]) == ("open", 20)


def test_sessions_count_by_who_is_still_inside_not_a_minute(room) -> None:
    ids = join_many(room, 10)
    assert inlet.step(room, T0 + 10)["admitted"] == 10
    for v in ids:
        room.status(v, T0 + 11)  # tokens collected: 10 people inside, capacity 10
    waiting = join_many(room, 5, at=T0 + 12)
    # A minute on, the ten still count: nobody more gets in.
    for v in waiting:
        room.status(v, T0 + 69)
    assert inlet.step(room, T0 + 70)["admitted"] == 0
    # Fifteen minutes on (visits average 20): about 10 x exp(-0.73) = 5 of them are still
    # inside (with no load datapoint to say otherwise), so the 5 waiting get in.
    later = T0 + 15 * 60
    for v in waiting:
        room.status(v, later - 1)
    assert inlet.step(room, later)["admitted"] == 5


def test_the_inlet_publishes_demand_for_the_fleet_to_scale_on(room, monkeypatch) -> None:
    sent: list[dict] = []
    real = room.cloudwatch.put_metric_data
    monkeypatch.setattr(
        room.cloudwatch, "put_metric_data", lambda **kw: sent.append(kw) or real(**kw)
    )
    join_many(room, 30)
    report = inlet.step(room, T0 + 10)
    # 20 waiting over a capacity of 10: 200 % (load nil), at least the scaling target.
    assert report["demand_pct"] == 200.0
    (demand,) = [m for m in sent[-1]["MetricData"] if m["MetricName"] == "DemandPercent"]
    assert (demand["Value"], demand["Unit"]) == (200.0, "Percent")
    # High resolution, or the policy's 10-second period finds no datapoint in most periods.
    assert demand["StorageResolution"] == 1 and room.config.demand_period_s == 10
    assert demand["Dimensions"] == [{"Name": "Room", "Value": room.config.room_id}]


def test_pin_holds_the_state_against_the_inlet(room) -> None:
    admin.pin(room, "closed", T0)
    assert inlet.step(room, T0 + 10)["state"] == "closed"
    assert json.loads(room.kvs.data["room"]) == {
        "state": "closed",
        "room": "election-2028",
        "kid": room.signing_keys(T0)["current"],
        "session_s": room.config.session_s,
        "session_max_s": 14400,
        "queue_since": 0,  # not queueing
        "carry_s": 600,
        "meter": False,  # not open
        "token_ttl_s": room.config.token_ttl_s,
    }
    assert room.join(None, T0 + 11) == {"state": "closed"}
    with pytest.raises(RoomError, match="state 'shut' is not one of"):
        admin.handle(room, {"action": "pin", "state": "shut"}, T0)


def test_rotation_keeps_old_tokens_valid_until_they_expire(room) -> None:
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    old = room.status(visitor, T0 + 11)["token"]
    rotated = admin.rotate(room, T0 + 12)
    new_kid, signs_from = rotated["next_key"], rotated["signs_from"]
    assert signs_from == T0 + 12 + 300, "KEY_PUBLISH_S: five minutes"
    keys = {k[4:]: v for k, v in room.kvs.data.items() if k.startswith("key.")}
    assert set(keys) == {"k0", new_kid}
    assert tokens.verify(old, "election-2028", T0 + 13, keys) == visitor
    reissued = room.status(visitor, T0 + 13)["token"]
    assert reissued.split(".")[:5] == old.split(".")[:5], "same visitor, expiry and key"
    second = join_many(room, 1, at=signs_from)[0]
    inlet.step(room, signs_from + 10)
    fresh = room.status(second, signs_from + 11)["token"]
    assert f".{new_kid}." in fresh
    after = signs_from + room.config.token_ttl_s + 1
    inlet.run(room, clock=lambda: after, sleep=lambda s: None, steps=1)
    assert "key.k0" not in room.kvs.data, "retired key leaves the edge once its tokens expired"
    assert tokens.verify(old, "election-2028", T0 + 13, {"k0": KEY_HEX}) == visitor


def test_a_rotated_key_is_at_the_edge_before_anything_signs_with_it(room) -> None:
    """Issue 26: key and room entry in one write let an edge location see the new kid before
    its key, and the gate failed open for it. The new key is published KEY_PUBLISH_S (300 s)
    before any token or room entry names it."""
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    rotated = admin.rotate(room, T0 + 12)
    new_kid = rotated["next_key"]
    assert f"key.{new_kid}" in room.kvs.data, "published at once"
    for t in (T0 + 13, T0 + 12 + 299):
        inlet.sync_kvs(room, t)
        assert json.loads(room.kvs.data["room"])["kid"] == "k0", t
        assert room.status(visitor, t)["token"].split(".")[4] == "k0", t
    inlet.sync_kvs(room, T0 + 12 + 300)
    assert json.loads(room.kvs.data["room"])["kid"] == new_kid
    with pytest.raises(RoomError, match="signs from"):  # a second rotation waits for the first
        admin.rotate(room, T0 + 20)


def test_an_emergency_rotation_signs_at_once_and_drops_every_old_key(room) -> None:
    admin.rotate(room, T0 + 12)
    rotated = admin.rotate(room, T0 + 13, emergency=True)
    kid = rotated["current_key"]
    assert rotated["next_key"] == kid and rotated["signs_from"] == T0 + 13
    assert {k for k in room.kvs.data if k.startswith("key.")} == {f"key.{kid}"}
    assert json.loads(room.kvs.data["room"])["kid"] == kid


def test_a_normal_rotation_keeps_the_old_key_at_the_edge_until_its_last_token_expires(
    room,
) -> None:
    """A token signed a moment before the new key signs lives token_ttl_s more: the old key
    stays in the KeyValueStore until then, to the second, and leaves at that second."""
    signs_from = admin.rotate(room, T0 + 12)["signs_from"]
    ttl = room.config.token_ttl_s
    inlet.sync_kvs(room, signs_from + ttl - 1)
    assert "key.k0" in room.kvs.data, "a token signed just before the switch still verifies"
    inlet.sync_kvs(room, signs_from + ttl)
    assert "key.k0" not in room.kvs.data


def test_the_signing_key_cache_expires(room) -> None:
    """A container reuses the secret for KEYS_CACHE_S (60 s), then reads it again: a rotation
    made by another container (or by hand) reaches every container within a minute."""
    assert room.signing_keys(T0)["current"] == "k0"
    rotated = {"current": "k1", "keys": {"k0": {"key": KEY_HEX}, "k1": {"key": "cd" * 32}}}
    room.secrets.put_secret_value(SecretId=room.config.secret_id, SecretString=json.dumps(rotated))
    assert room.signing_keys(T0 + 59)["current"] == "k0", "cached"
    assert room.signing_keys(T0 + 61)["current"] == "k1"


def test_queueing_again_requeues_the_old_line_instead_of_admitting_it(room) -> None:
    visitors = join_many(room, 20)
    assert inlet.step(room, T0 + 10)["admitted"] == 10  # capacity 10: places 11-20 wait
    waiting = [v for v in visitors if not room.status(v, T0 + 11).get("admitted")]
    assert len(waiting) == 10
    admin.pin(room, "open", T0 + 12)  # the operator opens during origin trouble ...
    admin.pin(room, "queue", T0 + 13)  # ... and queues again: the cursor jumps past them
    answers = [room.status(v, T0 + 14) for v in waiting]
    assert not any(a.get("admitted") for a in answers), "no herd at a recovering origin"
    assert all(a.get("requeued") for a in answers)


def test_a_lapsed_admission_is_requeued_never_answered_with_an_expired_token(room) -> None:
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    admitted = room.status(visitor, T0 + 11)
    assert (
        admitted["admitted"] and admitted["token_expires_at"] == T0 + 11 + room.config.token_ttl_s
    )
    lapsed = admitted["token_expires_at"] + 1
    for answer in (room.status(visitor, lapsed), room.join(visitor, lapsed + 1)):
        assert not answer.get("admitted") and "token" not in answer
    assert room.status(visitor, lapsed + 2).get("requeued") is None  # one fresh place, kept


def test_an_emergency_rotation_cuts_old_keys_off_at_once(room) -> None:
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    old = room.status(visitor, T0 + 11)["token"]
    rotated = admin.handle(room, {"action": "rotate", "emergency": True}, T0 + 12)
    assert rotated["emergency"] is True
    keys = {k[4:]: v for k, v in room.kvs.data.items() if k.startswith("key.")}
    assert set(keys) == {rotated["current_key"]}, "the leaked key left the edge at once"
    assert tokens.verify(old, "election-2028", T0 + 13, keys) is None
    assert "k0" not in room.signing_keys(T0 + 13)["keys"]


def test_the_room_mints_visitor_ids_it_does_not_know(room) -> None:
    chosen = room.join("attacker-chosen-id", T0 + 1)
    assert chosen["visitor"] != "attacker-chosen-id" and len(chosen["visitor"]) == 22
    again = room.join(chosen["visitor"], T0 + 2)
    assert again["visitor"] == chosen["visitor"] and again["place"] == chosen["place"]
    assert room.join("abc\n", T0 + 3)["visitor"] != "abc\n"


def test_revocation_reaches_the_edge_and_stops_reissue(room) -> None:
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    room.status(visitor, T0 + 11)
    result = admin.handle(room, {"action": "revoke", "visitor": visitor}, T0 + 12)
    assert result["known"] is True
    assert f"revoked.{visitor}" in room.kvs.data
    with pytest.raises(RoomError, match="revoked"):
        room.status(visitor, T0 + 13)
    with pytest.raises(RoomError, match="must be 1-64"):
        admin.revoke(room, "bad visitor!", T0)


def test_kvs_sync_is_idempotent(room) -> None:
    writes = room.kvs.writes
    assert inlet.sync_kvs(room, T0 + 5) == {"puts": 0, "deletes": 0}
    assert room.kvs.writes == writes
    room.kvs.data["key.stale"] = "x"
    room.kvs.data["unmanaged"] = "kept"
    assert inlet.sync_kvs(room, T0 + 5) == {"puts": 0, "deletes": 1}
    assert "unmanaged" in room.kvs.data


def test_http_join_and_status_set_cookies_and_cache_headers(room) -> None:
    joined = handlers.join(via_edge(), None, room)
    assert joined["statusCode"] == 200
    visitor_cookie = joined["cookies"][0]
    assert visitor_cookie.startswith("fg_visitor=") and "HttpOnly" in visitor_cookie
    assert "SameSite=Strict" in visitor_cookie
    visitor = visitor_cookie.split(";")[0].split("=", 1)[1]
    waiting = handlers.status(via_edge([f"fg_visitor={visitor}"]), None, room)
    body = json.loads(waiting["body"])
    assert waiting["headers"]["cache-control"] == "private, max-age=2"
    assert body["admitted"] is False and 5 <= body["retry_after_s"] <= 60
    missing = handlers.status(via_edge(), None, room)
    assert (missing["statusCode"], missing["headers"]["cache-control"]) == (400, "no-store")
    unknown = handlers.status(via_edge(["fg_visitor=nobody"]), None, room)
    assert unknown["statusCode"] == 404
    summary = handlers.status(via_edge(routeKey="GET /queue/room"), None, room)
    assert summary["headers"]["cache-control"] == "public, max-age=2"
    assert json.loads(summary["body"])["state"] == "queue"


@pytest.mark.parametrize(
    ("header", "site"), [("Sec-Fetch-Site", "cross-site"), ("sec-fetch-site", "same-site")]
)
def test_cross_site_join_is_refused(room, header, site) -> None:
    """Another site cannot send a waiting visitor to the back of the line."""
    joined = handlers.join(via_edge(headers={"sec-fetch-site": "same-origin"}), None, room)
    visitor = joined["cookies"][0].split(";")[0].split("=", 1)[1]
    forged = handlers.join(via_edge(headers={header: site}), None, room)
    assert (forged["statusCode"], forged["cookies"]) == (403, [])
    assert json.loads(forged["body"])["error"] == "cross-site"
    status = handlers.status(via_edge([f"fg_visitor={visitor}"]), None, room)
    assert json.loads(status["body"])["visitor"] == visitor, "still in their place"


def test_http_status_issues_the_token_cookie_once_admitted(room, monkeypatch) -> None:
    monkeypatch.setattr(handlers, "clock", lambda: T0 + 11)
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    answer = handlers.status(via_edge([f"fg_visitor={visitor}"]), None, room)
    admit = next(c for c in answer["cookies"] if c.startswith("fg_admit="))
    for part in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=7200"):
        assert part in admit
    assert answer["headers"]["cache-control"] == "no-store"
    assert "token" not in json.loads(answer["body"])


def test_config_from_env_reads_every_setting() -> None:
    env = {**TEST_ENV, "FG_TABLE": "t", "FG_STEP_S": "15", "FG_QUEUE_AT_LOAD": "0.7"}
    config = Config.from_env(env)
    assert (config.table, config.step_s, config.queue_at_load) == ("t", 15, 0.7)
    assert {f"FG_{name.upper()}" for name in config.__dict__} == set(env), "one variable each"


def test_config_from_env_accepts_the_extremes_planning_allows() -> None:
    """Catches a bound made exclusive: planning.settings.admission lets a stack step the inlet
    every 60 s, queue only at 100 % load, open at 0 %, keep sessions and tokens for a minute
    or five, and watch 30 s for no-shows and leavers; the Lambda must start on that."""
    extremes = {
        "FG_STEP_S": "60",
        "FG_QUEUE_AT_LOAD": "1.0",
        "FG_OPEN_BELOW_LOAD": "0.0",
        "FG_SESSION_S": "60",
        "FG_TOKEN_TTL_S": "300",
        "FG_SHOW_S": "30",
        "FG_ABANDON_AFTER_S": "30",
        "FG_CALM_S": "60",
        "FG_DRAIN_S": "0",
    }
    config = Config.from_env({**TEST_ENV, "FG_TABLE": "t", **extremes})
    assert (config.step_s, config.queue_at_load, config.open_below_load) == (60, 1.0, 0.0)
    assert (config.session_s, config.token_ttl_s, config.show_s) == (60, 300, 30)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"FG_STEP_S": None}, "FG_STEP_S: missing"),
        ({"FG_SETP_S": "10"}, "FG_SETP_S: not a room setting"),
        ({"FG_QUEUE_AT_LOAD": "85"}, "FG_QUEUE_AT_LOAD='85': must be in [0.01, 1.0]"),
        ({"FG_DEMAND_FLOOR_PCT": "0.6667e3"}, "FG_DEMAND_FLOOR_PCT='0.6667e3': must be in"),
        ({"FG_STEP_S": "ten"}, "FG_STEP_S='ten': must be an integer"),
        ({"FG_REQUESTS_PER_INSTANCE_PER_S": "nan"}, "must be in [0.001"),
        ({"FG_ASG_NAME": ""}, "FG_ASG_NAME='': must not be empty"),
        ({"FG_ROOM_ID": "bad id"}, "FG_ROOM_ID='bad id': must match"),
        ({"FG_OPEN_BELOW_LOAD": "0.9"}, "FG_OPEN_BELOW_LOAD: must be below FG_QUEUE_AT_LOAD"),
        ({"FG_OPEN_BELOW_LOAD": "0.85"}, "FG_OPEN_BELOW_LOAD: must be below FG_QUEUE_AT_LOAD"),
        ({"FG_STEP_S": "61"}, "FG_STEP_S='61': must be in [1, 60]"),
    ],
)
def test_config_from_env_refuses_what_the_room_cannot_run_on(change, message) -> None:
    """No defaults: a missing, misspelt or out-of-range variable stops the cold start, named."""
    env = {**TEST_ENV, "FG_TABLE": "t", **change}
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_env({k: v for k, v in env.items() if v is not None})


def test_config_reports_every_problem_at_once() -> None:
    env = {k: v for k, v in TEST_ENV.items() if k not in ("FG_STEP_S", "FG_CALM_S")}
    with pytest.raises(ConfigError, match=r"FG_TABLE: missing; .*FG_STEP_S: missing; .*FG_CALM_S"):
        Config.from_env(env)


def test_throttled_queue_api_answers_429_json_never_5xx(room, monkeypatch) -> None:
    """A 5xx would be replaced by CloudFront's HTML high-demand page, cached for every poller."""

    def throttled(*_args, **_kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "PutItem",
        )

    monkeypatch.setattr(room_module.Room, "join", throttled)
    answer = handlers.join(via_edge(), None, room)
    assert answer["statusCode"] == 429
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["headers"]["retry-after"] == str(handlers.OVERLOAD_RETRY_S)
    assert answer["headers"]["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "failure",
    [
        ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutItem"),
        KeyError("order"),
        RoomError(503, "throttled", "DynamoDB kept keys unprocessed"),
    ],
    ids=["client-error", "bug", "room-503"],
)
def test_a_fault_answers_429_json_and_is_logged_for_the_fault_alarm(
    room, monkeypatch, capsys, failure
) -> None:
    """Never a 5xx: API Gateway would answer a crash with its own 500, and CloudFront would
    turn it into the HTML page; the fault alarm counts the logged line instead."""

    def broken(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(room_module.Room, "status", broken)
    answer = handlers.status(via_edge(cookies=["fg_visitor=abc"]), None, room)
    assert answer["statusCode"] == 429
    assert json.loads(answer["body"])["retry_after_s"] == handlers.OVERLOAD_RETRY_S
    assert answer["headers"]["retry-after"] == str(handlers.OVERLOAD_RETRY_S)
    logged = capsys.readouterr().out
    assert (handlers.FAULT_LOG in logged) == (not isinstance(failure, RoomError))


def test_the_room_item_is_read_once_a_second_per_container(room, monkeypatch) -> None:
    """Every join and poll needs the room item: read by each, it is one hot key past
    DynamoDB's 3,000 read units/s per partition. A container reuses it for room_cache_s."""
    cached = replace(room, config=replace(room.config, room_cache_s=1.0))
    visitors = [room.join(None, T0)["visitor"] for _ in range(3)]
    reads: list[str] = []
    batch_get = cached.dynamodb.batch_get_item

    def counting(RequestItems):  # noqa: N803 - boto3's name
        reads.extend(k["pk"] for k in RequestItems[room.config.table]["Keys"])
        return batch_get(RequestItems=RequestItems)

    monkeypatch.setattr(cached.dynamodb, "batch_get_item", counting)
    for i in range(20):
        assert cached.status(visitors[i % 3], T0 + i * 0.04)["state"] == "queue"
    assert reads.count("room") == 1
    admin.pin(room, "open", T0 + 0.9)
    assert cached.status(visitors[0], T0 + 0.95)["state"] == "queue", "a second late at most"
    assert cached.status(visitors[0], T0 + 1.0)["state"] == "open"
    assert reads.count("room") == 2


def test_inlet_starts_no_step_past_its_deadline(room) -> None:
    """The schedule fires every 60 s with reserved concurrency 1: an overrun throttles the
    next run, so the run stops stepping before the Lambda timeout."""
    now = [T0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    reports = inlet.run(room, clock=lambda: now[0], sleep=sleep, deadline=T0 + 35)
    assert len(reports) == 4, "steps at +0, +10, +20, +30; +40 would pass the deadline"
    assert now[0] <= T0 + 35
    full = inlet.run(room, clock=lambda: now[0], sleep=sleep)
    assert len(full) == 60 // room.config.step_s
