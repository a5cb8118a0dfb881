"""Every check inside a rule fails on its own, not only the one case per rule in test_rules.py.

Each case breaks prod's offline plan (which passes) in exactly one way a change could, and the
named rule must fail on it. The AWS figure or control behind each is in the rule's message and
documentation link; where a case sits on a boundary, the value on the passing side is a case of
its own in `test_the_boundary_values_that_are_allowed_pass`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from policies.offline import evaluate
from tests.policies.test_rules import (
    ACL,
    DIST,
    FN,
    LB,
    TABLE,
    Plan,
    _behaviour,
    _trust,
    drop,
    edit,
    failing,
    plan,
    props,
)

INVOKE = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ROLE = "aws:iam/role:Role"


def _origin(d: dict, origin_id: str) -> dict:
    return next(o for o in d["origins"] if o["originId"] == origin_id)


def _tls_statement(change: Callable[[dict], None]) -> Callable[[dict], None]:
    """Edit the pages bucket policy's TLS-only statement (the policy is a JSON string)."""

    def apply(d: dict) -> None:
        document = json.loads(d["policy"])
        change(next(s for s in document["Statement"] if s.get("Sid") == "TlsOnly"))
        d["policy"] = json.dumps(document)

    return apply


CASES: dict[str, tuple[str, Callable[[Plan], Plan]]] = {
    # ELB.12: only "defensive" and "strictest" mitigate request smuggling.
    "alb desync monitor": (
        "fsbp-elb-load-balancer",
        lambda p: props(p, LB, "", lambda d: d.update(desyncMitigationMode="monitor")),
    ),
    "alb no access logs": (
        "fsbp-elb-load-balancer",
        lambda p: props(p, LB, "", lambda d: d["accessLogs"].update(enabled=False)),
    ),
    "alb in one subnet": (
        "fsbp-elb-load-balancer",
        lambda p: props(p, LB, "", lambda d: d.update(subnets=d["subnets"][:1])),
    ),
    # CloudFront.10: TLSv1 (or SSLv3, TLSv1.1) to an origin is deprecated.
    "tls 1.0 to the origin": (
        "fsbp-cloudfront-distribution",
        lambda p: props(
            p,
            DIST,
            "",
            lambda d: _origin(d, "alb")["customOriginConfig"].update(
                originSslProtocols=["TLSv1", "TLSv1.2"]
            ),
        ),
    ),
    "origin over http": (
        "fsbp-cloudfront-distribution",
        lambda p: props(
            p,
            DIST,
            "",
            lambda d: _origin(d, "alb")["customOriginConfig"].update(
                originProtocolPolicy="match-viewer"
            ),
        ),
    ),
    "bucket origin without oac": (
        "fsbp-cloudfront-distribution",
        lambda p: props(
            p, DIST, "", lambda d: _origin(d, "high-demand-pages").pop("originAccessControlId")
        ),
    ),
    "no web acl": (
        "fsbp-cloudfront-distribution",
        lambda p: props(p, DIST, "", lambda d: d.pop("webAclId")),
    ),
    "no standard logs": (
        "fsbp-cloudfront-distribution",
        lambda p: props(p, DIST, "", lambda d: d.pop("loggingConfig")),
    ),
    "an ordered behaviour over http": (
        "fsbp-cloudfront-distribution",
        lambda p: props(
            p, DIST, "", lambda d: _behaviour(d, "/api/*").update(viewerProtocolPolicy="allow-all")
        ),
    ),
    # EC2.2: a VPC whose default group is never adopted keeps AWS's allow-all-within rules.
    "default security group never adopted": (
        "fsbp-ec2-2-default-security-group-closed",
        lambda p: drop(p, SG),
    ),
    "default security group with egress": (
        "fsbp-ec2-2-default-security-group-closed",
        lambda p: props(p, SG, "", lambda d: d.update(egress=[{"protocol": "-1"}])),
    ),
    # S3.5: the Deny must cover every action, everyone, the bucket and its objects.
    "tls deny for one action only": (
        "fsbp-s3-buckets",
        lambda p: props(
            p, POLICY, "pages", _tls_statement(lambda s: s.update(Action="s3:GetObject"))
        ),
    ),
    "tls deny for one principal only": (
        "fsbp-s3-buckets",
        lambda p: props(
            p,
            POLICY,
            "pages",
            _tls_statement(lambda s: s.update(Principal={"AWS": "arn:aws:iam::123456789012:root"})),
        ),
    ),
    "tls deny on the objects only": (
        "fsbp-s3-buckets",
        lambda p: props(
            p, POLICY, "pages", _tls_statement(lambda s: s.update(Resource=s["Resource"][1:]))
        ),
    ),
    "tls deny that is an allow": (
        "fsbp-s3-buckets",
        lambda p: props(p, POLICY, "pages", _tls_statement(lambda s: s.update(Effect="Allow"))),
    ),
    # WAF.11 and the project's own redaction: cookies carry visitors' tokens.
    "waf logs keep cookies": (
        "fsbp-waf-11-web-acl-logging",
        lambda p: props(
            p,
            WAF_LOGGING,
            "",
            lambda d: d.update(redactedFields=[{"singleHeader": {"name": "authorization"}}]),
        ),
    ),
    "waf without logging": ("fsbp-waf-11-web-acl-logging", lambda p: drop(p, WAF_LOGGING)),
    # Runtime-managed values: each one Pulumi would revert on the next `pulumi up`.
    "group ignores desired but not min": (
        "runtime-managed-values-ignored",
        lambda p: edit(
            p,
            "aws:autoscaling/group:Group",
            "",
            ignore_changes=("desiredCapacity", "maxSize", "warmPool"),
        ),
    ),
    "reservation pulumi would revert": (
        "runtime-managed-values-ignored",
        lambda p: edit(
            props(
                p, LB, "", lambda d: d.update(minimumLoadBalancerCapacity={"capacityUnits": 100})
            ),
            LB,
            "",
            ignore_changes=(),
        ),
    ),
    # A one-minute schedule: a 60 s timeout overlaps the next run (>=, not >).
    "inlet timeout equal to its period": (
        "scheduled-functions-bounded",
        lambda p: props(p, FN, "inlet", lambda d: d.update(timeout=60)),
    ),
    "inlet retried once": (
        "scheduled-functions-bounded",
        lambda p: props(p, INVOKE, "inlet", lambda d: d.update(maximumRetryAttempts=1)),
    ),
    "inlet event kept past its period": (
        "scheduled-functions-bounded",
        lambda p: props(p, INVOKE, "inlet", lambda d: d.update(maximumEventAgeInSeconds=61)),
    ),
    "inlet without an invoke config": (
        "scheduled-functions-bounded",
        lambda p: [r for r in p if not (r.type == INVOKE and "inlet" in r.name)],
    ),
    # Stateful resources: every one of them, and DynamoDB's own deletion protection.
    "table without deletion protection": (
        "stateful-resources-protected",
        lambda p: props(p, TABLE, "", lambda d: d.update(deletionProtectionEnabled=False)),
    ),
    "key-value store unprotected": (
        "stateful-resources-protected",
        lambda p: edit(p, "aws:cloudfront/keyValueStore:KeyValueStore", "", protect=False),
    ),
    "signing secret unprotected": (
        "stateful-resources-protected",
        lambda p: edit(p, "aws:secretsmanager/secret:Secret", "signing-keys", protect=False),
    ),
    "log bucket unprotected": (
        "stateful-resources-protected",
        lambda p: edit(p, "aws:s3/bucket:Bucket", "logs", protect=False),
    ),
    # Prod names a subscriber: a topic nobody subscribes to tells nobody.
    "no subscription at all": (
        "alarms-reach-a-topic",
        lambda p: drop(p, "aws:sns/topicSubscription:TopicSubscription"),
    ),
    # WAF's per-IP rule must block; counting only would let any rate through.
    "per-ip limit only counts": (
        "waf-rate-limit-blocks",
        lambda p: props(
            p,
            ACL,
            "",
            lambda d: next(r for r in d["rules"] if r["name"] == "per-ip-rate-limit").update(
                action={"count": {}}
            ),
        ),
    ),
    # Confused deputy: a service's trust must name the account, for every service it names.
    "a lambda role trusted with no condition": (
        "service-trust-names-the-account",
        lambda p: props(p, ROLE, "-prescale", lambda d: d.update(assumeRolePolicy=_trust({}))),
    ),
    "a scheduler role trusted on another condition only": (
        "service-trust-names-the-account",
        lambda p: props(
            p,
            ROLE,
            "-inlet-schedule",
            lambda d: d.update(
                assumeRolePolicy=_trust(
                    {"StringEquals": {"aws:PrincipalTag/team": "portal"}},
                    "scheduler.amazonaws.com",
                )
            ),
        ),
    ),
    "a trust that excludes the account instead of naming it": (
        "service-trust-names-the-account",
        lambda p: props(
            p,
            ROLE,
            "-prescale",
            lambda d: d.update(
                assumeRolePolicy=_trust({"StringNotEquals": {"aws:SourceAccount": "123456789012"}})
            ),
        ),
    ),
    "a trust on any account's source arn": (
        "service-trust-names-the-account",
        lambda p: props(
            p,
            ROLE,
            "-prescale",
            lambda d: d.update(
                assumeRolePolicy=_trust({"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:*:*"}})
            ),
        ),
    ),
    "ec2 beside a service that sends the key": (
        "service-trust-names-the-account",
        lambda p: props(
            p,
            ROLE,
            "-flow-logs",
            lambda d: d.update(
                assumeRolePolicy=_trust({}, ["ec2.amazonaws.com", "vpc-flow-logs.amazonaws.com"])
            ),
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_check_fails_on_its_own(case: str) -> None:
    rule, breaks = CASES[case]
    verdicts = evaluate(breaks(plan()))
    assert rule in failing(verdicts), case


@pytest.mark.parametrize(
    ("rule", "breaks"),
    [
        # 59 s on a 60 s schedule fits (the check is >=).
        (
            "scheduled-functions-bounded",
            lambda p: props(p, FN, "inlet", lambda d: d.update(timeout=59)),
        ),
        # An event age equal to the period is allowed.
        (
            "scheduled-functions-bounded",
            lambda p: props(p, INVOKE, "inlet", lambda d: d.update(maximumEventAgeInSeconds=60)),
        ),
        # "strictest" is the other accepted desync mode.
        (
            "fsbp-elb-load-balancer",
            lambda p: props(p, LB, "", lambda d: d.update(desyncMitigationMode="strictest")),
        ),
        # The TLS-only Deny may name the principal as {"AWS": "*"}.
        (
            "fsbp-s3-buckets",
            lambda p: props(
                p, POLICY, "pages", _tls_statement(lambda s: s.update(Principal={"AWS": "*"}))
            ),
        ),
        # aws:SourceArn is the other way to name the account, in any condition operator and
        # any key case (IAM condition keys are case-insensitive).
        (
            "service-trust-names-the-account",
            lambda p: props(
                p,
                ROLE,
                "-prescale",
                lambda d: d.update(
                    assumeRolePolicy=_trust(
                        {"ArnLike": {"AWS:SourceArn": "arn:aws:lambda:*:123456789012:*"}}
                    )
                ),
            ),
        ),
        # EC2 sends no source context: its instance role needs no condition.
        (
            "service-trust-names-the-account",
            lambda p: props(
                p,
                ROLE,
                "-instance",
                lambda d: d.update(assumeRolePolicy=_trust({}, "ec2.amazonaws.com")),
            ),
        ),
    ],
)
def test_the_boundary_values_that_are_allowed_pass(rule: str, breaks) -> None:
    assert rule not in failing(evaluate(breaks(plan())))
