"""Shared fixtures: the offline cloud (Pulumi mocks), stack files, valid settings, moto, and
the pre-scale engine's clients with a group shaped like prod's.
Helpers that tests import live in tests/helpers.py."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest
import requests

from functions.prescale.levers import Clients
from planning.settings import Settings, load_stack_settings
from scripts.offline_cloud import OfflineCloud, OfflineRun, run_offline, stack_config
from tests.helpers import TEST_NOW, client
from tests.moto_server import moto_thread

os.environ["FLOODGATE_NOW"] = TEST_NOW
# Offline: build artefacts (the awscrt layer) are referenced, never read.
os.environ["FLOODGATE_OFFLINE"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` first: pytest-xdist hands them out before the short ones, so the
    short ones fill the other worker instead of one long test running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def evaluate() -> Callable[[Callable[[], object]], OfflineRun]:
    """Evaluate one component alone under the offline cloud and return what it registered."""

    def run(program: Callable[[], object]) -> OfflineRun:
        return run_offline("test", {}, program)

    return run


@pytest.fixture
def pulumi_mocks() -> None:
    """Mocks for tests that assert on Outputs inside @pulumi.runtime.test."""
    pulumi.runtime.set_mocks(OfflineCloud(), project="floodgate", stack="test", preview=True)


@pytest.fixture
def prod_config() -> dict[str, Any]:
    """A deep copy of prod's stack config, free to break in a test."""
    return copy.deepcopy(stack_config("prod"))


@pytest.fixture
def prod() -> Settings:
    return load_stack_settings("prod")


@pytest.fixture
def dev() -> Settings:
    return load_stack_settings("dev")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server on 127.0.0.1, one per test session (tests that call AWS use `aws`)."""
    with moto_thread() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto for each test; no real credentials can leak into the calls."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    yield moto_url


@pytest.fixture
def clients(aws: str) -> Clients:
    return Clients(client("autoscaling", aws), client("elbv2", aws), client("dynamodb", aws))


@pytest.fixture
def web_group(aws: str) -> str:
    """A group shaped like prod's: min 6, max 120, warm pool of 12."""
    ec2 = client("ec2", aws)
    template = ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={"ImageId": "ami-0c9f0b5e1a2d3c4b5", "InstanceType": "m7i.large"},
    )["LaunchTemplate"]
    autoscaling = client("autoscaling", aws)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
        MinSize=6,
        MaxSize=120,
        DesiredCapacity=6,
        AvailabilityZones=["ca-central-1a", "ca-central-1b", "ca-central-1d"],
    )
    # As Pulumi creates it: a pool of 12 that stays 12 (min_size 6 + 12 prepared at most).
    autoscaling.put_warm_pool(
        AutoScalingGroupName="web-asg", MinSize=12, MaxGroupPreparedCapacity=18, PoolState="Stopped"
    )
    return "web-asg"


@pytest.fixture
def room_table(aws: str) -> str:
    client("dynamodb", aws).create_table(
        TableName="room",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    return "room"
