"""Properties every stack file must have, checked on the whole program as `pulumi up` runs it.

Each stack is evaluated once (see conftest.stack_run); every test reads that registration list.
"""

from __future__ import annotations

import json

import pytest

from planning.capacity import peak_check
from planning.settings import load_stack_settings
from scripts.offline_cloud import INVOKE_RESULTS, OfflineRun
from tests.helpers import STACKS, stack_run

CLOUDFRONT_PREFIX_LIST = INVOKE_RESULTS["aws:ec2/getManagedPrefixList:getManagedPrefixList"]["id"]


@pytest.fixture(params=STACKS)
def run(request) -> OfflineRun:
    return stack_run(request.param)


def test_instances_are_unreachable_from_the_internet(run) -> None:
    template = run.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert all(n["associatePublicIpAddress"] == "false" for n in template["networkInterfaces"])
    private = {s.id for s in run.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name}
    assert len(private) >= 2, "the private subnets"
    group = run.one("aws:autoscaling/group:Group").inputs
    assert set(group["vpcZoneIdentifiers"]) == private
    instance_sg = next(
        g for g in run.of_type("aws:ec2/securityGroup:SecurityGroup") if "instances" in g.name
    )
    for rule in instance_sg.inputs["ingress"]:
        assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks")
        assert not rule.get("prefixListIds")


def test_private_subnets_route_out_only_through_nat(run) -> None:
    for table in run.of_type("aws:ec2/routeTable:RouteTable"):
        if "-private-" in table.name:
            assert all("gatewayId" not in r for r in table.inputs["routes"])


def test_imdsv2_is_required(run) -> None:
    options = run.one("aws:ec2/launchTemplate:LaunchTemplate").inputs["metadataOptions"]
    assert options["httpTokens"] == "required"


def test_alb_ingress_only_from_cloudfront(run) -> None:
    alb_sg = next(
        g for g in run.of_type("aws:ec2/securityGroup:SecurityGroup") if g.name.endswith("-alb")
    )
    for rule in alb_sg.inputs["ingress"]:
        assert rule["prefixListIds"] == [CLOUDFRONT_PREFIX_LIST]
        assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks")
        assert rule["fromPort"] == rule["toPort"] == 443


def test_every_bucket_is_private_encrypted_and_tls_only(run) -> None:
    buckets = run.of_type("aws:s3/bucket:Bucket")
    uploads = load_stack_settings(run.stack).inbox.uploads
    # Logs, pages, CloudFront logs; and the inbox's uploads, the one with a key of its own.
    assert len(buckets) == 3 + uploads
    kms = {b.id for b in buckets if b.name.endswith("-inbox-uploads")}
    for bucket in buckets:

        def for_bucket(token: str, bucket_id: str = bucket.id) -> dict:
            (found,) = [r for r in run.of_type(token) if r.inputs["bucket"] == bucket_id]
            return found.inputs

        block = for_bucket("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        assert all(
            block[k]
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
        sse = for_bucket(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        algorithm = sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
        assert algorithm == ("aws:kms" if bucket.id in kms else "AES256")
        policy = json.loads(for_bucket("aws:s3/bucketPolicy:BucketPolicy")["policy"])
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Statement"]
        )
        assert not any(
            s.get("Principal") == "*" and s["Effect"] == "Allow" for s in policy["Statement"]
        )


def test_failover_is_configured(run) -> None:
    distribution = run.one("aws:cloudfront/distribution:Distribution").inputs
    pages = {
        r["errorCode"] for r in distribution["customErrorResponses"] if "responsePagePath" in r
    }
    assert pages and pages <= {500, 502, 503, 504}


def test_waf_is_attached(run) -> None:
    acl = run.one("aws:wafv2/webAcl:WebAcl")
    distribution = run.one("aws:cloudfront/distribution:Distribution").inputs
    assert distribution["webAclId"] == f"arn:aws:wafv2:us-east-1:123456789012:{acl.name}"


def test_alarms_are_wired_to_the_topics(run) -> None:
    topic_names = {t.name for t in run.of_type("aws:sns/topic:Topic")}
    alarms = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    room = [a for a in alarms if "-room-" in a.name]
    runner = [a for a in alarms if "-prescale-" in a.name]
    inbox = [a for a in alarms if "-inbox-" in a.name]
    # 7 along the request path + the gate's fail-open; 4 room functions x 2 + 4 room alarms;
    # 6 for the pre-scale runner (failures, two shortfalls, stopped, errors, undelivered); the
    # inbox's oldest submission and dead letters where a stack has an inbox.
    path = len(alarms) - len(room) - len(runner) - len(inbox)
    expected_inbox = 2 if load_stack_settings(run.stack).inbox.enabled else 0
    assert (path, len(room), len(runner), len(inbox)) == (8, 12, 6, expected_inbox)
    for alarm in alarms:
        assert alarm.inputs["alarmActions"]
        assert all(a.rsplit(":", 1)[1] in topic_names for a in alarm.inputs["alarmActions"])


def test_every_taggable_resource_is_tagged_with_the_environment(run) -> None:
    tagged = [
        r
        for r in run.registrations
        if "tags" in r.inputs and r.type != "aws:autoscaling/group:Group"
    ]
    assert tagged
    env = run.stack
    assert all(r.inputs["tags"].get("floodgate:environment") == env for r in tagged)


@pytest.mark.parametrize("stack", STACKS)
def test_fleet_carries_its_planned_peak_with_one_zone_lost(stack: str) -> None:
    check = peak_check(load_stack_settings(stack))
    assert check.holds, check


def test_prod_spans_at_least_three_zones() -> None:
    run = stack_run("prod")
    zones = {
        s.inputs["availabilityZone"]
        for s in run.of_type("aws:ec2/subnet:Subnet")
        if "-private-" in s.name
    }
    assert len(zones) >= 3
    assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == len(zones)


def test_only_preview_stacks_can_destroy_buckets_that_hold_logs(run) -> None:
    ephemeral = load_stack_settings(run.stack).ephemeral
    buckets = {b.name: b.inputs["forceDestroy"] for b in run.of_type("aws:s3/bucket:Bucket")}
    logs = {name: force for name, force in buckets.items() if "logs" in name}
    assert len(logs) == 2, "the ALB's and CloudFront's log buckets"
    assert set(logs.values()) == {ephemeral}
    # The pages bucket holds only objects Pulumi manages (and deletes first) in every stack.
    assert not any(force for name, force in buckets.items() if name not in logs)


AUTOSCALING_METRICS_READ = {"GroupInServiceInstances", "GroupDesiredCapacity", "GroupMaxSize",
                            "WarmPoolWarmedCapacity"}  # fmt: skip
"""What the fleet-at-max alarm and the dashboard's fleet widget read (AWS/AutoScaling)."""


def test_every_group_metric_the_alarms_and_dashboard_read_is_published(run) -> None:
    """Catches a metric dropped from the group's enabled metrics: Auto Scaling publishes group
    metrics only when enabled, and the fleet-at-max alarm reads missing data as not breaching."""
    group = run.one("aws:autoscaling/group:Group").inputs
    alarms = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    read = {
        a.inputs["metricName"] for a in alarms if a.inputs.get("namespace") == "AWS/AutoScaling"
    }
    board = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    read |= {
        m[1]
        for widget in board["widgets"]
        for m in widget["properties"]["metrics"]
        if m[0] == "AWS/AutoScaling"
    }
    assert read == AUTOSCALING_METRICS_READ
    assert read <= set(group["enabledMetrics"])
    assert group["metricsGranularity"] == "1Minute"


def test_state_is_protected_in_every_stack_but_previews(run) -> None:
    """Catches a bucket, the room's table, store or secrets left unprotected (a replacement
    loses the room or the logs), or protected in a PR preview (its destroy would stop)."""
    keep = not load_stack_settings(run.stack).ephemeral
    stateful = [
        *run.of_type("aws:s3/bucket:Bucket"),
        *run.of_type("aws:dynamodb/table:Table"),
        *run.of_type("aws:cloudfront/keyValueStore:KeyValueStore"),
        *run.of_type("aws:secretsmanager/secret:Secret"),
    ]
    settings = load_stack_settings(run.stack).inbox
    inbox = (3 if settings.enabled else 0) + settings.uploads
    assert len(stateful) == 3 + 1 + 1 + 2 + inbox, (
        "three buckets; the room's table, store, two secrets; the inbox's table, store, secret"
        " and uploads bucket"
    )
    assert {r.name: r.protect for r in stateful} == {r.name: keep for r in stateful}
    table = run.one("aws:dynamodb/table:Table", "-room").inputs
    assert table["deletionProtectionEnabled"] is keep


def test_every_path_to_the_alb_passes_the_gate(run) -> None:
    """Catches a behaviour to the ALB (direct or behind Origin Shield) without the gate: the
    room could be walked around on that path."""
    distribution = run.one("aws:cloudfront/distribution:Distribution").inputs
    gate = next(
        f for f in run.of_type("aws:cloudfront/function:Function") if f.name.endswith("-gate")
    )
    behaviours = [distribution["defaultCacheBehavior"], *distribution["orderedCacheBehaviors"]]
    to_alb = [b for b in behaviours if b["targetOriginId"] in ("alb", "alb-shielded")]
    assert len(to_alb) >= 7, "the default, static, exact-file and write paths"
    for behaviour in to_alb:
        requests = [
            a["functionArn"]
            for a in behaviour["functionAssociations"]
            if a["eventType"] == "viewer-request"
        ]
        assert requests == [gate.outputs["arn"]], behaviour.get("pathPattern", "*")


def test_every_behaviour_targets_an_origin_the_distribution_declares(run) -> None:
    """Catches a behaviour sent to the shielded origin in a stack without Origin Shield:
    CloudFront refuses a behaviour whose origin is not declared, and the update fails."""
    distribution = run.one("aws:cloudfront/distribution:Distribution").revealed()
    origins = {o["originId"] for o in distribution["origins"]}
    targets = {distribution["defaultCacheBehavior"]["targetOriginId"]} | {
        b["targetOriginId"] for b in distribution["orderedCacheBehaviors"]
    }
    assert targets <= origins
    shield = load_stack_settings(run.stack).edge.origin_shield_region
    assert ("alb-shielded" in origins) is (shield is not None)
