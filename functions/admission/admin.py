"""Operator actions on the room: pin or unpin its state, rotate the signing key, revoke a visitor.

Invoked directly with IAM (`lambda:InvokeFunction`, see the README's "Operating an event
night"), never over HTTP. Each action is idempotent and ends by syncing the CloudFront
KeyValueStore, so the edge follows within seconds.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from . import tokens
from .inlet import sync_kvs
from .room import KEY_PUBLISH_S, STATES, Room, RoomError, enter_queue

ACTIONS = ("show", "pin", "unpin", "rotate", "revoke")


def handle(room: Room, event: dict[str, Any], now: float) -> dict[str, Any]:
    """`{"action": "pin", "state": "queue"}`, `{"action": "revoke", "visitor": "..."}`,
    `{"action": "revoke", "address": "203.0.113.7"}` (that network's sessions), ..."""
    action = event.get("action")
    if action not in ACTIONS:
        raise RoomError(400, "action", f"action {action!r} is not one of {list(ACTIONS)}")
    if action == "pin":
        return pin(room, event.get("state"), now)
    if action == "unpin":
        return pin(room, None, now)
    if action == "rotate":
        return rotate(room, now, emergency=event.get("emergency") is True)
    if action == "revoke":
        if "address" in event:
            return revoke_network(room, event.get("address"), now)
        return revoke(room, event.get("visitor"), now)
    r = room.state()
    keys = room.signing_keys(now)
    return {
        key: r[key] for key in ("state", "pinned", "cursor_place", "total_places", "sealed_through")
    } | {"current_key": keys["current"], "revoked": sorted(room.revocations(now))}


def pin(room: Room, state: object, now: float) -> dict[str, Any]:
    """Hold the room in `state` (open, queue or closed) until unpinned; None unpins."""
    if state is not None and state not in STATES:
        raise RoomError(400, "state", f"state {state!r} is not one of {list(STATES)}")
    r = room.state()
    if state == "queue" and r["state"] != "queue":
        enter_queue(r, now)
    r["pinned"] = state
    if state is not None:
        r["state"] = state
    room.save(r)
    return {"state": r["state"], "pinned": state, "kvs": sync_kvs(room, now)}


def rotate(room: Room, now: float, emergency: bool = False) -> dict[str, Any]:
    """A new key, published to the edge now and signing from `KEY_PUBLISH_S` later; the current
    one keeps verifying until every token it signed before then has expired.

    `emergency` (a leaked key): the new key signs at once and old keys stop verifying, at the
    edge within the sync; everyone admitted or inside on a session under them goes back through
    the room (and until the new key reaches an edge location, that location fails open)."""
    keys = room.signing_keys(now)
    kid = f"k{int(now)}"
    if kid in keys["keys"]:
        raise RoomError(409, "rotate", f"key {kid} exists: rotate at most once a second")
    upcoming = keys.get("next")
    if upcoming and not emergency:
        raise RoomError(409, "rotate", f"key {upcoming['kid']} signs from {upcoming['at']}: wait")
    at = int(now) if emergency else int(now) + KEY_PUBLISH_S
    for entry in keys["keys"].values():
        if emergency:
            entry["retire_at"] = int(now)
        elif entry.get("retire_at") is None:
            # Tokens signed before `at` live token_ttl_s; sessions the gate stamps with this key
            # until the inlet's next sync names the new one (within its minute) live session_s.
            entry["retire_at"] = at + max(room.config.token_ttl_s, room.config.session_s + 60)
    keys["keys"] = {
        k: v for k, v in keys["keys"].items() if v.get("retire_at") is None or v["retire_at"] > now
    }
    keys["keys"][kid] = {"key": secrets.token_hex(32), "retire_at": None}
    if emergency:
        keys["current"], keys["next"] = kid, None
    else:
        keys["next"] = {"kid": kid, "at": at}
    room.secrets.put_secret_value(SecretId=room.config.secret_id, SecretString=json.dumps(keys))
    room._keys = (now, keys)
    return {
        "current_key": keys["current"],
        "next_key": kid,
        "signs_from": at,
        "emergency": emergency,
        "kvs": sync_kvs(room, now, room.signing_keys(now)),  # as written, not as read back
    }


def revoke(room: Room, visitor: object, now: float) -> dict[str, Any]:
    """Refuse `visitor` at the edge until their longest-lived token would have expired, and
    (a visitor carried in from a session, whose carry record lives as long) that session."""
    if not isinstance(visitor, str) or not tokens.valid_id(visitor):
        raise RoomError(400, "visitor", f"visitor {visitor!r} must be 1-64 of [A-Za-z0-9_-]")
    found = room.table.get_item(Key={"pk": f"visitor#{visitor}"}).get("Item")
    if found is not None:
        room.table.update_item(
            Key={"pk": f"place#{int(found['order'])}"},
            UpdateExpression="SET revoked = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":t": True},
        )
    room.revoke(visitor, int(now) + max(room.config.token_ttl_s, room.config.session_max_s))
    return {"visitor": visitor, "known": found is not None, "kvs": sync_kvs(room, now)}


def revoke_network(room: Room, address: object, now: float) -> dict[str, Any]:
    """Refuse the sessions of `address`'s network (IPv4 /24, IPv6 /48: everyone the gate stamped
    there, see tokens.network_id) until the longest of them could still pass."""
    network = tokens.network_id(room.config.room_id, address) if isinstance(address, str) else None
    if network is None:
        raise RoomError(400, "address", f"address {address!r} must be an IPv4 or IPv6 address")
    room.revoke(network, int(now) + max(room.config.token_ttl_s, room.config.session_max_s))
    return {
        "network": tokens.network_prefix(str(address)),
        "visitor": network,
        "kvs": sync_kvs(room, now),
    }
