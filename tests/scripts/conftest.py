"""AWS for script tests: clients and resources in moto's server (`aws`, tests/conftest.py)."""

from __future__ import annotations

import pytest

from scripts.prescale import Clients
from tests.helpers import client


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
