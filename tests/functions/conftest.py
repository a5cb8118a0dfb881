"""Fixtures for the room's tests: a moto cloud per module, a fresh queueing room per test."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
from moto import mock_aws

from functions.admission import admin
from functions.admission.room import Room
from tests.functions.room_fixtures import T0, create_cloud, make_room, set_alarm


@pytest.fixture(scope="module")
def cloud() -> Iterator[None]:
    with mock_aws():
        create_cloud(instances=2)
        yield


@pytest.fixture
def room(cloud, request) -> Room:
    """A new room per test; 2 instances x 5 sessions: capacity 10 people at a time."""
    test = request.node.name
    name = test if len(test) <= 60 else f"{test[:51]}-{zlib.crc32(test.encode()):08x}"
    r = make_room(name=name, sessions_per_instance=5, max_admit_per_s=100)
    r.autoscaling.set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=2)
    set_alarm(r, "OK")
    admin.pin(r, "queue", T0)
    admin.pin(r, None, T0)  # queueing, but under the inlet's control
    return r
