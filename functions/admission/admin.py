"""Operator actions on the room: pin or unpin its state, rotate the signing key, revoke a visitor.

Invoked directly with IAM (`lambda:InvokeFunction`, see scripts/room.py), never over HTTP. Each
action is idempotent and ends by syncing the CloudFront KeyValueStore, so the edge follows
within seconds.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from . import tokens
from .inlet import sync_kvs
from .room import STATES, Room, RoomError, enter_queue

ACTIONS = ("show", "pin", "unpin", "rotate", "revoke")


def handle(room: Room, event: dict[str, Any], now: float) -> dict[str, Any]:
    """`{"action": "pin", "state": "queue"}`, `{"action": "revoke", "visitor": "..."}`, ..."""
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
    """New current key; the old one keeps verifying until every token it signed has expired.

    `emergency` (a leaked key): old keys stop verifying at once, at the edge within the sync;
    everyone admitted or inside on a session under them goes back through the room."""
    keys = room.signing_keys(now)
    kid = f"k{int(now)}"
    if kid in keys["keys"]:
        raise RoomError(409, "rotate", f"key {kid} exists: rotate at most once a second")
    for entry in keys["keys"].values():
        if emergency:
            entry["retire_at"] = int(now)
        elif entry.get("retire_at") is None:
            entry["retire_at"] = int(now) + room.config.token_ttl_s
    keys["keys"] = {
        k: v for k, v in keys["keys"].items() if v.get("retire_at") is None or v["retire_at"] > now
    }
    keys["keys"][kid] = {"key": secrets.token_hex(32), "retire_at": None}
    keys["current"] = kid
    room.secrets.put_secret_value(SecretId=room.config.secret_id, SecretString=json.dumps(keys))
    room._keys = (now, keys)
    return {"current_key": kid, "emergency": emergency, "kvs": sync_kvs(room, now)}


def revoke(room: Room, visitor: object, now: float) -> dict[str, Any]:
    """Refuse `visitor` at the edge until their longest-lived token would have expired."""
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
    room.revoke(visitor, int(now) + room.config.token_ttl_s)
    return {"visitor": visitor, "known": found is not None, "kvs": sync_kvs(room, now)}
