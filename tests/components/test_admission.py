"""The waiting room's infrastructure as prod declares it (offline, under Pulumi's mocks)."""

from __future__ import annotations

import json

import pytest

from components.admission import METRIC_NAMESPACE
from scripts.offline_cloud import OfflineRun
from tests.conftest import stack_run


@pytest.fixture(scope="module")
def run() -> OfflineRun:
    return stack_run("prod")


def functions(run: OfflineRun) -> dict[str, dict]:
    return {
        f.inputs["name"].rsplit("-", 1)[1]: f.inputs
        for f in run.of_type("aws:lambda/function:Function")
    }


def test_table_has_ttl_recovery_and_warm_throughput(run) -> None:
    table = run.one("aws:dynamodb/table:Table").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["deletionProtectionEnabled"] is True
    assert table["warmThroughput"]["writeUnitsPerSecond"] == 60_000  # 20,000 joins/s x 3


def test_functions_concurrency_runtime_and_logs(run) -> None:
    fns = functions(run)
    assert set(fns) == {"join", "status", "inlet", "admin"}
    assert {k: f["reservedConcurrentExecutions"] for k, f in fns.items()} == {
        "join": 100, "status": 200, "inlet": 1, "admin": 2}  # fmt: skip
    for f in fns.values():
        assert (f["runtime"], f["architectures"]) == ("python3.12", ["arm64"])
        assert f["handler"].startswith("admission.handlers.")
        assert f["loggingConfig"]["logGroup"] == f"/aws/lambda/{f['name']}"
    groups = {
        g.inputs.get("name"): g.inputs for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    assert all(groups[f"/aws/lambda/{f['name']}"]["retentionInDays"] == 30 for f in fns.values())
    assert fns["inlet"]["timeout"] > 60, "a run outlasts its six steps"


def test_roles_are_least_privilege(run) -> None:
    policies = [json.loads(p.inputs["policy"]) for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
                if "-room-" in p.name or "inlet-schedule" in p.name]  # fmt: skip
    assert len(policies) == 5
    wildcard_ok = {"autoscaling:DescribeAutoScalingGroups", "cloudwatch:DescribeAlarms",
                   "cloudwatch:GetMetricStatistics", "cloudwatch:PutMetricData"}  # fmt: skip
    for policy in policies:
        for statement in policy["Statement"]:
            assert all("*" not in action for action in statement["Action"])
            if statement["Resource"] == "*":
                assert set(statement["Action"]) <= wildcard_ok, statement
            if "cloudwatch:PutMetricData" in statement["Action"]:
                assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == (
                    METRIC_NAMESPACE
                )
    join = next(json.loads(p.inputs["policy"]) for p in run.of_type(
        "aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-room-join"))  # fmt: skip
    actions = {a for s in join["Statement"] for a in s["Action"]}
    assert "secretsmanager:PutSecretValue" not in actions
    assert not any(a.startswith("cloudfront-keyvaluestore:") for a in actions)


def test_inlet_runs_every_minute_without_retries(run) -> None:
    schedule = run.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "rate(1 minute)"
    assert schedule["target"]["retryPolicy"]["maximumRetryAttempts"] == 0
    assert schedule["target"]["arn"].endswith(":function:floodgate-prod-room-inlet")


def test_api_routes_and_throttling(run) -> None:
    routes = {r.inputs["routeKey"] for r in run.of_type("aws:apigatewayv2/route:Route")}
    assert routes == {"POST /queue/join", "GET /queue/status", "GET /queue/room"}
    stage = run.one("aws:apigatewayv2/stage:Stage").inputs
    assert stage["defaultRouteSettings"] == {"throttlingBurstLimit": 5000,
                                             "throttlingRateLimit": 10000}  # fmt: skip


def test_gate_guards_the_default_behaviour_with_the_kvs(run) -> None:
    kvs = run.one("aws:cloudfront/keyValueStore:KeyValueStore")
    gate = next(f for f in run.of_type("aws:cloudfront/function:Function")
                if f.name.endswith("-gate"))  # fmt: skip
    assert gate.inputs["keyValueStoreAssociations"] == [
        f"arn:aws:cloudfront::123456789012:key-value-store/{kvs.id.rsplit('-', 1)[1]}"
    ]
    assert len(gate.inputs["code"].encode()) < 10_240, "CloudFront Functions limit: 10 KB"
    distribution = run.one("aws:cloudfront/distribution:Distribution").inputs
    default = distribution["defaultCacheBehavior"]["functionAssociations"]
    assert [a["eventType"] for a in default] == ["viewer-request", "viewer-response"]
    assert default[0]["functionArn"].endswith(":floodgate-prod-gate")
    behaviours = {b["pathPattern"]: b for b in distribution["orderedCacheBehaviors"]}
    assert behaviours["/queue/*"]["targetOriginId"] == "queue-api"
    assert "POST" in behaviours["/queue/*"]["allowedMethods"]
    assert behaviours["/waiting-room/*"]["targetOriginId"] == "high-demand-pages"
    assert all(
        not any(a["eventType"] == "viewer-request" for a in b["functionAssociations"])
        for b in behaviours.values()
    ), "only the default behaviour is gated"


def test_signing_key_is_a_secret_never_plain(run) -> None:
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.to_json()["inputs"]["secretString"] == "[secret]"
    assert "secretString" in version.ignore_changes or "secret_string" in version.ignore_changes
    key = json.loads(version.revealed()["secretString"])
    assert key["current"] == "k0" and len(key["keys"]["k0"]["key"]) == 64
    plan = json.dumps(run.plan_document())
    assert key["keys"]["k0"]["key"] not in plan


def test_admission_off_declares_no_room(prod_config) -> None:
    from scripts.offline_cloud import run_offline

    prod_config["floodgate:settings"]["admission"] = {"enabled": False}
    off = run_offline("prod", prod_config)
    assert not off.of_type("aws:dynamodb/table:Table")
    distribution = off.one("aws:cloudfront/distribution:Distribution").inputs
    assert "/queue/*" not in {b["pathPattern"] for b in distribution["orderedCacheBehaviors"]}
