"""Shared token vectors: made by the Python signer, checked by the edge gate under node.

`python -m tests.edge.vectors > tests/edge/vectors.json` regenerates the committed file; a pytest
test fails if the file and the signer disagree, so both sides always test the same tokens.
"""

from __future__ import annotations

import json

from functions.admission.tokens import network_id, sign, sign_session

KEY_ID, KEY_HEX = "k1", "8f" * 32
OTHER_KEY_HEX = "11" * 32
ROOM, NOW = "election-2028", 1_857_000_000  # 2028-11-05T...Z; tests pin Date.now to NOW


NETWORK_ADDRESSES = [
    "198.51.100.11",
    "198.51.100.250",
    "203.0.113.7",
    "2001:db8:1::1",
    "2001:DB8:1:ffff::2",
    "2001:0db8:0001:0000:0000:0000:0000:0003",
    "2001:db8:2::1",
    "::ffff:198.51.100.12",
    "fe80::1",
    "::1",
]


def vectors() -> dict[str, object]:
    good = sign(ROOM, "visitor-1", NOW + 600, KEY_ID, KEY_HEX)
    head, mac = good.rsplit(".", 1)
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    return {
        "room": ROOM,
        "now": NOW,
        "keys": {KEY_ID: KEY_HEX},
        # Viewer addresses as CloudFront may write them, and the network id Python gives each:
        # the gate must bind sessions to the same id (revoke names it).
        "networks": {ip: network_id(ROOM, ip) for ip in NETWORK_ADDRESSES},
        # The session the gate must stamp for 198.51.100.11 at NOW in an open room whose
        # session_s is 1,200: the bytes the join function reads back (tokens.read_session).
        "stamped": sign_session(
            ROOM, str(network_id(ROOM, "198.51.100.11")), NOW + 1_200, KEY_ID, KEY_HEX, NOW
        ),
        "valid": [good, sign(ROOM, "visitor-2", NOW + 1, KEY_ID, KEY_HEX)],
        # A carried visitor's token: honoured only from 198.51.100.0/24 (room.Room.carry).
        "network_token": sign(
            ROOM, "visitor-3", NOW + 600, KEY_ID, KEY_HEX, network_id(ROOM, "198.51.100.11")
        ),
        "invalid": {
            "expired": sign(ROOM, "visitor-1", NOW - 1, KEY_ID, KEY_HEX),
            "tampered payload": good.replace("visitor-1", "visitor-9"),
            "tampered expiry": good.replace(str(NOW + 600), str(NOW + 6000)),
            "tampered signature": f"{head}.{flipped}",
            "unknown key id": sign(ROOM, "visitor-1", NOW + 600, "k9", KEY_HEX),
            "wrong key": sign(ROOM, "visitor-1", NOW + 600, KEY_ID, OTHER_KEY_HEX),
            "wrong room": sign("other-room", "visitor-1", NOW + 600, KEY_ID, KEY_HEX),
            "truncated": good[:-10],
            "not a token": "hello",
            "empty": "",
        },
    }


if __name__ == "__main__":
    print(json.dumps(vectors(), indent=2, sort_keys=True))
