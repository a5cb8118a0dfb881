"""Every rule of the pack fails on a resource that breaks it and passes on the shipped stacks.

Each case takes prod's offline plan (which passes), breaks one thing the way a change could,
and checks that exactly that rule fails, naming the resource. The pack runs its own policy
objects through policies/offline.py, as `pulumi preview --policy-pack policies` would.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

from policies import RULES
from policies.offline import PlanResource, Verdict, evaluate
from scripts.policy import plan_resources, summary, table
from tests.helpers import STACKS, stack_run

Plan = list[PlanResource]


@cache
def _plan(stack: str) -> tuple[PlanResource, ...]:
    return tuple(plan_resources(stack_run(stack)))


def plan(stack: str = "prod") -> Plan:
    return [
        replace(r, inputs=copy.deepcopy(r.inputs), outputs=copy.deepcopy(r.outputs))
        for r in _plan(stack)
    ]


def edit(resources: Plan, token: str, match: str = "", **changes: Any) -> Plan:
    """Replace fields of the resources of `token` whose name contains `match`."""
    hits = [i for i, r in enumerate(resources) if r.type == token and match in r.name]
    assert hits, f"no {token} matching {match!r}"
    for i in hits:
        resources[i] = replace(resources[i], **changes)
    return resources


def props(resources: Plan, token: str, match: str, change: Callable[[dict], None]) -> Plan:
    """Apply `change` to inputs and outputs alike (resource rules read inputs, stack rules
    outputs, as in the engine)."""
    hits = [r for r in resources if r.type == token and match in r.name]
    assert hits, f"no {token} matching {match!r}"
    for r in hits:
        change(r.inputs)  # type: ignore[arg-type]
        change(r.outputs)  # type: ignore[arg-type]
    return resources


def drop_named(resources: Plan, token: str, match: str) -> Plan:
    return [r for r in resources if not (r.type == token and match in r.name)]


def drop(resources: Plan, token: str) -> Plan:
    return [r for r in resources if r.type != token]


def failing(verdicts: list[Verdict]) -> set[str]:
    return {v.rule for v in verdicts if v.outcome == "fail"}


G, TG, TABLE = (
    "aws:autoscaling/group:Group",
    "aws:lb/targetGroup:TargetGroup",
    "aws:dynamodb/table:Table",
)
DIST, ACL = "aws:cloudfront/distribution:Distribution", "aws:wafv2/webAcl:WebAcl"
FN, POLICY = "aws:lambda/function:Function", "aws:autoscaling/policy:Policy"
LB, ACTION = "aws:lb/loadBalancer:LoadBalancer", "aws:autoscaling/schedule:Schedule"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
QUEUE, ALARM = "aws:sqs/queue:Queue", "aws:cloudwatch/metricAlarm:MetricAlarm"
EDGE_FN = "us-east-1:123456789012:function:rewrite"


def _rules(acl: dict, name: str) -> dict:
    return next(r for r in acl["rules"] if r["name"] == name)


def _behaviour(dist: dict, pattern: str) -> dict:
    if pattern == "*":
        return dist["defaultCacheBehavior"]
    return next(b for b in dist["orderedCacheBehaviors"] if b["pathPattern"] == pattern)


def reserve(resources: Plan) -> Plan:
    """The ALB with 100 LCUs reserved, as an old plan asked for it on create."""
    return props(
        resources, LB, "", lambda d: d.update(minimumLoadBalancerCapacity={"capacityUnits": 100})
    )


def _without_dependency(resources: Plan, token: str, match: str, dep_token: str) -> Plan:
    urns = {r.urn for r in resources if r.type == dep_token}
    for i, r in enumerate(resources):
        if r.type == token and match in r.name:
            resources[i] = replace(
                r, dependencies=tuple(u for u in r.dependencies if u not in urns)
            )
    return resources


BREAKS: dict[str, Callable[[Plan], Plan]] = {
    "alb-slow-start-excludes-least-outstanding": lambda p: props(
        p, TG, "", lambda d: d.update(slowStart=60)
    ),
    "dynamodb-warm-throughput-within-quota": lambda p: props(
        p, TABLE, "-room", lambda d: d["warmThroughput"].update(writeUnitsPerSecond=60_000)
    ),
    "warm-pool-caps-prepared-capacity": lambda p: props(
        p, G, "", lambda d: d["warmPool"].pop("maxGroupPreparedCapacity")
    ),
    "runtime-managed-values-ignored": lambda p: edit(p, G, "", ignore_changes=("desiredCapacity",)),
    "alb-reservation-not-waited-on-create": lambda p: edit(reserve(p), LB, "", create_timeout_s=0),
    "warm-pool-waits-for-bootstrap": lambda p: drop(
        props(p, G, "", lambda d: d.pop("initialLifecycleHooks")), HOOK
    ),
    "initial-hooks-never-replace-the-group": lambda p: edit(
        p, G, "", ignore_changes=("desiredCapacity", "minSize", "maxSize", "warmPool")
    ),
    "instance-refresh-without-auto-rollback": lambda p: props(
        p, G, "", lambda d: d["instanceRefresh"]["preferences"].update(autoRollback=True)
    ),
    "waf-common-rules-allow-form-posts": lambda p: props(
        p,
        ACL,
        "",
        lambda d: _rules(d, "AWSManagedRulesCommonRuleSet")["statement"][
            "managedRuleGroupStatement"
        ].pop("ruleActionOverrides"),
    ),
    "waf-rate-limit-blocks": lambda p: props(
        p, ACL, "", lambda d: _rules(d, "per-ip-rate-limit").update(action={"count": {}})
    ),
    "alarm-topics-decryptable-by-cloudwatch": lambda p: props(
        p, "aws:sns/topic:Topic", "edge", lambda d: d.update(kmsMasterKeyId="alias/aws/sns")
    ),
    "scheduled-functions-bounded": lambda p: props(p, FN, "inlet", lambda d: d.update(timeout=75)),
    "request-scaling-after-listener-rule": lambda p: _without_dependency(
        p, POLICY, "requests", "aws:lb/listenerRule:ListenerRule"
    ),
    "distribution-after-log-bucket-acls": lambda p: _without_dependency(
        p, DIST, "", "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
    ),
    "gate-on-every-origin-behaviour": lambda p: props(
        p, DIST, "", lambda d: _behaviour(d, "/api/*").update(functionAssociations=[])
    ),
    "high-demand-page-for-any-path": lambda p: props(
        p, DIST, "", lambda d: d["customErrorResponses"].pop(0)
    ),
    "no-lambda-at-edge": lambda p: props(
        p,
        DIST,
        "",
        lambda d: _behaviour(d, "*").update(
            lambdaFunctionAssociations=[
                {"eventType": "origin-request", "lambdaArn": f"arn:aws:lambda:{EDGE_FN}:1"}
            ]
        ),
    ),
    "errors-never-shared": lambda p: props(p, DIST, "", lambda d: d["customErrorResponses"].pop()),
    "room-item-within-its-partition": lambda p: props(
        p,
        FN,
        "room-",
        lambda d: d.get("environment", {}).get("variables", {}).update(FG_ROOM_CACHE_S="0"),
    ),
    "queue-api-only-through-cloudfront": lambda p: props(
        p, "aws:apigatewayv2/api:Api", "-queue", lambda d: d.update(disableExecuteApiEndpoint=False)
    ),
    "fleet-carries-peak-with-zone-lost": lambda p: props(p, G, "", lambda d: d.update(maxSize=40)),
    "inbox-dead-letters-kept-longer": lambda p: props(
        p, QUEUE, "inbox-dlq", lambda d: d.update(messageRetentionSeconds=345_600)
    ),
    "inbox-encrypted-with-its-own-key": lambda p: props(
        p, QUEUE, "-inbox", lambda d: d.update(kmsMasterKeyId="alias/aws/sqs")
    ),
    "inbox-uploads-private-and-encrypted": lambda p: props(
        p,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "-inbox-uploads",
        lambda d: d["rules"][0].update(
            applyServerSideEncryptionByDefault={"sseAlgorithm": "AES256"}
        ),
    ),
    "inbox-oldest-submission-alarmed": lambda p: drop_named(p, ALARM, "-inbox-oldest"),
    "inbox-accept-path-skips-the-fleet": lambda p: props(
        p, DIST, "", lambda d: _behaviour(d, "/submit/*").update(targetOriginId="alb")
    ),
    "stateful-resources-protected": lambda p: edit(p, TABLE, "-room", protect=False),
    "alarms-reach-a-topic": lambda p: props(
        p,
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "fleet-at-max",
        lambda d: d.update(alarmActions=[]),
    ),
    "fsbp-ec2-2-default-security-group-closed": lambda p: props(
        p,
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "",
        lambda d: d.update(ingress=[{"protocol": "-1", "self": True}]),
    ),
    "fsbp-ec2-6-vpc-flow-logs": lambda p: drop(p, "aws:ec2/flowLog:FlowLog"),
    "fsbp-waf-11-web-acl-logging": lambda p: props(
        p,
        "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
        "",
        lambda d: d.update(redactedFields=[]),
    ),
    "fsbp-elb-load-balancer": lambda p: props(
        p, "aws:lb/loadBalancer:LoadBalancer", "", lambda d: d.update(dropInvalidHeaderFields=False)
    ),
    "fsbp-elb-listener-tls": lambda p: props(
        p, "aws:lb/listener:Listener", "", lambda d: d.update(sslPolicy="ELBSecurityPolicy-2016-08")
    ),
    "fsbp-cloudfront-distribution": lambda p: props(
        p, DIST, "", lambda d: d["defaultCacheBehavior"].update(viewerProtocolPolicy="allow-all")
    ),
    "fsbp-cloudfront-7-custom-certificate": lambda p: props(
        p, DIST, "", lambda d: d.update(viewerCertificate={"cloudfrontDefaultCertificate": True})
    ),
    "fsbp-autoscaling-group": lambda p: props(p, G, "", lambda d: d.update(healthCheckType="EC2")),
    "fsbp-autoscaling-6-instance-types": lambda p: props(p, G, "", lambda d: d.pop("warmPool")),
    "fsbp-launch-template": lambda p: props(
        p,
        "aws:ec2/launchTemplate:LaunchTemplate",
        "",
        lambda d: d["metadataOptions"].update(httpTokens="optional"),
    ),
    "fsbp-s3-buckets": lambda p: props(
        p,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "pages",
        lambda d: d.update(restrictPublicBuckets=False),
    ),
    "fsbp-dynamodb-2-pitr": lambda p: props(
        p, TABLE, "", lambda d: d.update(pointInTimeRecovery={"enabled": False})
    ),
    "fsbp-lambda-2-runtime": lambda p: props(
        p, FN, "admin", lambda d: d.update(runtime="python3.8")
    ),
    "fsbp-sns-encrypted": lambda p: props(
        p, "aws:sns/topic:Topic", "", lambda d: d.pop("kmsMasterKeyId")
    ),
    "fsbp-kms-4-rotation": lambda p: props(
        p, "aws:kms/key:Key", "", lambda d: d.update(enableKeyRotation=False)
    ),
    "service-trust-names-the-account": lambda p: props(
        p, "aws:iam/role:Role", "-room-join", lambda d: d.update(assumeRolePolicy=_trust({}))
    ),
    "fsbp-apigateway-9-access-logs": lambda p: props(
        p, "aws:apigatewayv2/stage:Stage", "", lambda d: d.pop("accessLogSettings")
    ),
}


def _trust(condition: dict[str, Any], service: str | list[str] = "lambda.amazonaws.com") -> str:
    """A trust policy letting `service` assume the role under `condition` (none if empty)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": {"Service": service},
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_every_rule_has_a_breaking_case() -> None:
    assert set(BREAKS) == {rule.name for rule in RULES}


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_rule_fails_on_the_resource_that_breaks_it(rule: str) -> None:
    verdicts = evaluate(BREAKS[rule](plan()))
    assert rule in failing(verdicts)
    failures = [v for v in verdicts if v.rule == rule and v.outcome == "fail"]
    for v in failures:
        assert "https://" in v.message, "every message links the rule's documentation"
        assert " = " in v.message, "every message names the property and its value"


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_passes_the_pack(stack: str) -> None:
    verdicts = evaluate(plan(stack))
    assert failing(verdicts) == set(), "\n".join(table(verdicts, failures_only=True))
    applied = {v.rule for v in verdicts}
    assert applied == {rule.name for rule in RULES}, "every rule found something to check"


def _fails(resources: Plan, rule: str) -> list[Verdict]:
    return [v for v in evaluate(resources) if v.rule == rule and v.outcome == "fail"]


@pytest.mark.parametrize("left_out", ["minSize", "maxSize", "desiredCapacity"])
def test_a_scheduled_action_whose_size_pulumi_would_revert_fails(left_out: str) -> None:
    """The runner owns the actions' sizes: a refresh putting the plan's MaxSize back cut a
    group an operator had raised."""
    kept = tuple(p for p in ("minSize", "maxSize", "desiredCapacity") if p != left_out)
    failures = _fails(
        edit(plan(), ACTION, "", ignore_changes=kept), "runtime-managed-values-ignored"
    )
    assert failures and all(left_out in v.message for v in failures)
    assert all(v.resource.startswith("Schedule ") for v in failures)


def test_a_reservation_on_create_passes_only_with_a_create_timeout_of_hours() -> None:
    reserved = reserve(plan())
    assert not _fails(reserved, "alb-reservation-not-waited-on-create"), (
        "the stack's ALB waits hours on create: an old reservation in state passes"
    )
    reserved = edit(reserved, LB, "", create_timeout_s=0)
    (failure,) = _fails(reserved, "alb-reservation-not-waited-on-create")
    assert "'createTimeoutSeconds': 0" in failure.message
    patient = edit(reserved, LB, "", create_timeout_s=4 * 3600)
    assert not _fails(patient, "alb-reservation-not-waited-on-create")
    hurried = edit(reserved, LB, "", create_timeout_s=3600)
    assert _fails(hurried, "alb-reservation-not-waited-on-create")


def both_hooks(resources: Plan, change: Callable[[dict], None]) -> Plan:
    """`change` applied to the group's initial launch hook and to its LifecycleHook alike."""
    props(resources, G, "", lambda d: change(d["initialLifecycleHooks"][0]))
    return props(resources, HOOK, "", change)


def test_an_existing_group_passes_on_its_own_lifecycle_hook() -> None:
    """The engine shows an existing group's ignored initial hooks as they were: none."""
    existing = props(plan(), G, "", lambda d: d.pop("initialLifecycleHooks"))
    assert not _fails(existing, "warm-pool-waits-for-bootstrap")


def test_a_launch_hook_shorter_than_a_cold_launch_fails() -> None:
    short = both_hooks(plan(), lambda h: h.update(heartbeatTimeout=120))
    (failure,) = _fails(short, "warm-pool-waits-for-bootstrap")
    assert "heartbeatTimeout = 120" in failure.message
    assert "shorter than prescale.cold_launch_s (300 s)" in failure.message
    terminating = both_hooks(
        plan(), lambda h: h.update(lifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING")
    )
    assert _fails(terminating, "warm-pool-waits-for-bootstrap"), "a terminate hook holds nothing"


def test_deliberate_departures_are_shown_as_documented_exceptions() -> None:
    prod = [v for v in evaluate(plan("prod")) if v.outcome == "exception"]
    assert [(v.rule, v.resource) for v in prod] == [
        ("runtime-managed-values-ignored", "SecretVersion floodgate-prod-origin-verify"),
        ("runtime-managed-values-ignored", "SecretVersion floodgate-prod-inbox-receipt"),
        ("fsbp-autoscaling-6-instance-types", "Group floodgate-prod"),
    ]
    assert prod[0].message == prod[1].message
    assert "hold Pulumi's own values" in prod[0].message
    assert "warm pool" in prod[2].message
    dev = [v for v in evaluate(plan("dev")) if v.outcome == "exception"]
    assert [v.rule for v in dev] == [
        "runtime-managed-values-ignored",
        "fsbp-cloudfront-7-custom-certificate",
    ]


def test_failure_names_resource_property_value_and_rule() -> None:
    verdicts = evaluate(BREAKS["waf-rate-limit-blocks"](plan()))
    (failure,) = [v for v in verdicts if v.outcome == "fail"]
    assert failure.resource == "WebAcl floodgate-prod"
    assert "rules[per-ip-rate-limit].action = 'count'" in failure.message
    assert "waf-rule-statement-type-rate-based" in failure.message
    assert "FAILS waf-rate-limit-blocks" in summary(verdicts)


def test_unknown_stack_is_a_clear_error_not_a_traceback(capsys) -> None:
    from scripts.policy import main

    assert main(["--stack", "nope"]) == 2
    err = capsys.readouterr().err
    assert "stack 'nope': no file" in err and "stacks: dev, pr, prod, staging" in err


def test_a_rule_with_nothing_to_hold_says_n_a_with_its_reason_not_pass() -> None:
    """A preview stack keeps nothing past its pull request, and the pr group has no warm pool:
    those rules are n/a there, counted apart, and still hold (pass) on prod."""
    pr = evaluate(plan("pr"))
    na = {(v.rule, v.message) for v in pr if v.outcome == "n/a"}
    assert na == {
        ("stateful-resources-protected", "a preview stack is destroyed with its pull request"),
        ("warm-pool-caps-prepared-capacity", "the group has no warm pool"),
        *(
            (rule, "no inbox (inbox.path_patterns is empty)")
            for rule in (
                "inbox-dead-letters-kept-longer",
                "inbox-encrypted-with-its-own-key",
                "inbox-uploads-private-and-encrypted",
                "inbox-oldest-submission-alarmed",
                "inbox-accept-path-skips-the-fleet",
            )
        ),
    }
    assert not [v for v in pr if v.rule == "stateful-resources-protected" and v.outcome == "pass"]
    counts = summary(pr)
    assert f"{sum(v.outcome == 'n/a' for v in pr)} n/a" in counts and " 0 fail" in counts
    prod = evaluate(plan("prod"))
    assert not [v for v in prod if v.outcome == "n/a"]
    protected = [v for v in prod if v.rule == "stateful-resources-protected"]
    assert protected and {v.outcome for v in protected} == {"pass"}
