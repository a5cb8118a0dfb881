"""Metering (issue 27): while the room is open, newcomers' page loads come through the join
(functions/edge/gate.js, tests/edge/meter.test.mjs), which admits them at once within the free
capacity the inlet offered for its step; the room queues at the next step once they used it up,
seconds into a surge, not a minute later from the load balancer's figures."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from functions.admission import admin, handlers, inlet, tokens
from functions.admission.room import METER_TRIES, Room, RoomError
from tests.functions.room_fixtures import T0, via_edge

HOME = "198.51.100.11"


@pytest.fixture
def metered(room: Room) -> Room:
    """The conftest room (2 instances x 5 people: capacity 10), open and metering."""
    room.config = replace(room.config, meter=1, max_admit_per_s=100)
    admin.pin(room, "open", T0)
    admin.pin(room, None, T0)
    return room


def newcomer(room: Room, at: float, address: str = HOME) -> dict:
    return room.join(None, at, address)


def test_newcomers_get_in_at_once_up_to_the_free_capacity_then_are_told_to_retry(
    metered,
) -> None:
    random.seed(27)  # the same counter picks every run
    report = inlet.step(metered, T0 + 10)
    assert (report["state"], report["allowance"]) == ("open", 10)
    kvs = json.loads(metered.kvs.data["room"])
    assert (kvs["state"], kvs["meter"]) == ("open", True)
    # Distinct addresses (the per-address limit is not what is tested here).
    admitted, refused = [], 0
    for n in range(30):
        try:
            admitted.append((n, newcomer(metered, T0 + 11, f"198.51.{n}.7")))
        except RoomError as error:
            assert error.status == 429 and error.code == "metered"
            refused += 1
    assert 10 - METER_TRIES <= len(admitted) <= 10 and refused == 30 - len(admitted)
    for n, answer in admitted:
        network = tokens.network_id(metered.config.room_id, f"198.51.{n}.7")
        assert answer["admitted"] and answer["metered"]
        assert answer["token"].split(".")[5] == network, "a v2 token: only from its network"
    assert metered.metered(int(T0 + 10)) == len(admitted)
    # The next step sees the allowance used up: queueing, seconds after the crowd began.
    after = inlet.step(metered, T0 + 20)
    assert after["state"] == "queue"
    assert json.loads(metered.kvs.data["room"])["meter"] is False


def test_a_step_offers_what_it_would_admit_less_who_is_inside(metered) -> None:
    inlet.step(metered, T0 + 10)
    for n in range(4):
        newcomer(metered, T0 + 11, f"203.0.{n}.1")
    report = inlet.step(metered, T0 + 20)
    # 4 collected tokens inside: 10 - 4 = 6; they did not use the 10 up, so still open.
    assert (report["state"], report["allowance"]) == ("open", 6)


def test_people_let_in_since_the_load_minute_count_on_top_of_it(metered) -> None:
    """Catches the larger of the tokens and a stale load taken for who is inside: the load
    balancer's minute says 4 people (40 % of 10) and stays the same for a minute or two; the
    one let in during its minute is at most partly in it and the 3 after it not at all: the
    steps offer 10 - 4 - 1 = 5, then 10 - 4 - 4 = 2, not 10 - 4 each time."""
    tg, lb = "targetgroup/web/metered", "app/web/metered"
    metered.config = replace(metered.config, target_group=tg, load_balancer=lb)
    minute = T0 - T0 % 60 + 60
    for metric, dims, value in (
        ("RequestCount", {"TargetGroup": tg, "LoadBalancer": lb}, 0.4 * 150 * 60 * 2),
        ("RequestCountPerTarget", {"TargetGroup": tg}, 0.4 * 150 * 60),
    ):
        metered.cloudwatch.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    "Value": value,
                    "Timestamp": datetime.fromtimestamp(minute - 60, UTC),
                }
            ],
        )
    assert inlet.step(metered, minute - 40)["allowance"] == 6
    newcomer(metered, minute - 30, "203.0.9.1")  # during the load's minute: at most partly in it
    first = inlet.step(metered, minute + 10)
    assert (first["state"], first["allowance"]) == ("open", 5)
    for n in range(3):
        newcomer(metered, minute + 11, f"203.0.{n}.1")
    second = inlet.step(metered, minute + 20)
    assert (second["state"], second["allowance"]) == ("open", 2)


def test_tokens_count_by_the_chance_their_holders_are_still_inside(metered) -> None:
    """Catches a plain count of the session's tokens: after a crowd, it reads everyone who came
    within the session as still there and keeps the fleet scaling out (prod's flash crowd:
    peak 1.8x what the demand needed); and a window of one visit, which reads a steady flow's
    people inside at 63 %. Visits average session_s (1,200 s here): tokens count for
    SESSION_SPAN (3) visits, so 1,000 of a minute 61 minutes back are past the window; 1,000
    from 21 minutes back count exp(-1.05), from 10 minutes back exp(-0.5), this minute's 1."""
    now = T0 - T0 % 60 + 30
    for ago, n in ((3_660, 1_000), (1_260, 1_000), (600, 1_000), (0, 1_000)):
        minute = int(now - ago) // 60
        metered.table.put_item(Item={"pk": f"collected#{minute}#0", "n": n})
    sessions = inlet._sessions(metered, metered.state(), now, None)
    assert sessions.staying == pytest.approx(1_000 * (math.exp(-1.05) + math.exp(-0.5) + 1), abs=2)


def test_an_allowance_split_over_shards_fills_and_never_admits_more_than_offered(metered) -> None:
    random.seed(27)  # the join picks its first counter at random: the same picks every run
    metered.config = replace(metered.config, sessions_per_instance=150)  # capacity 300
    inlet.step(metered, T0 + 10)
    assert metered.state()["allowance"] == 300
    got = 0
    for n in range(600):
        try:
            newcomer(metered, T0 + 11, f"10.{n // 250}.{n % 250}.9")
            got += 1
        except RoomError:
            pass
    assert metered.metered(int(T0 + 10)) == got
    assert 300 - METER_TRIES <= got <= 300, "full, within a few places"


def test_an_unmetered_or_queueing_room_takes_no_metered_admission(room) -> None:
    assert room.join(None, T0 + 1, HOME).get("metered") is None  # queueing: a place in line
    admin.pin(room, "open", T0)
    admin.pin(room, None, T0)
    inlet.step(room, T0 + 10)
    assert room.join(None, T0 + 11, HOME) == {"state": "open"}  # FG_METER 0


def test_the_handler_sets_the_token_or_answers_429_with_retry_after(metered, monkeypatch) -> None:
    monkeypatch.setattr(handlers, "clock", lambda: T0 + 11)
    inlet.step(metered, T0 + 10)
    answer = handlers.join(via_edge(), None, metered)
    assert answer["statusCode"] == 200
    assert any(c.startswith("fg_admit=v2.") for c in answer["cookies"])
    assert json.loads(answer["body"])["admitted"] is True
    metered.config = replace(metered.config, sessions_per_instance=1)  # capacity 2, 1 inside
    assert inlet.step(metered, T0 + 20)["allowance"] == 1
    one = handlers.join(
        via_edge(headers={"cloudfront-viewer-address": "198.51.7.1:1"}), None, metered
    )
    refused = handlers.join(
        via_edge(headers={"cloudfront-viewer-address": "198.51.8.1:1"}), None, metered
    )
    assert one["statusCode"] == 200
    assert refused["statusCode"] == 429 and "retry-after" in refused["headers"]
    assert json.loads(refused["body"])["error"] == "metered"


def test_an_ipv6_newcomer_is_metered_in(metered) -> None:
    """The join counts IPv6 viewers by their /48 (room.viewer_address): the network of a token
    or session must come out of that form too, or every IPv6 visitor is refused for ever."""
    inlet.step(metered, T0 + 10)
    answer = handlers.join(
        via_edge(headers={"cloudfront-viewer-address": "2001:db8:1:2::7:443"}), None, metered
    )
    assert answer["statusCode"] == 200, answer["body"]
    token = next(c for c in answer["cookies"] if c.startswith("fg_admit="))
    assert token.split(";")[0].split(".")[5] == tokens.network_id(
        metered.config.room_id, "2001:db8:1:ffff::1"
    ), "the /48's id, as the gate computes it from the viewer's own address"


def test_a_room_pinned_open_meters_nobody(metered) -> None:
    admin.pin(metered, "open", T0 + 5)
    report = inlet.step(metered, T0 + 10)
    assert report["allowance"] == 0
    assert json.loads(metered.kvs.data["room"])["meter"] is False
    assert newcomer(metered, T0 + 11) == {"state": "open"}


def test_a_stopped_inlet_never_holds_the_portal_shut(metered, capsys) -> None:
    metered.config = replace(metered.config, sessions_per_instance=1)  # capacity 2
    inlet.step(metered, T0 + 10)
    for n in range(2):
        newcomer(metered, T0 + 11, f"198.51.{n}.7")
    with pytest.raises(RoomError):
        newcomer(metered, T0 + 12, "198.51.9.7")
    # No step since: three steps on, the allowance is stale and everyone is let in, logged.
    late = T0 + 10 + 3 * metered.config.step_s + metered.config.room_cache_s + 1
    assert newcomer(metered, late, "198.51.9.7")["admitted"] is True
    assert '"meter": "stale"' in capsys.readouterr().out


def test_a_room_that_opens_offers_its_free_capacity_in_the_same_step(room) -> None:
    room.config = replace(room.config, meter=1, calm_s=0, drain_s=0)
    report = inlet.step(room, T0 + 10)  # queueing, nobody waiting, calm: opens
    assert report["state"] == "open" and report["allowance"] == 10
    assert newcomer(room, T0 + 11)["admitted"] is True


def test_a_revoked_network_is_not_metered_back_in(metered) -> None:
    admin.revoke(metered, tokens.network_id(metered.config.room_id, HOME), T0)
    inlet.step(metered, T0 + 10)
    with pytest.raises(RoomError) as refused:
        newcomer(metered, T0 + 11)
    assert (refused.value.status, refused.value.code) == (403, "revoked")


def test_metered_joins_take_no_place_so_a_shared_address_is_not_limited(metered) -> None:
    """An office or carrier NAT sends many newcomers from one address on an ordinary night."""
    metered.config = replace(metered.config, sessions_per_instance=50)  # capacity 100
    inlet.step(metered, T0 + 10)
    limit = metered.config.joins_per_address_per_min
    got = [newcomer(metered, T0 + 11 + n * 0.1)["admitted"] for n in range(limit + 5)]
    assert all(got)
