"""Admission tokens, verified at the edge by functions/edge/gate.js.

Format (cookie `fg_admit`): `v1.<room>.<visitor>.<expiry epoch s>.<kid>.<hex HMAC-SHA256>`, or
for a visitor carried in from a session `v2.<room>.<visitor>.<expiry>.<kid>.<network id>.<hex>`
(honoured only from that network), the HMAC taken over everything before the last dot with
the key named by `kid`. A key is 64 hex characters (256 random bits) used as its ASCII bytes,
exactly as the edge reads it from the KeyValueStore. Room, visitor and kid are restricted to
[A-Za-z0-9_-] so that the dot separator cannot be forged.

Sessions (cookie `fg_session`) are signed by the gate on responses while the room is open:
`s2.<room>.<network id>.<expiry>.<kid>.<issued epoch s>.<hex HMAC-SHA256>`; `network_id` is
the id the gate gives a viewer's network, which `admin.revoke_network` names. The join function
verifies them (`read_session`) to carry their holder in (room.Room.carry); `sign_session`
writes them as the gate does (tests and shared vectors hold the two to the same bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

COOKIE = "fg_admit"
VISITOR_COOKIE = "fg_visitor"
"""The visitor id's cookie (Path=/queue/): the queue API's per-visitor routes key on it."""
VERSION = "v1"
NETWORK_VERSION = "v2"
SESSION_COOKIE = "fg_session"
SESSION_VERSION = "s2"
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""Room, visitor and key ids (planning.settings checks room_id against it too)."""
_ID = re.compile(ID_PATTERN)


def valid_id(value: str) -> bool:
    """Room, visitor and key ids: 1-64 characters of [A-Za-z0-9_-], nothing else (`$` would
    let a trailing newline through)."""
    return _ID.fullmatch(value) is not None


def sign(
    room: str, visitor: str, expires_at: int, kid: str, key_hex: str, network: str | None = None
) -> str:
    """Token for `visitor` in `room`, valid until `expires_at` (epoch seconds); with `network`
    (a network_id) a `v2` token the gate honours only from that network (a carried visitor's:
    room.Room.carry)."""
    named = (("room", room), ("visitor", visitor), ("kid", kid), ("network", network or "n"))
    for label, value in named:
        if not valid_id(value):
            raise ValueError(f"{label} {value!r} must be 1-64 characters of [A-Za-z0-9_-]")
    if expires_at <= 0:
        raise ValueError(f"expires_at {expires_at} must be a positive epoch second")
    signed = f"{VERSION}.{room}.{visitor}.{expires_at}.{kid}"
    if network is not None:
        signed = f"{NETWORK_VERSION}.{room}.{visitor}.{expires_at}.{kid}.{network}"
    mac = hmac.new(key_hex.encode(), signed.encode(), hashlib.sha256).hexdigest()
    return f"{signed}.{mac}"


def verify(token: str, room: str, now: float, keys: dict[str, str]) -> str | None:
    """The visitor id if `token` is a valid, unexpired token for `room` (v1, or v2 whatever
    its network: the gate checks that); None otherwise."""
    parts = token.split(".")
    if (parts[0], len(parts)) not in ((VERSION, 6), (NETWORK_VERSION, 7)) or parts[1] != room:
        return None
    if not parts[3].isdigit() or int(parts[3]) <= now or parts[4] not in keys:
        return None
    signed = ".".join(parts[:-1])
    mac = hmac.new(keys[parts[4]].encode(), signed.encode(), hashlib.sha256).hexdigest()
    return parts[2] if hmac.compare_digest(mac, parts[-1]) else None


def sign_session(room: str, network: str, expires_at: int, kid: str, key_hex: str,
                 issued_at: int) -> str:  # fmt: skip
    """A session for `network` (a network_id) issued at `issued_at`, as the gate stamps it."""
    if not valid_id(room) or not valid_id(network) or not valid_id(kid):
        raise ValueError("room, network and kid must be 1-64 characters of [A-Za-z0-9_-]")
    signed = f"{SESSION_VERSION}.{room}.{network}.{expires_at}.{kid}.{issued_at}"
    mac = hmac.new(key_hex.encode(), signed.encode(), hashlib.sha256).hexdigest()
    return f"{signed}.{mac}"


def read_session(value: str, room: str, now: float, keys: dict[str, str]) -> tuple[str, int] | None:
    """(network id, issued epoch s) of a valid, unexpired session for `room` signed by one of
    `keys` (kid -> hex); None otherwise. Its other conditions (issued before queueing, its
    absolute life, the viewer's network) are the caller's: room.Room.carry."""
    parts = value.split(".")
    if len(parts) != 7 or parts[0] != SESSION_VERSION or parts[1] != room:
        return None
    if not (parts[3].isdigit() and parts[5].isdigit()) or int(parts[3]) <= now:
        return None
    if parts[4] not in keys or not valid_id(parts[2]):
        return None
    mac = hmac.new(keys[parts[4]].encode(), ".".join(parts[:6]).encode(), hashlib.sha256)
    return (parts[2], int(parts[5])) if hmac.compare_digest(mac.hexdigest(), parts[6]) else None


def network_prefix(address: str) -> str | None:
    """The network a session is bound to, as the gate writes it: an IPv4 address's first three
    octets (`198.51.100`, its /24) or an IPv6 address's first three groups of four hex digits
    (`2001:0db8:0001`, its /48); an IPv4-mapped IPv6 address is its IPv4 network. An IPv6
    network of /48 or longer (`2001:db8:1::/48`, what room.viewer_address counts joins
    against) is the /48 it lies in. None if `address` is neither."""
    if "%" in address:  # a scoped (link-local) address never comes from CloudFront
        return None
    if "/" in address:
        try:
            network = ipaddress.ip_network(address.strip(), strict=False)
        except ValueError:
            return None
        if network.version != 6 or network.prefixlen < 48:
            return None
        address = str(network.network_address)
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return ".".join(str(octet) for octet in ip.packed[:3])
    return ":".join(ip.exploded.split(":")[:3])


def network_id(room: str, address: str) -> str | None:
    """The visitor id of every session issued to `address`'s network in `room` (what `revoke`
    names to end them): 20 hex characters of SHA-256 over `fg-net|<room>|<prefix>`, exactly as
    functions/edge/gate.js computes it. None if `address` is not an address."""
    prefix = network_prefix(address)
    if prefix is None:
        return None
    return hashlib.sha256(f"fg-net|{room}|{prefix}".encode()).hexdigest()[:20]
