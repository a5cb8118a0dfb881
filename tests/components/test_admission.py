"""The waiting room's infrastructure as prod declares it (offline, under Pulumi's mocks)."""

from __future__ import annotations

import fnmatch
import json

import pytest

from components.admission import DEMAND_METRIC, METRIC_NAMESPACE
from components.edge import CACHING_OPTIMIZED
from functions.admission.room import FAULT_LOG, ORIGIN_HEADER, Config
from functions.admission.tokens import VISITOR_COOKIE
from planning.capacity import (
    JOIN_SERVICE_S,
    STATUS_SERVICE_S,
    queue_api_design,
    room_tunables,
)
from scripts.offline_cloud import OfflineRun, is_secret, reveal
from tests.helpers import stack_run


@pytest.fixture(scope="module")
def run() -> OfflineRun:
    return stack_run("prod")


def functions(run: OfflineRun) -> dict[str, dict]:
    found = {
        f.inputs["name"].rsplit("-", 1)[1]: f.inputs
        for f in run.of_type("aws:lambda/function:Function")
        if "-room-" in f.inputs["name"]
    }
    assert set(found) == {"join", "status", "inlet", "admin"}, "the room's four functions"
    return found


def test_table_has_ttl_recovery_and_warm_throughput(run) -> None:
    table = run.one("aws:dynamodb/table:Table", "-room").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["deletionProtectionEnabled"] is True


def test_warm_throughput_is_capped_at_the_table_quota(run, prod) -> None:
    """20,000 joins/s x 4 writes = 80,000/s, but AWS pre-warms only up to the table quota."""
    warm = run.one("aws:dynamodb/table:Table", "-room").inputs["warmThroughput"]
    assert prod.admission.table_quota_units_per_s == 40_000
    assert warm == {"writeUnitsPerSecond": 40_000, "readUnitsPerSecond": 40_000}


def test_room_table_is_never_replaced_by_a_plan_or_refresh(run) -> None:
    """Warm throughput never lowers: a lower value in a plan would replace the table."""
    table = run.one("aws:dynamodb/table:Table", "-room")
    assert table.protect and "warmThroughput" in table.ignore_changes
    assert run.one("aws:cloudfront/keyValueStore:KeyValueStore", "-room").protect
    keys = next(
        s
        for s in run.of_type("aws:secretsmanager/secret:Secret")
        if s.name.endswith("signing-keys")
    )
    assert keys.protect


def test_inlet_ends_inside_its_minute_and_is_never_retried(run) -> None:
    inlet = functions(run)["inlet"]
    assert inlet["timeout"] < 60, "the schedule fires every 60 s; concurrency is 1"
    (config,) = [
        c.inputs
        for c in run.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
        if c.name.endswith("room-inlet")
    ]
    assert config["functionName"] == inlet["name"]
    assert (config["maximumRetryAttempts"], config["maximumEventAgeInSeconds"]) == (0, 60)


def test_functions_concurrency_runtime_and_logs(run) -> None:
    fns = functions(run)
    assert set(fns) == {"join", "status", "inlet", "admin"}
    # Sized for prod's planned 340,000 people: joining within 2 minutes (2,834/s x 0.05 s); its
    # status function at the 300 prod sets (the line an unannounced 36x climb builds while the
    # load balancer scales; 189 derived); see planning.capacity.queue_api_design.
    assert {k: f["reservedConcurrentExecutions"] for k, f in fns.items()} == {
        "join": 142,
        "status": 300,
        "inlet": 1,
        "admin": 2,
    }
    for f in fns.values():
        assert (f["runtime"], f["architectures"]) == ("python3.12", ["arm64"])
        assert f["handler"].startswith("admission.handlers.")
        assert f["loggingConfig"]["logGroup"] == f"/aws/lambda/{f['name']}"
    groups = {
        g.inputs.get("name"): g.inputs for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    assert all(groups[f"/aws/lambda/{f['name']}"]["retentionInDays"] == 30 for f in fns.values())


def role_policies(run: OfflineRun) -> dict[str, dict]:
    found = {
        p.name.rsplit("-", 1)[-1]: json.loads(p.inputs["policy"])
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if "-room-" in p.name or "inlet-schedule" in p.name
    }
    assert set(found) == {"join", "status", "inlet", "admin", "schedule"}, set(found)
    return found


def allows(policy: dict, action: str, keys: list[str]) -> bool:
    """IAM's verdict on a DynamoDB `action` touching partition keys `keys`, for Allow
    statements with a `ForAllValues:StringLike` on dynamodb:LeadingKeys: every key must match
    one of the patterns (AWS: "Using IAM policy conditions for fine-grained access control";
    ForAllValues is true for a request with no keys, so each action here names its keys)."""
    for statement in policy["Statement"]:
        if action not in statement["Action"]:
            continue
        condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
        patterns = condition.get("dynamodb:LeadingKeys")
        if patterns is None or all(any(fnmatch.fnmatchcase(k, p) for p in patterns) for k in keys):
            return True
    return False


def test_roles_are_least_privilege(run) -> None:
    policies = role_policies(run)
    assert set(policies) == {"join", "status", "inlet", "admin", "schedule"}
    wildcard_ok = {  # none of them has resource-level permissions
        "autoscaling:DescribeAutoScalingGroups",
        "cloudwatch:GetMetricStatistics",
        "cloudwatch:GetMetricData",
        "cloudwatch:PutMetricData",
    }
    for policy in policies.values():
        for statement in policy["Statement"]:
            assert all("*" not in action for action in statement["Action"])
            if statement["Resource"] == "*":
                assert set(statement["Action"]) <= wildcard_ok, statement
            if "cloudwatch:PutMetricData" in statement["Action"]:
                assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == (
                    METRIC_NAMESPACE
                )
    actions = {a for s in policies["join"]["Statement"] for a in s["Action"]}
    assert "secretsmanager:PutSecretValue" not in actions
    assert not any(a.startswith("cloudfront-keyvaluestore:") for a in actions)


@pytest.mark.parametrize("label", ["join", "status"])
def test_visitors_functions_cannot_write_the_rooms_own_items(run, label) -> None:
    """A bug or injection in join/status cannot reopen the room, forge a tally, clear the
    calendar or lift a revocation: dynamodb:LeadingKeys limits them to visitors' keys."""
    policy = role_policies(run)[label]
    for key in (
        "count#1857000000#3",
        "visitor#abc",
        "place#42",
        "collected#3095000#1",
        "joins#198.51.100.7#30950000",
    ):
        assert allows(policy, "dynamodb:PutItem", [key]), key
        assert allows(policy, "dynamodb:UpdateItem", [key]), key
    for key in ("room", "tally#1857000000", "calendar", "revoked#3"):
        assert not allows(policy, "dynamodb:PutItem", [key]), key
        assert not allows(policy, "dynamodb:UpdateItem", [key]), key
    assert allows(policy, "dynamodb:BatchGetItem", ["place#42", "room", "tally#1857000000"])
    assert not allows(policy, "dynamodb:BatchGetItem", ["place#42", "calendar"])
    assert not allows(policy, "dynamodb:BatchWriteItem", ["place#42"])
    admin = role_policies(run)["admin"]
    assert allows(admin, "dynamodb:PutItem", ["room"]) and allows(
        admin, "dynamodb:UpdateItem", ["revoked#3"]
    )
    assert not allows(admin, "dynamodb:PutItem", ["calendar"])


def test_inlet_describes_only_the_pause_alarms(run) -> None:
    statement = next(
        s
        for s in role_policies(run)["inlet"]["Statement"]
        if "cloudwatch:DescribeAlarms" in s["Action"]
    )
    alarms = {
        a.outputs["name"]: a.outputs["arn"]
        for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    inlet = functions(run)["inlet"]["environment"]["variables"]
    assert statement["Resource"] == [alarms[n] for n in inlet["FG_ALARM_NAMES"].split(",")]


def test_service_roles_trust_only_this_account(run) -> None:
    """aws:SourceAccount on every role a service assumes for this stack, except EC2's (EC2
    sends no source account when an instance assumes its profile's role)."""
    for role in run.of_type("aws:iam/role:Role"):
        statement = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        services = statement["Principal"]["Service"]
        condition = statement.get("Condition", {}).get("StringEquals", {})
        if services in (
            "lambda.amazonaws.com",
            "scheduler.amazonaws.com",
            "vpc-flow-logs.amazonaws.com",
        ):
            assert condition == {"aws:SourceAccount": "123456789012"}, role.name
        elif services == "ec2.amazonaws.com":
            assert condition == {}, role.name


def test_api_gateway_invokes_each_function_for_its_own_routes(run) -> None:
    api = run.one("aws:apigatewayv2/api:Api", "-queue")
    arns = {
        p.inputs["function"].rsplit("-", 1)[1] + " " + p.inputs["sourceArn"]
        for p in run.of_type("aws:lambda/permission:Permission")
        if p.inputs["principal"] == "apigateway.amazonaws.com" and "-room-" in p.inputs["function"]
    }
    base = api.outputs["executionArn"]
    assert arns == {
        f"join {base}/*/POST/queue/join",
        f"status {base}/*/GET/queue/status",
        f"status {base}/*/GET/queue/room",
    }


def test_declared_environment_parses_into_the_rooms_config_exactly(run, prod) -> None:
    """The layers' contract: what the component declares is what the Lambda reads, field by
    field, and the tunables are planning's (no default in between)."""
    for label, function in functions(run).items():
        env = function["environment"]["variables"]
        config = Config.from_env(env)
        assert {f"FG_{k.upper()}" for k in config.__dict__} == set(env), label
        for variable, value in room_tunables(prod).items():
            assert env[variable] == value, (label, variable)
        assert (config.metric_namespace, config.demand_metric) == (METRIC_NAMESPACE, DEMAND_METRIC)


def test_queue_api_checks_the_value_cloudfront_sends(run) -> None:
    """The handlers read the origin-verify secret; it holds both slots, and CloudFront sends
    the current one on the queue origin as on the ALB's."""
    secret = next(
        v
        for v in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if "origin-verify" in v.name
    )
    assert is_secret(secret.to_json()["inputs"]["secretString"])
    slots = {
        reveal(p.outputs["result"])
        for p in run.of_type("random:index/randomPassword:RandomPassword")
        if "origin-secret" in p.name
    }
    assert set(secret.revealed()["secretString"].split(",")) == slots
    verify = next(
        s
        for s in run.of_type("aws:secretsmanager/secret:Secret")
        if s.name.endswith("origin-verify")
    )
    env = functions(run)["join"]["environment"]["variables"]
    assert env["FG_ORIGIN_SECRET_ID"] == verify.outputs["arn"]
    distribution = run.one("aws:cloudfront/distribution:Distribution").revealed()
    headers = {
        o["originId"]: {h["name"]: h["value"] for h in o.get("customHeaders", [])}
        for o in distribution["origins"]
    }
    assert headers["queue-api"] == headers["alb"] and headers["alb"][ORIGIN_HEADER] in slots


def test_the_queue_api_hears_the_viewers_address_and_fetch_metadata(run) -> None:
    """The per-address join limit and the cross-site check read headers CloudFront forwards
    only when an origin request policy names them; Host must stay API Gateway's own."""
    policy = run.one("aws:cloudfront/originRequestPolicy:OriginRequestPolicy", "-queue")
    headers = policy.inputs["headersConfig"]
    assert headers["headerBehavior"] == "whitelist"
    assert set(headers["headers"]["items"]) == {
        "CloudFront-Viewer-Address",
        "Sec-Fetch-Site",
        "Origin",
    }
    assert policy.inputs["cookiesConfig"] == {"cookieBehavior": "all"}
    distribution = run.one("aws:cloudfront/distribution:Distribution").inputs
    queue = next(b for b in distribution["orderedCacheBehaviors"] if b["pathPattern"] == "/queue/*")
    assert queue["originRequestPolicyId"] == policy.id


def test_only_the_room_summary_is_shared_between_visitors(run) -> None:
    """Every per-visitor queue route keys on the visitor's cookie, so not even an error
    CloudFront caches (400/403 for 10 s) reaches another visitor; /queue/room, the same for
    everyone, is matched first and keyed on nothing."""
    distribution = run.one("aws:cloudfront/distribution:Distribution").inputs
    patterns = [b["pathPattern"] for b in distribution["orderedCacheBehaviors"]]
    assert patterns.index("/queue/room") < patterns.index("/queue/*")
    by_pattern = {b["pathPattern"]: b for b in distribution["orderedCacheBehaviors"]}
    policies = {p.id: p.inputs for p in run.of_type("aws:cloudfront/cachePolicy:CachePolicy")}
    cookies = {
        pattern: policies[by_pattern[pattern]["cachePolicyId"]][
            "parametersInCacheKeyAndForwardedToOrigin"
        ]["cookiesConfig"]
        for pattern in ("/queue/*", "/queue/room")
    }
    assert cookies["/queue/*"] == {
        "cookieBehavior": "whitelist",
        "cookies": {"items": [VISITOR_COOKIE]},
    }
    assert cookies["/queue/room"] == {"cookieBehavior": "none"}
    # Managed CachingOptimized: no query string in the key, one copy per page.
    assert by_pattern["/waiting-room/*"]["cachePolicyId"] == CACHING_OPTIMIZED
    assert by_pattern["/queue/room"]["allowedMethods"] == ["GET", "HEAD", "OPTIONS"]


def test_queue_routes_answer_429_before_their_functions_throttle(run, prod) -> None:
    """API Gateway answers a Lambda throttle with 500 (which CloudFront would turn into the HTML
    page): each route's own limit stops at what its function's reserved concurrency serves."""
    stage = run.one("aws:apigatewayv2/stage:Stage", "-queue")
    routes = {
        r.inputs["routeKey"]: r
        for r in run.of_type("aws:apigatewayv2/route:Route")
        if r.inputs["apiId"] == stage.inputs["apiId"]
    }
    limits = {s["routeKey"]: s for s in stage.inputs["routeSettings"]}
    assert set(limits) == set(routes)
    assert set(routes[k].urn for k in routes) <= set(stage.dependencies)
    reserved = {label: f["reservedConcurrentExecutions"] for label, f in functions(run).items()}
    join, status = limits["POST /queue/join"], limits["GET /queue/status"]
    room = limits["GET /queue/room"]
    assert join["throttlingBurstLimit"] <= reserved["join"]
    assert join["throttlingRateLimit"] <= reserved["join"] / JOIN_SERVICE_S
    shared = status["throttlingBurstLimit"] + room["throttlingBurstLimit"]
    assert shared <= reserved["status"]
    assert status["throttlingRateLimit"] + room["throttlingRateLimit"] <= (
        reserved["status"] / STATUS_SERVICE_S
    )
    design = queue_api_design(prod)
    assert status["throttlingRateLimit"] >= design.polls_per_s, "the design's polls still fit"


def test_a_fault_in_join_or_status_reaches_the_alarm_topic(run) -> None:
    filters = [
        f.inputs
        for f in run.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
        if "faults" in f.name
    ]
    groups = {f["logGroupName"] for f in filters}
    assert groups == {
        functions(run)[label]["loggingConfig"]["logGroup"] for label in ("join", "status")
    }
    assert all(f["pattern"] == f'"{FAULT_LOG}"' for f in filters)
    alarm = next(
        a
        for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.name.endswith("api-faults")
    ).inputs
    assert alarm["metricName"] == filters[0]["metricTransformation"]["name"]
    assert alarm["namespace"] == filters[0]["metricTransformation"]["namespace"]


def test_the_queue_api_is_reached_only_through_cloudfront(run, prod) -> None:
    """Direct requests to execute-api were refused by the handlers only after spending the
    stage's throttle and the functions' concurrency: the default endpoint is off, and
    CloudFront reaches the API by its custom domain (regional, TLS 1.2)."""
    api = run.one("aws:apigatewayv2/api:Api", "-queue").inputs
    assert api["disableExecuteApiEndpoint"] is True
    domain = run.one("aws:apigatewayv2/domainName:DomainName", "-queue").inputs
    assert domain["domainName"] == prod.admission.api_domain_name
    config = domain["domainNameConfiguration"]
    assert (config["endpointType"], config["securityPolicy"]) == ("REGIONAL", "TLS_1_2")
    assert config["certificateArn"] == prod.load_balancer.certificate_arn
    mapping = run.one("aws:apigatewayv2/apiMapping:ApiMapping", "-queue").inputs
    assert mapping["stage"] == "$default"
    distribution = run.one("aws:cloudfront/distribution:Distribution").revealed()
    queue = next(o for o in distribution["origins"] if o["originId"] == "queue-api")
    assert queue["domainName"] == prod.admission.api_domain_name


def test_the_gate_failing_open_raises_an_alarm_in_us_east_1(run) -> None:
    """CloudFront Functions log to /aws/cloudfront/function/<name> in us-east-1; a metric
    filter counts the gate's fail-open lines (the exact text gate.js logs)."""
    gate = next(
        f
        for f in run.of_type("aws:cloudfront/function:Function")
        if f.inputs["name"].endswith("-gate")
    )
    group = next(
        g for g in run.of_type("aws:cloudwatch/logGroup:LogGroup") if g.name.endswith("-gate-logs")
    )
    assert group.inputs["name"] == f"/aws/cloudfront/function/{gate.inputs['name']}"
    assert group.provider and "us-east-1" in group.provider
    metric_filter = next(
        f for f in run.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter") if "gate" in f.name
    ).inputs
    assert metric_filter["pattern"] == '"floodgate-gate fail-open"'
    assert "console.log(LOG + 'fail-open ' + why)" in gate.inputs["code"]
    assert "const LOG = 'floodgate-gate ';" in gate.inputs["code"]
    alarm = next(
        a
        for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.name.endswith("gate-fail-open")
    ).inputs
    transform = metric_filter["metricTransformation"]
    assert (alarm["namespace"], alarm["metricName"]) == (transform["namespace"], transform["name"])
    assert alarm["threshold"] == 1 and alarm["alarmActions"][0].endswith("edge-alarms")


def test_pulumi_never_puts_the_first_signing_key_back(run) -> None:
    """Catches the first key's version managed by Pulumi after creation: an update would write
    it back as current over the admin function's rotations (tokens signed since fail), or
    strip its own stage so AWS may delete it (terraform-provider-aws #37302)."""
    version = next(
        v
        for v in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if v.name.endswith("signing-keys")
    )
    assert set(version.ignore_changes) == {"secretString", "versionStages"}
    assert version.inputs["versionStages"] == ["floodgate-initial", "AWSCURRENT"]


def test_a_preview_without_a_custom_domain_keeps_its_execute_api_endpoint() -> None:
    """Catches the default endpoint turned off without a custom domain: CloudFront's queue
    origin would be a host that no longer answers, and nobody could join."""
    pr = stack_run("pr")
    assert pr.of_type("aws:apigatewayv2/domainName:DomainName") == []
    api = pr.one("aws:apigatewayv2/api:Api")
    assert api.inputs["disableExecuteApiEndpoint"] is False
    distribution = pr.one("aws:cloudfront/distribution:Distribution").revealed()
    queue = next(o for o in distribution["origins"] if o["originId"] == "queue-api")
    assert queue["domainName"] == api.outputs["apiEndpoint"].removeprefix("https://")


def test_an_inlet_that_stops_running_raises_the_alarm(run) -> None:
    """Catches the inlet-stopped alarm reading no invocations as fine: a stopped inlet
    publishes nothing, and nobody is admitted while the alarm stays OK."""
    alarm = next(
        a.inputs
        for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.name.endswith("room-inlet-stopped")
    )
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == (
        "AWS/Lambda",
        "Invocations",
        "Sum",
    )
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", 1)
    assert (alarm["treatMissingData"], alarm["evaluationPeriods"], alarm["period"]) == (
        "breaching",
        3,
        60,
    )


_LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
_READ = {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
_WRITE = {"dynamodb:PutItem", "dynamodb:UpdateItem"}
_KVS = {
    "cloudfront-keyvaluestore:DescribeKeyValueStore",
    "cloudfront-keyvaluestore:ListKeys",
    "cloudfront-keyvaluestore:UpdateKeys",
}


def test_each_role_holds_exactly_the_actions_its_function_calls(run) -> None:
    """Catches an extra action on any room role (a delete, a second secret write): the
    least-privilege test above bounds wildcards, not what a named resource allows."""
    actions = {
        label: {a for s in policy["Statement"] for a in s["Action"]}
        for label, policy in role_policies(run).items()
    }
    visitor = _LOGS | _READ | _WRITE | {"secretsmanager:GetSecretValue"}
    assert actions == {
        "join": visitor,
        "status": visitor,
        "inlet": _LOGS
        | _READ
        | _WRITE
        | _KVS
        | {
            "dynamodb:BatchWriteItem",
            "secretsmanager:GetSecretValue",
            "autoscaling:DescribeAutoScalingGroups",
            "cloudwatch:GetMetricStatistics",
            "cloudwatch:GetMetricData",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricData",
        },
        "admin": _LOGS
        | _READ
        | _WRITE
        | _KVS
        | {
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        },
        "schedule": {"lambda:InvokeFunction"},
    }


def test_the_room_pauses_on_both_origin_5xx_alarms(run) -> None:
    """Catches an origin 5xx alarm left out of what pauses admissions: the room would keep
    letting people in while the targets (or the ALB itself) fail."""
    alarms = {
        a.outputs["name"]: a.name for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    inlet = functions(run)["inlet"]["environment"]["variables"]
    paused_on = sorted(alarms[n] for n in inlet["FG_ALARM_NAMES"].split(","))
    assert paused_on == ["floodgate-prod-alb-5xx-rate", "floodgate-prod-target-5xx-rate"]


def test_the_inlet_reads_the_health_of_its_own_load_balancer_and_target_group(run) -> None:
    """Catches the two dimensions swapped or one wired to the other resource: the load
    balancer's 5xx and rejected connections exist per LoadBalancer (`app/...`) only, the
    targets' per TargetGroup (`targetgroup/...`); a wrong value reads no datapoint at all."""
    (alb,) = run.of_type("aws:lb/loadBalancer:LoadBalancer")
    (group,) = run.of_type("aws:lb/targetGroup:TargetGroup")
    inlet = functions(run)["inlet"]["environment"]["variables"]
    assert inlet["FG_LOAD_BALANCER"] == alb.outputs["arnSuffix"]
    assert inlet["FG_LOAD_BALANCER"].startswith("app/")
    assert inlet["FG_TARGET_GROUP"] == group.outputs["arnSuffix"]
    assert inlet["FG_ASG_NAME"] == run.of_type("aws:autoscaling/group:Group")[0].outputs["name"]
