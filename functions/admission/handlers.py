"""Lambda entry points: `join` and `status` behind the HTTP API, `inlet`, `admin`.

HTTP API (payload format 2.0) routes: POST /queue/join, GET /queue/status, GET /queue/room.
The visitor id travels in cookie `fg_visitor` (Path=/queue/, HttpOnly); the admission token in
`fg_admit` (Path=/, Secure, HttpOnly, SameSite=Lax), scoped to the room by its signed room id.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from . import admin as admin_actions
from . import inlet as inlet_run
from .kvs import BotoKeyValueStore
from .room import (
    FAULT_LOG,
    ORIGIN_HEADER,
    Config,
    Room,
    RoomError,
    admission_rate,
    retry_after,
    viewer_address,
)
from .tokens import COOKIE, SESSION_COOKIE, VISITOR_COOKIE

VISITOR_MAX_AGE_S = 2 * 86_400
OVERLOAD_RETRY_S = 10
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
"""DynamoDB, Secrets Manager and Lambda throttling errors (botocore ClientError codes)."""
DEADLINE_MARGIN_S = 3
"""The inlet stops stepping this long before its timeout: the last step and its writes fit."""
_cache: dict[str, Room] = {}
clock: Callable[[], float] = time.time
"""Seconds since the epoch; tests replace it to move time."""


def room() -> Room:
    """One Room per container, its clients reused across invocations (standard retries)."""
    if "room" not in _cache:
        retries = BotoConfig(retries={"mode": "standard", "max_attempts": 5})
        config = Config.from_env(os.environ)
        _cache["room"] = Room(
            config=config,
            dynamodb=boto3.resource("dynamodb", config=retries),
            secrets=boto3.client("secretsmanager", config=retries),
            autoscaling=boto3.client("autoscaling", config=retries),
            cloudwatch=boto3.client("cloudwatch", config=retries),
            kvs=BotoKeyValueStore(
                boto3.client("cloudfront-keyvaluestore", region_name="us-east-1", config=retries),
                config.kvs_arn,
            ),
        )
    return _cache["room"]


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # In Lambda, a missing or misspelt FG_* variable fails the init phase, naming it, rather than
    # the first visitor's request.
    room()


def join(event: dict[str, Any], context: object = None, the_room: Room | None = None) -> dict:
    """POST /queue/join: a place for this visitor (the same one if they joined before).

    Only the portal's own pages may join (`cross_site`): such a join would hand the visitor a
    new id, sending them to the back of the line. New places are counted against the viewer's
    address (CloudFront-Viewer-Address)."""
    headers = _headers(event)
    address = viewer_address(headers.get("cloudfront-viewer-address"))

    def act(r: Room) -> dict[str, Any]:
        if cross_site(headers, r.config.portal_origins):
            raise RoomError(403, "cross-site", "join from the portal itself")
        return r.join(
            _cookie(event, VISITOR_COOKIE), clock(), address, _cookie(event, SESSION_COOKIE)
        )

    return _http(event, act, the_room)


CLOUDFRONT_ORIGIN = re.compile(r"https://d[a-z0-9]+\.cloudfront\.net")
"""A distribution's own name: the portal's origin on a stack without `edge.domain_names`."""


def cross_site(headers: dict[str, str], portal_origins: str) -> bool:
    """True for a join another site made. A browser with Fetch Metadata marks it
    `Sec-Fetch-Site: cross-site` (or `same-site`, a sibling domain); one without sends an
    `Origin` on every cross-origin POST, which must then be one of `portal_origins`
    (comma-separated `https://<edge.domain_names>`; with none, any distribution's own name,
    which is all a stack without a domain knows of itself). No Origin at all is not a
    browser's cross-site request (a script can send anything; WAF and the per-address limit
    hold it)."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in ("cross-site", "same-site")
    origin = headers.get("origin")
    if origin is None:
        return False
    allowed = [o for o in portal_origins.split(",") if o]
    if allowed:
        return origin.lower() not in allowed
    return CLOUDFRONT_ORIGIN.fullmatch(origin.lower()) is None


def status(event: dict[str, Any], context: object = None, the_room: Room | None = None) -> dict:
    """GET /queue/status: place, people ahead, wait; the token cookie once admitted.

    The same function answers GET /queue/room (see `summary`).
    """
    if event.get("routeKey") == "GET /queue/room":
        return summary(event, context, the_room)
    return _http(event, lambda r: r.status(_cookie(event, VISITOR_COOKIE), clock()), the_room)


def summary(event: dict[str, Any], context: object = None, the_room: Room | None = None) -> dict:
    """GET /queue/room: the room's state and pace, the same for everyone (cacheable 2 s)."""

    def answer(r: Room) -> dict[str, Any]:
        now = clock()
        state = r.shared_state(now)
        rate = admission_rate(state["history"], now)
        return {
            "state": state["state"],
            "admitted_up_to": state["cursor_place"],
            "rate_per_min": round(rate * 60, 1),
        }

    return _http(event, answer, the_room, cache="public, max-age=2")


def inlet(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """EventBridge Scheduler, every minute; stops stepping DEADLINE_MARGIN_S before timeout."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    deadline = clock() + remaining_ms() / 1000 - DEADLINE_MARGIN_S if remaining_ms else None
    reports = inlet_run.run(room(), deadline=deadline)
    print(json.dumps({"inlet": reports}))
    return {"steps": len(reports), "last": reports[-1]}


def admin(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """Direct invocation with IAM: see admin.handle for the actions."""
    try:
        result = admin_actions.handle(room(), event, clock())
    except RoomError as error:
        return {"ok": False, "error": error.code, "message": str(error)}
    print(json.dumps({"admin": event.get("action"), "result": result}, default=str))
    return {"ok": True, **result}


def _http(
    event: dict[str, Any], act: Any, the_room: Room | None, cache: str = "private, max-age=2"
) -> dict[str, Any]:
    current = the_room or room()
    if not _through_cloudfront(event, current):
        # The execute-api endpoint answers anyone who finds it; only the distribution (and its
        # WAF) adds the header. 403 before any read or write.
        return _response(403, {"error": "direct", "message": "use the portal's address"},
                         "no-store")  # fmt: skip
    try:
        body = act(current)
    except RoomError as error:
        if error.status >= 500:  # the room could not do it now (a full second, throttled reads)
            return _busy(f"room-{error.code}")
        response = _response(error.status, {"error": error.code, "message": str(error)},
                             "no-store")  # fmt: skip
        if error.status == 429:
            response["headers"]["retry-after"] = str(OVERLOAD_RETRY_S)
        return response
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        return _busy(code if code in THROTTLING_CODES else f"fault {code}")
    except Exception as error:
        return _busy(f"fault {type(error).__name__}: {error}")
    cookies = []
    if body.get("visitor"):
        cookies.append(
            f"{VISITOR_COOKIE}={body['visitor']}; Path=/queue/; Max-Age={VISITOR_MAX_AGE_S}; "
            "Secure; HttpOnly; SameSite=Strict"
        )
    token = body.pop("token", None)
    if token:
        max_age = max(int(body["token_expires_at"] - clock()), 0)
        cookies.append(
            f"{COOKIE}={token}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"
        )
        cache = "no-store"
    if body.get("admitted") is False:
        cfg = current.config
        body["retry_after_s"] = retry_after(
            body.get("eta_s"),
            int(body.get("waiting") or 0),
            cfg.polls_per_s,
            min(cfg.show_s, cfg.abandon_after_s),
        )
    return _response(200, body, cache, cookies)


def _busy(why: str) -> dict[str, Any]:
    """429 JSON with Retry-After: overload, and any fault, is never a 5xx. CloudFront's custom
    error responses would turn a 5xx into the HTML high-demand page for this path, and API
    Gateway would answer a crash with its own 500. A fault is logged as `FAULT_LOG` (a metric
    filter counts it and an alarm watches it: components/admission.py)."""
    if why.startswith("fault"):
        print(f"{FAULT_LOG} {why}")
    else:
        print(json.dumps({"throttled": why}))
    response = _response(429, {"error": "busy", "retry_after_s": OVERLOAD_RETRY_S}, "no-store")
    response["headers"]["retry-after"] = str(OVERLOAD_RETRY_S)
    return response


def _response(
    code: int, body: dict[str, Any], cache: str, cookies: list[str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": code,
        "headers": {"content-type": "application/json", "cache-control": cache},
        "cookies": cookies or [],
        "body": json.dumps(body),
    }


def _headers(event: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in (event.get("headers") or {}).items()}


def _through_cloudfront(event: dict[str, Any], current: Room) -> bool:
    """The request carries one of the origin secrets CloudFront adds (compared in constant
    time, each of them, so the timing says nothing about which or how much matched)."""
    sent = _headers(event).get(ORIGIN_HEADER.lower(), "").encode()
    secrets = [s.encode() for s in current.origin_secrets(clock())]
    return bool(sent) and any([hmac.compare_digest(sent, s) for s in secrets])


def _cookie(event: dict[str, Any], name: str) -> str | None:
    """A cookie from an HTTP API v2 event (`cookies` is a list of `name=value`)."""
    for cookie in event.get("cookies") or []:
        key, _, value = cookie.strip().partition("=")
        if key == name:
            return value
    return None
