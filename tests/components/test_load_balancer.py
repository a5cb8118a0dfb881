"""Load balancer: reachable only from CloudFront, 403 without the origin secret."""

from __future__ import annotations

import json

import pulumi
from pulumi.runtime import rpc

from components.load_balancer import LoadBalancer, LoadBalancerArgs
from functions.admission.room import ORIGIN_HEADER
from planning import aws_facts
from scripts.offline_cloud import INVOKE_RESULTS

PREFIX_LIST = INVOKE_RESULTS["aws:ec2/getManagedPrefixList:getManagedPrefixList"]["id"]


def build(evaluate, settings, secret: str = "s3cret"):
    return evaluate(
        lambda: LoadBalancer(
            "lb",
            LoadBalancerArgs(
                settings=settings.load_balancer,
                region=settings.region,
                vpc_id="vpc-1",
                vpc_cidr=settings.network.vpc_cidr,
                public_subnet_ids=[pulumi.Output.from_input("subnet-a")],
                origin_secrets=[pulumi.Output.secret(secret), pulumi.Output.secret("next")],
                tags={},
            ),
        )
    )


def test_alb_accepts_443_only_from_the_cloudfront_prefix_list(evaluate, prod) -> None:
    group = build(evaluate, prod).one("aws:ec2/securityGroup:SecurityGroup")
    (rule,) = group.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (443, 443, "tcp")
    assert rule["prefixListIds"] == [PREFIX_LIST]
    assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks")


def test_https_listener_answers_403_by_default(evaluate, prod) -> None:
    https = next(
        r for r in build(evaluate, prod).of_type("aws:lb/listener:Listener") if r.name == "lb-https"
    )
    assert https.inputs["sslPolicy"] == prod.load_balancer.tls_policy
    (action,) = https.inputs["defaultActions"]
    assert action["type"] == "fixed-response"
    assert action["fixedResponse"]["statusCode"] == "403"


def test_only_requests_with_the_secret_header_are_forwarded(evaluate, prod) -> None:
    run = build(evaluate, prod, secret="from-cloudfront")
    rule = run.one("aws:lb/listenerRule:ListenerRule")
    assert rpc.is_rpc_secret(rule.inputs["conditions"]), "the secret must stay a Pulumi secret"
    (condition,) = rule.revealed()["conditions"]
    assert condition["httpHeader"] == {
        "httpHeaderName": ORIGIN_HEADER,
        "values": ["from-cloudfront", "next"],
    }, "both rotation slots: a slot switch never meets an edge still sending the other"
    (action,) = rule.revealed()["actions"]
    assert action["type"] == "forward"
    assert ":targetgroup/lb/" in action["targetGroupArn"]


def test_https_is_the_only_listener(evaluate, prod) -> None:
    """The security group admits 443 only: a port-80 listener could never be reached."""
    listeners = build(evaluate, prod).of_type("aws:lb/listener:Listener")
    assert [(r.inputs["port"], r.inputs["protocol"]) for r in listeners] == [(443, "HTTPS")]


def test_alb_hardening(evaluate, prod) -> None:
    alb = build(evaluate, prod).one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["dropInvalidHeaderFields"] is True
    assert alb["enableDeletionProtection"] is True
    assert alb["internal"] is False
    assert alb["accessLogs"]["enabled"] is True


def test_the_create_never_waits_on_a_reservation(evaluate, prod) -> None:
    """The provider waits up to its 10-minute create timeout for a reservation and applies the
    attributes after it; AWS may take hours. Prod's standing 100 LCUs are the runner's to set."""
    assert prod.load_balancer.minimum_capacity_units == 100
    alb = build(evaluate, prod).one("aws:lb/loadBalancer:LoadBalancer")
    assert "minimumLoadBalancerCapacity" not in alb.inputs
    # Should one ever be asked for on create, the wait is as long as AWS may take.
    assert alb.create_timeout_s == 4 * 3600


def test_reservation_is_left_to_the_prescale_job_after_creation(evaluate, prod) -> None:
    """A refresh must not undo an event's raise (and spend one of two daily decreases)."""
    alb = build(evaluate, prod).one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.ignore_changes == ("minimumLoadBalancerCapacity",)


def test_dev_can_be_deleted(evaluate, dev) -> None:
    alb = build(evaluate, dev).one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["enableDeletionProtection"] is False


def test_target_group_drains_and_ramps_on_purpose(evaluate, prod) -> None:
    group = build(evaluate, prod).one("aws:lb/targetGroup:TargetGroup").inputs
    assert group["deregistrationDelay"] == 30
    # AWS refuses slow start together with least outstanding requests.
    assert (group["slowStart"], group["loadBalancingAlgorithmType"]) == (
        0,
        "least_outstanding_requests",
    )
    assert group["healthCheck"]["path"] == "/healthz"
    assert group["port"] == prod.load_balancer.app_port


def test_access_logs_are_writable_only_by_the_regional_elb_account(evaluate, prod) -> None:
    policy = json.loads(
        build(evaluate, prod).one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
    )
    allow, deny = policy["Statement"]
    account = aws_facts.ELB_LOG_ACCOUNTS["ca-central-1"]
    assert allow["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
    assert allow["Action"] == "s3:PutObject"
    # Only under this account's key: the ELB account writes for every customer.
    assert allow["Resource"].endswith("/alb/AWSLogs/123456789012/*"), allow["Resource"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_alb_reaches_only_the_app_port_in_the_vpc(evaluate, prod) -> None:
    """Catches an ALB egress rule opened to the internet or to every port."""
    group = build(evaluate, prod).one("aws:ec2/securityGroup:SecurityGroup").inputs
    (rule,) = group["egress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 8080, 8080)
    assert rule["cidrBlocks"] == [prod.network.vpc_cidr] and prod.network.vpc_cidr != "0.0.0.0/0"


def test_alb_refuses_ambiguous_requests_and_idles_as_the_stack_says(evaluate, prod) -> None:
    """Catches desync mitigation weakened below strictest, or the idle timeout wired from
    another setting (prod's file says 60 s)."""
    alb = build(evaluate, prod).one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["desyncMitigationMode"] == "strictest"
    assert alb["idleTimeout"] == 60
    assert alb["enableHttp2"] is True


def test_a_target_is_healthy_only_on_a_200_and_out_after_30_s_of_failures(evaluate, prod) -> None:
    """Catches a matcher that passes an instance answering 404 or 500, or thresholds that keep
    a failing instance in service for minutes (3 failures, 10 s apart)."""
    check = build(evaluate, prod).one("aws:lb/targetGroup:TargetGroup").inputs["healthCheck"]
    assert check["matcher"] == "200"
    assert (check["interval"], check["timeout"]) == (10, 5)
    assert (check["healthyThreshold"], check["unhealthyThreshold"]) == (2, 3)
