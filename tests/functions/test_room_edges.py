"""The room at its edges (issue 25): each boundary, list and retry a plausible slip would break
unnoticed. Figures are stated here, from AWS or from the room's documented settings
(tests/functions/room_fixtures.TEST_ENV), never read back from the module under test."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.admission import admin, handlers, inlet, tokens
from functions.admission import room as room_module
from functions.admission.inlet import Fleet, Sessions, admit_budget, next_state
from functions.admission.room import Room
from tests.functions.room_fixtures import (
    ALARM,
    T0,
    config_for_tests,
    items,
    join_many,
    origin_alarm,
    set_alarm,
    via_edge,
)

TOKEN_TTL_S = 7_200
"""FG_TOKEN_TTL_S in TEST_ENV: how long an admission token lives."""
PLACES_PER_CELL = 1_000_000
"""A (second, shard) join counter numbers at most a million visitors (room.py's docstring)."""


def order_of(room: Room, visitor: str) -> int:
    return int(next(items(room, f"visitor#{visitor}"))["order"])


# -- admissions and tokens -----------------------------------------------------------------


def test_an_admission_lapses_at_the_very_second_its_token_expires(room) -> None:
    """Catches `<` for `<=` in the lapse check: at the token's expiry second the token no longer
    verifies, so the poll must requeue the visitor, not hand back a dead token."""
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    admitted = room.status(visitor, T0 + 11)
    expiry = int(T0) + 11 + TOKEN_TTL_S
    assert admitted["token_expires_at"] == expiry
    assert tokens.verify(admitted["token"], "election-2028", expiry, {"k0": "ab" * 32}) is None
    assert room.status(visitor, expiry - 1)["admitted"] is True, "a second before: still in"
    at_expiry = room.status(visitor, expiry)
    assert at_expiry.get("requeued") is True and "token" not in at_expiry


def test_the_last_place_of_a_join_counter_is_given(room) -> None:
    """Catches `>=` for `>` against the million places of a (second, shard) counter: the
    millionth join of a cell gets its place, the cell's last order."""
    second = int(T0) + 1
    for shard in range(32):  # every shard one short of full, whichever the join picks
        room.table.put_item(Item={"pk": f"count#{second}#{shard}", "n": PLACES_PER_CELL - 1})
    last = room.join(None, second + 0.5)
    assert last["state"] == "queue" and last["admitted"] is False
    order = order_of(room, last["visitor"])
    assert order % PLACES_PER_CELL == PLACES_PER_CELL - 1, "the cell's last order"
    assert order // PLACES_PER_CELL // 32 == second


def test_a_join_past_a_full_counter_is_refused_429_over_http(room, monkeypatch) -> None:
    """Catches a full cell taking a join past its million (its order would land in the next
    shard's cell) or answering anything but busy: 429 with Retry-After, never a 5xx, which
    CloudFront would turn into its HTML page."""
    second = int(T0) + 1
    for shard in range(32):
        room.table.put_item(Item={"pk": f"count#{second}#{shard}", "n": PLACES_PER_CELL})
    monkeypatch.setattr(handlers, "clock", lambda: second + 0.5)
    answer = handlers.join(via_edge(), None, room)
    assert (answer["statusCode"], answer["headers"]["retry-after"]) == (429, "10")
    assert answer["cookies"] == [], "no id, no place"


def test_a_lost_place_in_the_last_sealed_second_is_requeued(room) -> None:
    """Catches `<` for `<=` in "is this second sealed": a visitor whose place item never got
    written, in the very second the inlet sealed last, is a hole the inlet passes; waiting on
    it as "in flight" would leave them behind."""
    visitor = join_many(room, 1)[0]
    order = order_of(room, visitor)
    room.table.delete_item(Key={"pk": f"place#{order}"})  # the join failed half-way
    joined_second = int(T0) + 1
    inlet.step(room, joined_second + 5)  # seals up to now - 5 s: exactly that second
    assert room.state()["sealed_through"] == joined_second
    answer = room.status(visitor, joined_second + 6)
    assert answer.get("requeued") is True
    assert order_of(room, visitor) != order


def test_a_revocation_lasts_as_long_as_a_token_issued_at_that_moment(room) -> None:
    """Catches a revocation shorter than a token's life: a token collected just before the
    revocation lives TOKEN_TTL_S more, and the edge must refuse it until then."""
    visitor = join_many(room, 1)[0]
    inlet.step(room, T0 + 10)
    token_expiry = room.status(visitor, T0 + 12)["token_expires_at"]
    admin.revoke(room, visitor, T0 + 12)
    assert room.kvs is not None
    assert int(room.kvs.items()[f"revoked.{visitor}"]) >= token_expiry
    # As long as the longer of a token and a session's absolute life (a carried visitor's
    # carry record lives that long): 14,400 s here.
    life = max(TOKEN_TTL_S, room.config.session_max_s)
    assert room.revocations(T0 + 12 + life - 1) == {visitor: int(T0) + 12 + life}


# -- signing keys and origin secrets --------------------------------------------------------


def test_two_rotations_in_one_second_are_refused_not_merged(room) -> None:
    """Catches a second rotation in the same second replacing the key just made: tokens it
    signed a moment ago would stop verifying. The second is refused (409), the first kept."""
    first = admin.rotate(room, T0 + 10)["current_key"]
    key = room.signing_keys(T0 + 10)["keys"][first]["key"]
    with pytest.raises(room_module.RoomError) as refused:
        admin.rotate(room, T0 + 10.5)
    assert refused.value.status == 409
    keys = room.signing_keys(T0 + 10.5)
    assert keys["current"] == first and keys["keys"][first]["key"] == key


def test_the_origin_secret_cache_expires(room) -> None:
    """Catches a container keeping the origin-verify values for ever: after the edge switched
    to a new value (a rotation of the secret), every container accepts it within 60 s."""
    before = handlers.join(via_edge(headers={"x-floodgate-origin-verify": "new-value"}), None, room)
    assert before["statusCode"] == 403
    room.secrets.put_secret_value(
        SecretId=room.config.origin_secret_id, SecretString="edge-secret-a,new-value"
    )
    assert "new-value" not in room.origin_secrets(room._origin[0] + 59), "cached"
    assert "new-value" in room.origin_secrets(room._origin[0] + 61)


# -- revocations that expire ----------------------------------------------------------------


def test_a_renewed_revocation_in_one_shard_never_stops_the_others_being_dropped(
    room, monkeypatch
) -> None:
    """Catches a `return` where the loop should go on: one shard's conditional removal fails
    (its revocation was renewed meanwhile); the expired ones in every other shard still go."""
    visitors = [f"visitor-{i:02d}" for i in range(40)]  # spread over the 16 shards
    for visitor in visitors:
        room.revoke(visitor, int(T0) + 5)
    update_item, raced = room.table.update_item, []

    def renewed_meanwhile(**kwargs: Any) -> Any:
        if not raced and kwargs.get("UpdateExpression", "").startswith("REMOVE"):
            raced.append((kwargs["Key"]["pk"], kwargs["ExpressionAttributeNames"]["#v0"]))
            room.revoke(raced[0][1], int(T0) + 3_600)  # an operator renews it in between
        return update_item(**kwargs)

    monkeypatch.setattr(room.table, "update_item", renewed_meanwhile)
    room.drop_expired_revocations(T0 + 10)
    left = {v for shard in items(room, "revoked#") for v in shard.get("revoked", {})}
    shard_of = {v: s["pk"] for s in items(room, "revoked#") for v in s.get("revoked", {})}
    (raced_shard, renewed), *_ = raced
    assert renewed in left
    assert {shard_of[v] for v in left} == {raced_shard}, "only the raced shard waits a run"


# -- the inlet's reading of the fleet -------------------------------------------------------


def test_only_healthy_in_service_instances_count_as_capacity(room, monkeypatch) -> None:
    """Catches the health check dropped: an instance Auto Scaling reports InService but
    Unhealthy (failing its ELB check, about to be replaced) serves nobody; nor do Pending or
    Terminating ones (Auto Scaling's LifecycleState and HealthStatus values)."""
    instances = [
        ("InService", "Healthy"),
        ("InService", "Unhealthy"),
        ("Pending", "Healthy"),
        ("Terminating", "Healthy"),
        ("InService", "Healthy"),
    ]
    answer = {
        "AutoScalingGroups": [
            {
                "Instances": [
                    {"InstanceId": f"i-{n}", "LifecycleState": life, "HealthStatus": health}
                    for n, (life, health) in enumerate(instances)
                ]
            }
        ]
    }
    monkeypatch.setattr(room.autoscaling, "describe_auto_scaling_groups", lambda **_: answer)
    assert inlet.read_fleet(room, T0).in_service == 2


def test_the_origin_load_is_the_latest_minute_not_an_older_one(room) -> None:
    """Catches the oldest (or first returned) datapoint read: of the three minutes asked for,
    the load is the last one's, here 10 % after a 90 % minute."""
    target_group = "targetgroup/web/latest-minute"
    room.config = replace(room.config, target_group=target_group)
    for at, share in ((T0 - 150, 0.9), (T0 - 30, 0.1)):
        room.cloudwatch.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {
                    "MetricName": "RequestCountPerTarget",
                    "Dimensions": [{"Name": "TargetGroup", "Value": target_group}],
                    "Value": share * 150 * 60,  # of 150 requests/s per instance, for a minute
                    "Timestamp": datetime.fromtimestamp(at, UTC),
                }
            ],
        )
    assert inlet.read_fleet(room, T0).load == pytest.approx(0.1)


@pytest.mark.parametrize("firing", [0, 1])
def test_any_one_origin_alarm_pauses_admissions(room, firing) -> None:
    """Catches `all` for `any` over the alarm names: with two origin 5xx alarms, either one in
    ALARM alone pauses the inlet."""
    other = f"other-5xx-{firing}"
    origin_alarm(room.cloudwatch, other, "HTTPCode_ELB_5XX_Count")
    room.config = replace(room.config, alarm_names=f"{ALARM},{other}")
    names = [ALARM, other]
    set_alarm(room, "OK")
    room.cloudwatch.set_alarm_state(AlarmName=other, StateValue="OK", StateReason="test")
    room.cloudwatch.set_alarm_state(AlarmName=names[firing], StateValue="ALARM", StateReason="t")
    join_many(room, 3)
    report = inlet.step(room, T0 + 10)
    assert (report["alarm"], report["admitted"]) == (True, 0)


# -- the inlet's arithmetic at its boundaries ----------------------------------------------

CONFIG = config_for_tests(sessions_per_instance=5, max_admit_per_s=100, step_s=10)
"""2 instances x 5 sessions: capacity 10; TEST_ENV: queue at 0.85, open at or below 0.6,
calm 600 s, drain 120 s."""
NOW = 10_000.0


def test_a_fraction_of_a_busy_session_counts_as_a_whole_one() -> None:
    """Catches the load rounded down: 41 % of 10 sessions is 4.1 people inside, so only 5 of
    the 10 places are free (rounding down would admit a sixth the fleet cannot serve)."""
    fleet = Fleet(in_service=2, load=0.41, alarm=False)
    assert admit_budget(CONFIG, fleet, Sessions(0, 0, 0)) == 5


def test_an_open_room_queues_when_the_load_reaches_the_threshold_exactly() -> None:
    """Catches `>` for `>=`: "switch open -> queue when origin load reaches" 85 %."""
    room = {"state": "open", "pinned": None, "calm_since": None}
    at = next_state(CONFIG, room, Fleet(2, 0.85, False), 0, False, NOW)
    below = next_state(CONFIG, room, Fleet(2, 0.84, False), 0, False, NOW)
    assert (at[0], below[0]) == ("queue", "open")


def test_a_queueing_room_may_open_at_exactly_the_open_below_load() -> None:
    """Catches `<` for `<=`: "may open once origin load is at or below" 60 %."""
    room = {"state": "queue", "pinned": None, "calm_since": NOW - 600}
    assert next_state(CONFIG, room, Fleet(2, 0.6, False), 0, False, NOW)[0] == "open"
    assert next_state(CONFIG, room, Fleet(2, 0.61, False), 0, False, NOW)[0] == "queue"


def test_a_poller_seen_exactly_abandon_after_s_ago_is_still_let_in() -> None:
    """Catches `>=` for `>`: the abandon window (90 s) is inclusive; a second more and the
    place is passed over as left."""
    kept = inlet.walk([(1, {"seen_at": NOW - 90})], 1, NOW, abandon_after_s=90)
    left = inlet.walk([(1, {"seen_at": NOW - 91})], 1, NOW, abandon_after_s=90)
    assert (kept.admitted, kept.skipped) == (1, [])
    assert (left.admitted, left.skipped) == (0, [1])


# -- DynamoDB throttling -------------------------------------------------------------------


def test_unprocessed_keys_are_read_again_so_a_throttled_seal_loses_nobody(
    room, monkeypatch
) -> None:
    """Catches UnprocessedKeys dropped: DynamoDB's BatchGetItem may return some keys
    unprocessed under load ("Your application must retry ... UnprocessedKeys", BatchGetItem,
    Amazon DynamoDB API Reference). Read as absent, a second's join counters would seal as
    empty and everyone who joined in it would be lost."""
    visitors = join_many(room, 5)
    batch_get, throttled = room.dynamodb.batch_get_item, []

    def unprocessed_once(RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        keys = RequestItems[room.config.table]["Keys"]
        if not throttled and any(k["pk"].startswith("count#") for k in keys):
            throttled.append(len(keys))
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        return batch_get(RequestItems=RequestItems)

    monkeypatch.setattr(room.dynamodb, "batch_get_item", unprocessed_once)
    monkeypatch.setattr(room_module.time, "sleep", lambda _s: None)
    inlet.step(room, T0 + 10)
    assert throttled, "the seal's read was throttled once"
    assert room.state()["total_places"] == 5
    assert sorted(room.status(v, T0 + 11)["place"] for v in visitors) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",  # DynamoDB
        "RequestLimitExceeded",  # DynamoDB: the account's throughput quota
        "ThrottlingException",  # DynamoDB control plane, Secrets Manager
        "TooManyRequestsException",  # Lambda
    ],
)
def test_every_throttling_error_is_busy_not_a_fault(room, monkeypatch, capsys, code) -> None:
    """Catches a throttling code dropped from the handlers' list: it would be logged as a
    fault and fire the fault alarm at the height of the night; throttling is overload."""

    def throttled(*_args: Any, **_kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": code, "Message": "slow down"}}, "GetItem")

    monkeypatch.setattr(room_module.Room, "status", throttled)
    answer = handlers.status(via_edge(cookies=["fg_visitor=abc"]), None, room)
    assert answer["statusCode"] == 429
    logged = capsys.readouterr().out
    assert handlers.FAULT_LOG not in logged and code in logged


# -- what the room item's history keeps -------------------------------------------------------


def test_the_pace_is_kept_for_its_five_minute_window_whatever_the_session_length(
    room,
) -> None:
    """Catches the rate window dropped from what the history keeps: with one-minute sessions
    and no-show windows, the 10 admitted two minutes ago still make the pace (10 over the 120 s
    since: 5 a minute), or the page shows no wait and the room cannot tell its line drains."""
    room.config = replace(room.config, session_s=60, show_s=60)
    visitors = join_many(room, 30)
    assert inlet.step(room, T0 + 10)["admitted"] == 10
    set_alarm(room, "ALARM")  # nothing more admitted: only the history makes the pace
    inlet.step(room, T0 + 130)
    assert room.status(visitors[-1], T0 + 130)["rate_per_min"] == 5.0


def test_no_shows_count_for_the_whole_show_window_past_five_minutes(room) -> None:
    """Catches the show window dropped from what the history keeps: with show_s at 600 s
    (planning allows up to 900), ten admitted people who have not collected yet still hold
    their seats 400 s later, though the pace window (300 s) has passed."""
    room.config = replace(room.config, session_s=60, show_s=600)
    visitors = join_many(room, 20)
    assert inlet.step(room, T0 + 10)["admitted"] == 10
    cursor = room.state()["cursor_order"]
    waiting = [v for v in visitors if order_of(room, v) > cursor]
    for at in (T0 + 360, T0 + 410):  # a step past the pace window, then another
        for v in waiting:
            room.status(v, at - 1)  # the ten behind keep polling
        assert inlet.step(room, at)["admitted"] == 0, "the ten admitted may still come"


def test_no_shows_still_hold_their_seats_at_exactly_show_s(room) -> None:
    """Catches `<` for `<=` on show_s (120 s): admitted at T, not collected, they count until
    T + 120 s inclusive; a second later they are no-shows and their seats are freed."""
    visitors = join_many(room, 20)
    assert inlet.step(room, T0 + 10)["admitted"] == 10
    cursor = room.state()["cursor_order"]
    waiting = [v for v in visitors if order_of(room, v) > cursor]
    for v in waiting:
        room.status(v, T0 + 129)
    assert inlet.step(room, T0 + 130)["admitted"] == 0
