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
        if "-room-" in f.inputs["name"]
    }


def test_table_has_ttl_recovery_and_warm_throughput(run) -> None:
    table = run.one("aws:dynamodb/table:Table").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["deletionProtectionEnabled"] is True


def test_warm_throughput_is_capped_at_the_table_quota(run, prod) -> None:
    """20,000 joins/s x 3 writes = 60,000/s, but AWS pre-warms only up to the table quota."""
    warm = run.one("aws:dynamodb/table:Table").inputs["warmThroughput"]
    assert prod.admission.table_quota_units_per_s == 40_000
    assert warm == {"writeUnitsPerSecond": 40_000, "readUnitsPerSecond": 40_000}


def test_room_table_is_never_replaced_by_a_plan_or_refresh(run) -> None:
    """Warm throughput never lowers: a lower value in a plan would replace the table."""
    table = run.one("aws:dynamodb/table:Table")
    assert table.protect and "warmThroughput" in table.ignore_changes
    assert run.one("aws:cloudfront/keyValueStore:KeyValueStore").protect
    assert run.one("aws:secretsmanager/secret:Secret").protect


def test_inlet_ends_inside_its_minute_and_is_never_retried(run) -> None:
    inlet = functions(run)["inlet"]
    assert inlet["timeout"] < 60, "the schedule fires every 60 s; concurrency is 1"
    config = run.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
    assert config["functionName"] == inlet["name"]
    assert (config["maximumRetryAttempts"], config["maximumEventAgeInSeconds"]) == (0, 60)


def test_functions_concurrency_runtime_and_logs(run) -> None:
    fns = functions(run)
    assert set(fns) == {"join", "status", "inlet", "admin"}
    # Sized for prod's planned 340,000 people: joining within 2 minutes (2,834/s x 0.05 s) and
    # polling every minute (5,667/s x 0.03 s); see planning.capacity.queue_api_design.
    assert {k: f["reservedConcurrentExecutions"] for k, f in fns.items()} == {
        "join": 142, "status": 170, "inlet": 1, "admin": 2}  # fmt: skip
    for f in fns.values():
        assert (f["runtime"], f["architectures"]) == ("python3.12", ["arm64"])
        assert f["handler"].startswith("admission.handlers.")
        assert f["loggingConfig"]["logGroup"] == f"/aws/lambda/{f['name']}"
    groups = {
        g.inputs.get("name"): g.inputs for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    assert all(groups[f"/aws/lambda/{f['name']}"]["retentionInDays"] == 30 for f in fns.values())


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
    functions = {f.name.rsplit("-", 1)[1]: f for f in run.of_type(
        "aws:cloudfront/function:Function")}  # fmt: skip
    gate, session = functions["gate"], functions["session"]
    for function in (gate, session):
        assert function.inputs["keyValueStoreAssociations"] == [
            f"arn:aws:cloudfront::123456789012:key-value-store/{kvs.id.rsplit('-', 1)[1]}"
        ]
        assert len(function.inputs["code"].encode()) < 10_240, "CloudFront Functions: 10 KB"
    assert gate.inputs["code"] == session.inputs["code"], "one file, two event types"
    distribution = run.one("aws:cloudfront/distribution:Distribution").inputs
    behaviours = {b["pathPattern"]: b for b in distribution["orderedCacheBehaviors"]}
    behaviours["*"] = distribution["defaultCacheBehavior"]
    assert behaviours["/queue/*"]["targetOriginId"] == "queue-api"
    assert "POST" in behaviours["/queue/*"]["allowedMethods"]
    assert behaviours["/waiting-room/*"]["targetOriginId"] == "high-demand-pages"
    gated = {
        pattern
        for pattern, b in behaviours.items()
        if [(a["eventType"], a["functionArn"]) for a in b["functionAssociations"]]
        == [("viewer-request", gate.outputs["arn"]), ("viewer-response", session.outputs["arn"])]
    }
    # Every behaviour that reaches the ALB (directly or through the origin group).
    assert gated == {"*", "/assets/*", "/static/*", "/api/*", "/submit/*"}


def test_signing_key_is_a_secret_never_plain(run) -> None:
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.to_json()["inputs"]["secretString"] == "[secret]"
    assert {"secretString", "versionStages"} <= set(version.ignore_changes)
    # terraform-provider-aws #37302: a version left without stages may be deleted and then
    # re-created by the provider, making the original key current again.
    assert "floodgate-initial" in version.inputs["versionStages"]
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
