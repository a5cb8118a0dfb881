"""The room against clients that do not play fair (issue 14): around CloudFront, floods from one
address, many revocations, and the races and edges no other test reached."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import boto3
import pytest

from functions.admission import admin, handlers, inlet, tokens
from functions.admission.room import REVOKED_SHARDS, Room, RoomError, viewer_address
from tests.functions.room_fixtures import (
    ORIGIN_SECRET,
    REGION,
    T0,
    items,
    join_many,
    via_edge,
)
from tests.moto_server import atomic_item_writes


def counted(room: Room) -> int:
    """Sequence numbers handed out by the join counters (every place ever taken)."""
    return sum(int(i["n"]) for i in items(room, "count#"))


# -- around CloudFront (item 2) -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-floodgate-origin-verify": ""},
        {"x-floodgate-origin-verify": ORIGIN_SECRET + "x"},
        {"x-floodgate-origin-verify": ORIGIN_SECRET[:-1]},
    ],
)
def test_a_request_around_cloudfront_is_refused_before_any_write(room, headers) -> None:
    """The execute-api endpoint is public: without CloudFront's value the handlers answer 403
    and take no place."""
    event = {"cookies": [], "headers": headers}
    before = counted(room)
    for handler, extra in ((handlers.join, {}), (handlers.status, {}),
                           (handlers.status, {"routeKey": "GET /queue/room"})):  # fmt: skip
        answer = handler({**event, **extra}, None, room)
        assert answer["statusCode"] == 403 and json.loads(answer["body"])["error"] == "direct"
    assert counted(room) == before


def test_either_origin_secret_slot_is_accepted(room) -> None:
    """Two slots: a rotation switches CloudFront to the idle one while both are accepted."""
    for value in (ORIGIN_SECRET, "edge-secret-b"):
        answer = handlers.join(via_edge(headers={"x-floodgate-origin-verify": value}), None, room)
        assert answer["statusCode"] == 200


# -- floods from one address (item 3) -------------------------------------------------------


def join_from(room: Room, address: str, at: float = T0 + 1) -> dict:
    return handlers.join(via_edge(headers={"cloudfront-viewer-address": address}), None, room)


def test_one_address_takes_at_most_its_share_of_new_places_a_minute(room, monkeypatch) -> None:
    room.config = replace(room.config, joins_per_address_per_min=3)
    monkeypatch.setattr(handlers, "clock", lambda: T0 + 1)
    first = [join_from(room, "203.0.113.9:4431") for _ in range(3)]
    assert [a["statusCode"] for a in first] == [200, 200, 200]
    refused = join_from(room, "203.0.113.9:5123")  # another port, the same address
    assert refused["statusCode"] == 429 and refused["headers"]["retry-after"] == "10"
    assert refused["cookies"] == [], "no id, no place"
    assert counted(room) == 3
    assert join_from(room, "203.0.113.10:4431")["statusCode"] == 200, "a neighbour is not held"
    cookie = first[0]["cookies"][0].split(";")[0]
    again = handlers.join(
        via_edge([cookie], {"cloudfront-viewer-address": "203.0.113.9:1"}), None, room
    )
    assert again["statusCode"] == 200, "a visitor who already has a place is not counted"
    monkeypatch.setattr(handlers, "clock", lambda: T0 + 61)
    assert join_from(room, "203.0.113.9:4431")["statusCode"] == 200, "the next minute"


def test_an_ipv6_site_shares_one_count() -> None:
    """One subscriber or host commonly holds a /48 (RFC 6177 recommends /48 to /56 per site):
    counting /64s let 200 /64s of one /48 take 200 places in a second (issue 26)."""
    assert viewer_address("2001:db8:1:2:aaaa::1:443") == viewer_address("2001:db8:1:ffff::ffff:80")
    assert viewer_address("2001:db8:1:2::1:443") == "2001:db8:1::/48"
    assert viewer_address("2001:db8:2::1:443") != viewer_address("2001:db8:1::1:443")
    assert viewer_address("::ffff:198.51.100.7:443") == "198.51.100.7", "IPv4-mapped is IPv4"
    assert viewer_address("198.51.100.7:50123") == "198.51.100.7"
    assert viewer_address(None) is None and viewer_address("not an address") is None


def test_200_subnets_of_one_48_take_the_places_of_one_address(room) -> None:
    """Issue 26: 200 /64s of one /48 in one second took 200 places against a limit of 30."""
    taken = refused = 0
    for n in range(200):
        try:
            room.join(None, T0, viewer_address(f"2001:db8:7:{n:x}::1:443"))
            taken += 1
        except RoomError as error:
            assert error.status == 429
            refused += 1
    assert (taken, refused) == (room.config.joins_per_address_per_min, 170)


# -- revocations in their own items (item 10) ------------------------------------------------


def test_revocations_never_grow_the_room_item(room) -> None:
    """Kept in the room item, ~9,500 of them stopped the room from being saved."""
    size = len(json.dumps(room.state(), default=str))
    visitors = [f"visitor-{i:04d}" for i in range(160)]
    for visitor in visitors:
        room.revoke(visitor, int(T0) + 600)
    assert len(json.dumps(room.state(), default=str)) == size
    assert set(room.revocations(T0 + 6)) == set(visitors)
    shards = list(items(room, "revoked#"))
    assert len(shards) == REVOKED_SHARDS, "spread over every shard"
    assert max(len(s["revoked"]) for s in shards) < 160 / REVOKED_SHARDS * 2
    inlet.sync_kvs(room, T0 + 6)
    assert sum(k.startswith("revoked.") for k in room.kvs.data) == 160


def test_expired_revocations_leave_the_table_and_the_edge(room) -> None:
    early, late = join_many(room, 2)
    admin.revoke(room, early, T0 + 5)
    admin.revoke(room, late, T0 + 5 + 3_600)
    after = T0 + 5 + room.config.session_max_s + 1  # early's revocation has run out
    admin.revoke(room, late, T0 + 5 + 3_600)  # renewed: it lasts an hour longer than early's
    inlet.run(room, clock=lambda: after, sleep=lambda s: None, steps=1)
    left = {v for shard in items(room, "revoked#") for v in shard["revoked"]}
    assert left == {late}
    assert f"revoked.{early}" not in room.kvs.data and f"revoked.{late}" in room.kvs.data


def test_revocations_left_in_the_room_item_move_to_their_own_items(room) -> None:
    """A room saved by an earlier version keeps its revocations through the upgrade."""
    state = room.state()
    room.save({**state, "revoked": {"old-visitor": int(T0 + 600), "gone": int(T0 - 1)}})
    assert room.drop_expired_revocations(T0) == 0
    assert room.revocations(T0) == {"old-visitor": int(T0 + 600)}
    assert "revoked" not in room.state()


# -- races and edges no test reached --------------------------------------------------------


def test_a_second_join_by_the_same_visitor_takes_no_count_slot(room) -> None:
    visitor = join_many(room, 1)[0]
    before = counted(room)
    for at in (T0 + 2, T0 + 3):
        assert room.join(visitor, at)["visitor"] == visitor
    assert counted(room) == before


def test_two_concurrent_requeues_of_one_visitor_give_one_place(room, monkeypatch) -> None:
    """Two tabs polling at once after the visitor was passed: one new place, not two."""
    atomic_item_writes(monkeypatch.setattr)
    visitor = join_many(room, 1)[0]
    order = int(next(items(room, f"visitor#{visitor}"))["order"])
    room.table.update_item(
        Key={"pk": f"place#{order}"},
        UpdateExpression="SET skipped = :t",
        ExpressionAttributeValues={":t": True},
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: room.status(visitor, T0 + 20), range(2)))
    assert all(a["visitor"] == visitor for a in answers)
    mine = [p for p in items(room, "place#") if p["visitor"] == visitor]
    assert len(mine) == 2, "the old place and exactly one new one"
    new = int(next(items(room, f"visitor#{visitor}"))["order"])
    assert new != order and any(int(p["pk"].split("#")[1]) == new for p in mine)


def test_a_poll_between_a_requeues_two_writes_waits_for_its_place(room, monkeypatch) -> None:
    """The other tab's poll lands after the visitor item points at the new place and before the
    place item exists: in flight, not a hole to requeue from (that was a third place)."""
    visitor = join_many(room, 1)[0]
    order = int(next(items(room, f"visitor#{visitor}"))["order"])
    room.table.update_item(
        Key={"pk": f"place#{order}"},
        UpdateExpression="SET skipped = :t",
        ExpressionAttributeValues={":t": True},
    )
    put_item, between = room.table.put_item, []

    def place_written_late(**kwargs):
        if kwargs["Item"]["pk"].startswith("place#") and not between:
            between.append(None)
            between.append(room.status(visitor, T0 + 20))  # the other tab
        return put_item(**kwargs)

    monkeypatch.setattr(room.table, "put_item", place_written_late)
    first = room.status(visitor, T0 + 20)
    assert first["requeued"] is True
    assert between[1]["place"] is None and "requeued" not in between[1], "pending, not requeued"
    assert len([p for p in items(room, "place#") if p["visitor"] == visitor]) == 2


def test_a_join_never_lands_in_a_second_already_sealed(room) -> None:
    """A slow or clock-skewed join after the inlet sealed its second would sit past the tally
    and never be numbered: it goes to the first unsealed second."""
    join_many(room, 1)
    inlet.step(room, T0 + 20)
    sealed = int(room.state()["sealed_through"])
    late = room.join(None, T0 + 3)  # a clock 17 s behind
    second = int(next(items(room, f"visitor#{late['visitor']}"))["order"]) // 10**6 // 32
    assert second == sealed + 1
    inlet.step(room, sealed + 1 + 6)
    assert room.status(late["visitor"], sealed + 8)["place"] == 2


def test_retired_keys_leave_the_secret(room) -> None:
    signs_from = admin.rotate(room, T0 + 10)["signs_from"]
    later = signs_from + room.config.token_ttl_s + 1  # k0's tokens have all expired
    admin.rotate(room, later)
    stored = json.loads(
        room.secrets.get_secret_value(SecretId=room.config.secret_id)["SecretString"]
    )
    assert "k0" not in stored["keys"] and len(stored["keys"]) == 2


# -- the layers' contract: what the pre-scale job writes is what the inlet reads -------------


def test_the_calendar_the_prescale_job_writes_is_the_one_the_inlet_obeys(room) -> None:
    from dataclasses import replace as with_mode
    from datetime import UTC, datetime, timedelta

    from functions.prescale.levers import Clients, Targets, room_changes
    from planning.calendar import load_calendar
    from planning.event_plan import night_plan, plan_events
    from planning.settings import load_stack_settings

    prod, now = load_stack_settings("prod"), datetime(2028, 10, 20, tzinfo=UTC)
    plans = plan_events(load_calendar(), prod, "prod", now)
    election = next(p for p in plans if p.key.startswith("us-general-election"))
    queued = [with_mode(p, waiting_room="queue") if p is election else p for p in plans]
    # The job's own low-level clients (the room's DynamoDB is a resource: another encoding).
    autoscaling, elbv2, dynamodb = (
        boto3.client(s, region_name=REGION) for s in ("autoscaling", "elbv2", "dynamodb")
    )
    clients = Clients(autoscaling, elbv2, dynamodb)
    plan = night_plan(queued, prod, "prod")
    for change in room_changes(
        clients, Targets(asg_name="web", room_table=room.config.table), plan, now
    ):
        change.apply()

    def forced(at: datetime) -> bool:
        return inlet._forced_by_calendar(room, at.timestamp())

    second = timedelta(seconds=1)
    assert not forced(election.raise_at - second)
    assert forced(election.raise_at) and forced(election.restore_at - second)
    assert not forced(election.restore_at)
    others = [p for p in plans if p is not election]
    assert others and not any(forced(p.raise_at + second) for p in others), "armed: not forced"


# -- issue 26: sessions the room can end -----------------------------------------------------


def test_revoking_an_address_ends_its_networks_sessions_at_the_edge(room) -> None:
    """Sessions were bound to nothing, so `revoke` could not name one: now their visitor id is
    the network's, and revoking an address puts that id in the store for as long as any
    session or token could still pass."""
    out = admin.handle(room, {"action": "revoke", "address": "198.51.100.99"}, T0)
    network = tokens.network_id("election-2028", "198.51.100.11")
    assert out["visitor"] == network and out["network"] == "198.51.100"
    until = int(room.kvs.data[f"revoked.{network}"])
    assert until == int(T0) + 14_400, "the longer of token_ttl_s (7,200) and session_max_s"
    with pytest.raises(RoomError, match="must be an IPv4 or IPv6 address"):
        admin.handle(room, {"action": "revoke", "address": "not-an-ip"}, T0)


HOME = "198.51.100.11"


def session_for(room: Room, issued: float, address: str = HOME, **change: str) -> str:
    """A session as the gate stamps it for `address`, issued at `issued` and (renewed) valid
    until T0 + 1,200; `change` may name another `network_of` address, `room_id` or `key`, or
    make it `expired`."""
    keys = room.signing_keys(T0)
    kid: str = keys["current"]
    network = tokens.network_id("election-2028", change.get("network_of", address))
    assert network is not None
    expiry = int(T0) + (1 if "expired" in change else 1_200)
    key: str = change.get("key") or keys["keys"][kid]["key"]
    room_id = change.get("room_id", "election-2028")
    return tokens.sign_session(room_id, network, expiry, kid, key, int(issued))


def join_with(room: Room, cookie: str, address: str = HOME, at: float = T0 + 30) -> dict:
    """A join from the waiting page by someone holding session `cookie`: the answer's body,
    with the Set-Cookie headers under "set"."""
    event = via_edge(cookies=[f"fg_session={cookie}"],
                     headers={"cloudfront-viewer-address": f"{address}:443"})  # fmt: skip
    saved, handlers.clock = handlers.clock, lambda: at
    try:
        answer = handlers.join(event, None, room)
    finally:
        handlers.clock = saved
    assert answer["statusCode"] == 200, answer
    return {**json.loads(answer["body"]), "set": answer["cookies"]}


def test_an_ipv6_visitor_inside_when_queueing_began_is_carried_too(room) -> None:
    """The join sees an IPv6 viewer as its /48 (room.viewer_address); the session's network
    must be read from that form, or no IPv6 visitor was ever carried (they lost their visit to
    a place in line)."""
    address = "2001:db8:1:2::7"
    answer = join_with(room, session_for(room, T0 - 300, address=address), address=address)
    assert answer["admitted"] and answer["carried"], answer


def test_someone_inside_when_queueing_began_is_carried_in_once_as_a_counted_visitor(
    room,
) -> None:
    """Issue 26: a session is a claim to be carried, not a pass. The waiting page's join trades
    a session the gate issued before queueing began for an admission token at once (no place
    in line) for a visitor the room mints, the same visitor every time for that session."""
    cookie = session_for(room, T0 - 300)
    before = counted(room)
    first = join_with(room, cookie)
    assert first["admitted"] and first["carried"] and counted(room) == before, "no place taken"
    visitor = carried_visitor_of(room, first)
    assert visitor is not None and visitor != tokens.network_id("election-2028", HOME)
    [admit] = [c for c in first["set"] if c.startswith("fg_admit=v2.")]
    network = admit.split(";")[0].split(".")[5]
    assert network == tokens.network_id("election-2028", HOME), "honoured from its network only"
    assert first["token_expires_at"] == int(T0) + 30 + room.config.token_ttl_s
    again = join_with(room, cookie, at=T0 + 90)
    assert carried_visitor_of(room, again) == visitor, "one session, one visitor"
    renewed = session_for(room, T0 - 300)  # the gate's renewal keeps the issue time
    assert carried_visitor_of(room, join_with(room, renewed, at=T0 + 95)) == visitor
    late = join_with(room, session_for(room, T0 - 14_400 + 700), at=T0 + 600)
    assert late["token_expires_at"] == int(T0) + 700, "never past the session's absolute life"


def carried_visitor_of(room: Room, answer: dict) -> str | None:
    """The visitor of the admission token a carry set; None if the join gave a place."""
    if not answer.get("carried"):
        assert answer.get("admitted") is False and "ahead" in answer, answer
        return None
    [admit] = [c for c in answer["set"] if c.startswith("fg_admit=")]
    keys = room.signing_keys(T0)
    return tokens.verify(admit.split(";")[0].removeprefix("fg_admit="), "election-2028",
                         T0 + 1, {kid: e["key"] for kid, e in keys["keys"].items()})  # fmt: skip


@pytest.mark.parametrize(
    ("why", "issued", "address", "change"),
    [
        ("issued after queueing began", T0 + 1, HOME, {}),
        ("from another network", T0 - 300, "203.0.113.7", {"network_of": HOME}),
        ("signed by a key the room lacks", T0 - 300, HOME, {"key": "cd" * 32}),
        ("for another room", T0 - 300, HOME, {"room_id": "other-room"}),
        ("past its absolute life", T0 - 14_400 + 30, HOME, {}),
        ("expired", T0 - 300, HOME, {"expired": "yes"}),
    ],
)
def test_a_session_that_does_not_hold_gets_a_place_in_line(
    room, why, issued, address, change
) -> None:
    before = counted(room)
    answer = join_with(room, session_for(room, issued, **change), address=address)
    assert carried_visitor_of(room, answer) is None, why
    assert counted(room) == before + 1


def test_harvested_sessions_carry_a_bounded_number_per_network(room) -> None:
    """1,000 page fetches while open were 1,000 bypasses; now one network's sessions carry at
    most `carries_per_network` visitors per queueing period, and the rest queue."""
    room.config = replace(room.config, carries_per_network=4, joins_per_address_per_min=100)
    harvested = [session_for(room, T0 - 600 + i) for i in range(10)]
    answers = [join_with(room, cookie) for cookie in harvested]
    carried = [carried_visitor_of(room, a) for a in answers]
    assert len({v for v in carried if v}) == 4 and carried.count(None) == 6
    assert carried_visitor_of(room, join_with(room, harvested[0])) == carried[0], (
        "one already carried is carried again, not counted again"
    )


def test_revocation_ends_a_carried_visitor_and_their_network_carries_nobody(room) -> None:
    cookie = session_for(room, T0 - 300)
    visitor = carried_visitor_of(room, join_with(room, cookie))
    assert visitor is not None
    admin.handle(room, {"action": "revoke", "visitor": visitor}, T0 + 40)
    assert f"revoked.{visitor}" in room.kvs.data, "the gate refuses their token"
    assert carried_visitor_of(room, join_with(room, cookie, at=T0 + 50)) is None
    other = session_for(room, T0 - 200, address="198.51.100.200")
    admin.handle(room, {"action": "revoke", "address": HOME}, T0 + 60)
    assert carried_visitor_of(room, join_with(room, other, at=T0 + 70)) is None


def test_the_edge_learns_when_queueing_began(room) -> None:
    """The gate honours only sessions issued before queueing began: the room entry says when."""
    admin.pin(room, "open", T0)
    assert json.loads(room.kvs.data["room"])["queue_since"] == 0
    admin.pin(room, "queue", T0 + 5)
    entry = json.loads(room.kvs.data["room"])
    assert (entry["state"], entry["queue_since"]) == ("queue", int(T0) + 5)
    assert entry["session_max_s"] == 14_400
    admin.pin(room, "queue", T0 + 50)
    assert json.loads(room.kvs.data["room"])["queue_since"] == int(T0) + 5, "still the same queue"


@pytest.mark.parametrize(
    ("origin", "refused"),
    [
        ("https://evil.example", True),
        ("https://portal.example.ca.evil.example", True),
        ("http://portal.example.ca", True),  # the portal is served over HTTPS only
        ("null", True),  # a sandboxed frame or a redirect across origins
        ("https://portal.example.ca", False),
        ("HTTPS://PORTAL.EXAMPLE.CA", False),
    ],
)
def test_a_join_without_fetch_metadata_is_judged_by_its_origin(room, origin, refused) -> None:
    """Issue 26: a browser without Fetch Metadata sends no Sec-Fetch-Site, and Origin was never
    read, so another site's join was accepted."""
    answer = handlers.join(via_edge(headers={"origin": origin}), None, room)
    assert (answer["statusCode"] == 403) is refused, answer["body"]
    if refused:
        assert json.loads(answer["body"])["error"] == "cross-site"


def test_without_a_domain_only_a_distributions_own_name_may_join() -> None:
    """A stack without edge.domain_names is reached by its CloudFront name, which its functions
    cannot know (the distribution is declared after them): any distribution's name is allowed,
    nothing else."""
    assert not handlers.cross_site({"origin": "https://d111111abcdef8.cloudfront.net"}, "")
    assert handlers.cross_site({"origin": "https://evil.example"}, "")
    assert handlers.cross_site({"origin": "https://d1.cloudfront.net.evil.example"}, "")
    assert not handlers.cross_site({}, ""), "no Origin: not a browser's cross-site request"
    assert handlers.cross_site({"sec-fetch-site": "same-site", "origin": "https://x"}, "")
    assert not handlers.cross_site(
        {"sec-fetch-site": "same-origin", "origin": "https://evil.example"},
        "https://portal.example.ca",
    ), "Fetch Metadata, where a browser sends it, decides"


def test_a_next_key_the_secret_does_not_hold_is_refused(room) -> None:
    """A hand-edited secret naming a next key it lacks would sign with nothing: refused."""
    broken = {"current": "k0", "keys": {"k0": {"key": "ab" * 32}}, "next": {"kid": "k9", "at": 1}}
    room.secrets.put_secret_value(SecretId=room.config.secret_id, SecretString=json.dumps(broken))
    room._keys = None
    with pytest.raises(RoomError, match="next key is not one of its keys"):
        room.signing_keys(T0)


def test_a_stale_key_cache_never_puts_a_dropped_key_back_at_the_edge(room) -> None:
    """Review of issue 26: the inlet's container caches the secret for 60 s; syncing the edge
    from that copy just after an emergency rotation put the leaked key back and named it."""
    inlet.sync_kvs(room, T0)  # the inlet's container now holds the secret with k0 current
    other = replace(room, _keys=None, _room=None)  # the admin's container, its own cache
    new = admin.rotate(other, T0 + 5, emergency=True)["current_key"]
    inlet.sync_kvs(room, T0 + 10)  # within the inlet's 60 s cache
    assert "key.k0" not in room.kvs.data
    assert json.loads(room.kvs.data["room"])["kid"] == new


def test_an_old_key_outlives_the_sessions_it_signed(room) -> None:
    """Sessions signed with the old key until the inlet names the new one live session_s: with
    sessions longer than tokens, the old key stays for session_s after the switch, plus the
    inlet's minute."""
    room.config = replace(room.config, session_s=14_400, token_ttl_s=600)
    signs_from = admin.rotate(room, T0 + 12)["signs_from"]
    inlet.sync_kvs(room, signs_from + 14_400 + 59)
    assert "key.k0" in room.kvs.data
    inlet.sync_kvs(room, signs_from + 14_400 + 60)
    assert "key.k0" not in room.kvs.data


def test_a_room_queueing_since_before_queue_since_existed_gets_one(room) -> None:
    r = room.state()
    r.pop("queue_since", None)
    room.save(r)
    inlet.step(room, T0 + 30)
    assert room.state()["queue_since"] == int(T0) + 30
    inlet.sync_kvs(room, T0 + 31)
    assert json.loads(room.kvs.data["room"])["queue_since"] == int(T0) + 30


def test_a_scoped_address_is_no_network() -> None:
    assert tokens.network_prefix("fe80::1%eth0") is None
    assert tokens.network_id("r", "fe80::1%eth0") is None


def test_a_rotation_publishes_the_keys_it_wrote_not_a_stale_read_back(room, monkeypatch) -> None:
    """AWS documents no read-after-write consistency for GetSecretValue, so the rotation's own
    sync publishes what it wrote: an emergency drops the old key at once even if a read just
    after the write returned the version before it."""
    before = room.secrets.get_secret_value(SecretId=room.config.secret_id)
    monkeypatch.setattr(room.secrets, "get_secret_value", lambda **_: before)
    kid = admin.rotate(room, T0 + 5, emergency=True)["current_key"]
    assert {k for k in room.kvs.data if k.startswith("key.")} == {f"key.{kid}"}


def test_join_and_status_touch_only_the_keys_their_role_allows(room) -> None:
    """Moto ignores IAM: a key prefix the join or status function uses but its role's
    dynamodb:LeadingKeys condition (components/admission.py) lacks is AccessDenied in AWS and
    passes every other test. Every DynamoDB call the handlers make, through a join, a carry,
    a refused carry, polls and an admission, is recorded and held to the role's patterns
    (ForAllValues:StringLike: every key must match one; AWS, "Using IAM policy conditions for
    fine-grained access control")."""
    import fnmatch

    from components.admission import VISITOR_READS, VISITOR_WRITES

    touched: list[tuple[str, str]] = []
    recording = [True]

    def record(params: dict, model: object, **_: object) -> None:
        if not recording[0]:
            return
        operation = getattr(model, "name", "")
        keys = [params["Key"]] if "Key" in params else []
        keys += [params["Item"]] if "Item" in params else []
        for request in (params.get("RequestItems") or {}).values():
            keys += request.get("Keys", [])
        for key in keys:  # the resource layer's plain values, or the client's typed ones
            pk = key["pk"]
            touched.append((operation, pk["S"] if isinstance(pk, dict) else pk))

    events = room.dynamodb.meta.client.meta.events
    events.register("provide-client-params.dynamodb.*", record)
    try:
        admin.revoke(room, tokens.network_id("election-2028", "203.0.113.9"), T0)
        touched.clear()  # the admin function's own writes are not the visitor's
        join_with(room, session_for(room, T0 - 300))  # carried
        join_with(room, session_for(room, T0 + 5))  # refused: a place instead
        join_with(
            room, session_for(room, T0 - 300, address="203.0.113.9"), address="203.0.113.9"
        )  # fmt: skip  (a revoked network)
        visitor = join_many(room, 1)[0]
        recording[0] = False  # the inlet's own calls
        inlet.step(room, T0 + 20)
        recording[0] = True
        handlers.status(via_edge(cookies=[f"fg_visitor={visitor}"]), None, room)
        # Open and metering: a newcomer admitted at once (room.Room.meter).
        recording[0] = False
        room.config = replace(room.config, meter=1)
        admin.pin(room, "open", T0 + 30)
        admin.pin(room, None, T0 + 30)
        inlet.step(room, T0 + 40)
        recording[0] = True
        assert room.join(None, T0 + 41, "198.51.100.200")["metered"] is True
    finally:
        events.unregister("provide-client-params.dynamodb.*", record)
    reads = {"GetItem", "BatchGetItem"}
    assert {op for op, _ in touched} <= reads | {"PutItem", "UpdateItem"}, touched
    prefixes = {key.split("#")[0] for _, key in touched}
    assert {"carry", "carries", "revoked", "visitor", "place", "metered"} <= prefixes, prefixes
    for operation, key in touched:
        allowed = VISITOR_READS if operation in reads else VISITOR_WRITES
        assert any(fnmatch.fnmatchcase(key, p) for p in allowed), (operation, key)
