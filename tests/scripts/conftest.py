"""AWS for script tests: moto's server on 127.0.0.1 (one per session, reset per test)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from scripts.prescale import RETRIES, Clients

REGION = "ca-central-1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto for each test; no real credentials can leak into the calls."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    yield moto_url


def client(service: str, url: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=url, config=RETRIES,
                        **FAKE_CREDENTIALS)  # fmt: skip


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
        MinSize=6, MaxSize=120, DesiredCapacity=6,
        AvailabilityZones=["ca-central-1a", "ca-central-1b", "ca-central-1d"],
    )  # fmt: skip
    autoscaling.put_warm_pool(AutoScalingGroupName="web-asg", MinSize=12, PoolState="Stopped")
    return "web-asg"


@pytest.fixture
def room_table(aws: str) -> str:
    client("dynamodb", aws).create_table(
        TableName="room", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )  # fmt: skip
    return "room"
