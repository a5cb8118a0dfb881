"""A waiting room against moto: table, signing-key secret, fleet, alarm, in-memory KVS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from functions.admission.room import Config, Room

REGION = "ca-central-1"
TABLE, ASG, ALARM = "room", "web", "origin-5xx"
KEY_HEX = "ab" * 32


@dataclass
class MemoryKvs:
    """The KeyValueStore as a dict, counting writes."""

    data: dict[str, str] = field(default_factory=dict)
    writes: int = 0

    def items(self) -> dict[str, str]:
        return dict(self.data)

    def apply(self, puts: dict[str, str], deletes: list[str]) -> None:
        self.writes += 1
        self.data.update(puts)
        for key in deletes:
            self.data.pop(key, None)


def create_table(dynamodb: Any, name: str = TABLE) -> None:
    """The table as components/admission.py declares it (one string key `pk`, TTL)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def create_cloud(instances: int, endpoint: str | None = None) -> None:
    """What outlives one room: the web fleet (moto's Auto Scaling) and the origin 5xx alarm."""
    session = {"region_name": REGION, "endpoint_url": endpoint}
    boto3.client("cloudwatch", **session).put_metric_alarm(
        AlarmName=ALARM,
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    autoscaling = boto3.client("autoscaling", **session)
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="web", ImageId="ami-12c6146b", InstanceType="t3.small"
    )  # moto's example AMI: no image listing (seconds) needed
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchConfigurationName="web",
        MinSize=instances,
        MaxSize=max(instances, 1) * 4,
        DesiredCapacity=instances,
        AvailabilityZones=[f"{REGION}a"],
    )


def make_room(endpoint: str | None = None, name: str = TABLE, **overrides: Any) -> Room:
    """A fresh room (table, key secret, KVS) in a cloud made by `create_cloud`."""
    session = {"region_name": REGION, "endpoint_url": endpoint}
    dynamodb = boto3.resource("dynamodb", **session)
    create_table(boto3.client("dynamodb", **session), name)
    secrets = boto3.client("secretsmanager", **session)
    secrets.create_secret(
        Name=name,
        SecretString=json.dumps({"current": "k0", "keys": {"k0": {"key": KEY_HEX}}}),
    )
    config = Config(
        table=name,
        room_id="election-2028",
        secret_id=name,
        asg_name=ASG,
        alarm_names=ALARM,
        **overrides,
    )
    return Room(
        config=config,
        dynamodb=dynamodb,
        secrets=secrets,
        autoscaling=boto3.client("autoscaling", **session),
        cloudwatch=boto3.client("cloudwatch", **session),
        kvs=MemoryKvs(),
    )


def set_alarm(room: Room, state: str) -> None:
    room.cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue=state, StateReason="test")


def items(room: Room, prefix: str) -> Iterator[dict[str, Any]]:
    scan = room.dynamodb.meta.client.get_paginator("scan")
    for page in scan.paginate(TableName=room.config.table):
        for item in page["Items"]:
            if item["pk"].startswith(prefix):
                yield item
