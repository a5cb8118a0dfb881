"""A waiting room against moto: table, signing-key secret, fleet, alarm, in-memory KVS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boto3

from functions.admission.room import Config, Room
from tests.functions.metric_data import MetricData

REGION = "ca-central-1"
TABLE, ASG, ALARM = "room", "web", "origin-5xx"
KEY_HEX = "ab" * 32
T0 = 1_857_000_000.0  # a whole minute; tests move the clock explicitly
ORIGIN_SECRET = "edge-secret-a"
"""What the test's CloudFront adds (the origin-verify secret holds it and a second slot)."""
THROUGH_CLOUDFRONT = {"x-floodgate-origin-verify": ORIGIN_SECRET}
TEST_ENV = {
    "FG_ROOM_ID": "election-2028",
    "FG_SECRET_ID": TABLE,
    "FG_KVS_ARN": "arn:kvs/test",
    "FG_SESSIONS_PER_INSTANCE": "100",
    "FG_REQUESTS_PER_INSTANCE_PER_S": "150",
    "FG_MAX_ADMIT_PER_S": "200",
    "FG_STEP_S": "10",
    "FG_SESSION_S": "1200",
    "FG_SESSION_MAX_S": "14400",
    "FG_CARRY_S": "600",
    "FG_CARRIES_PER_NETWORK": "256",
    "FG_TOKEN_TTL_S": "7200",
    "FG_SHOW_S": "120",
    "FG_ABANDON_AFTER_S": "90",
    "FG_QUEUE_AT_LOAD": "0.85",
    "FG_OPEN_BELOW_LOAD": "0.6",
    "FG_CALM_S": "600",
    "FG_DRAIN_S": "120",
    "FG_POLLS_PER_S": "0",
    "FG_DEMAND_FLOOR_PCT": "0",
    "FG_ASG_NAME": ASG,
    "FG_TARGET_GROUP": "targetgroup/web/no-metrics",
    "FG_LOAD_BALANCER": "app/web/no-metrics",
    "FG_TARGET_5XX_PCT": "2.0",
    "FG_ELB_5XX_PCT": "1.0",
    "FG_ALB_SCALING_PCT_PER_5_MIN": "50",
    "FG_RESPONSE_P95_S": "1.0",
    "FG_CAPACITY_CPU_PCT": "80",
    "FG_CEILING_FLOOR": "0.25",
    "FG_ALARM_NAMES": ALARM,
    "FG_METRIC_NAMESPACE": "Floodgate/WaitingRoom",
    "FG_DEMAND_METRIC": "DemandPercent",
    "FG_DEMAND_PERIOD_S": "10",
    "FG_METER": "0",
    "FG_ORIGIN_SECRET_ID": "origin-verify",
    "FG_JOINS_PER_ADDRESS_PER_MIN": "30",
    "FG_PORTAL_ORIGINS": "https://portal.example.ca",
    "FG_ROOM_CACHE_S": "0",
}
"""A small room's environment, as components/admission.py would set it (moto has no ALB metrics:
the origin load reads as zero until a test puts some). The room item is read on every request
(`FG_ROOM_CACHE_S` 0) so a test sees the inlet's write at once; test_room_item_cache covers
the cache."""


def via_edge(
    cookies: list[str] | None = None, headers: dict[str, str] | None = None, **event: Any
) -> dict[str, Any]:
    """An HTTP API v2 event as it arrives through the distribution: CloudFront's origin header
    and a viewer address added to `headers`."""
    sent = {
        **THROUGH_CLOUDFRONT,
        "cloudfront-viewer-address": "198.51.100.7:50123",
        **(headers or {}),
    }
    return {"cookies": cookies or [], "headers": sent, **event}


def config_for_tests(**overrides: Any) -> Config:
    """TEST_ENV's Config with `overrides` (field names, any values)."""
    return replace(Config.from_env({**TEST_ENV, "FG_TABLE": TABLE}), **overrides)


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


def origin_alarm(cloudwatch: Any, name: str, metric: str) -> None:
    """An origin 5xx alarm like the stack's: any 5xx in a minute."""
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        MetricName=metric,
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )


def create_cloud(instances: int, endpoint: str | None = None) -> None:
    """What outlives one room: the web fleet (moto's Auto Scaling) and the origin 5xx alarm."""
    session = {"region_name": REGION, "endpoint_url": endpoint}
    origin_alarm(boto3.client("cloudwatch", **session), ALARM, "HTTPCode_Target_5XX_Count")
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
    secrets.create_secret(Name=f"{name}-origin", SecretString=f"{ORIGIN_SECRET},edge-secret-b")
    config = config_for_tests(
        table=name, secret_id=name, origin_secret_id=f"{name}-origin", **overrides
    )
    return Room(
        config=config,
        dynamodb=dynamodb,
        secrets=secrets,
        autoscaling=boto3.client("autoscaling", **session),
        cloudwatch=MetricData(boto3.client("cloudwatch", **session)),
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


def join_many(room: Room, count: int, at: float = T0 + 1, every: float = 0.01) -> list[str]:
    """`count` new visitors joining `every` seconds from `at`; their ids."""
    return [room.join(None, at + i * every)["visitor"] for i in range(count)]
