"""Internet-facing ALB that only CloudFront can reach, with its target group and access logs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.private_bucket import PrivateBucket, PrivateBucketArgs
from functions.admission.room import ORIGIN_HEADER
from planning import aws_facts
from planning.settings import LoadBalancerSettings

CLOUDFRONT_ORIGIN_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"
RESERVATION_CREATE_TIMEOUT = "4h"
"""AWS fulfils an LCU reservation "within a few minutes, but can take up to a few hours"."""


@dataclass(frozen=True, kw_only=True)
class LoadBalancerArgs:
    settings: LoadBalancerSettings
    region: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    public_subnet_ids: list[pulumi.Output[str]]
    origin_secrets: list[pulumi.Input[str]]
    """Every value CloudFront may send: both rotation slots, so a slot switch never 403s."""
    tags: dict[str, str]
    ephemeral: bool = False
    """PR previews: destroy deletes the access-log bucket with its logs; nothing protected."""


class LoadBalancer(pulumi.ComponentResource):
    """ALB: 443 only from CloudFront's origin-facing prefix list, 403 without the origin secret."""

    alb: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    security_group: aws.ec2.SecurityGroup
    https_listener: aws.lb.Listener
    forward_rule: aws.lb.ListenerRule
    """Attaches the target group to the ALB: request-count scaling must wait for it."""
    alb_arn_suffix: pulumi.Output[str]
    """`app/<name>/<id>`: the LoadBalancer dimension of the ALB's metrics."""
    target_group_arn_suffix: pulumi.Output[str]
    """`targetgroup/<name>/<id>`: the TargetGroup dimension."""
    request_count_label: pulumi.Output[str]
    """`<alb arn suffix>/<target group arn suffix>`: ALBRequestCountPerTarget's resource label."""

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:load_balancer:LoadBalancer", name, None, opts)
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        logs = PrivateBucket(
            f"{name}-access-logs",
            PrivateBucketArgs(
                tags=args.tags,
                expire_after_days=s.access_log_expiry_days,
                force_destroy=args.ephemeral,
                protect=not args.ephemeral,
                grants=lambda arn: pulumi.Output.all(arn, account).apply(
                    lambda a: [_log_delivery_grant(a[0], args.region, a[1])]
                ),
            ),
            opts=self._child,
        )
        self.security_group = self._declare_security_group()
        self.alb = self._declare_alb(logs)
        self.target_group = self._declare_target_group()
        self._declare_listener()
        if s.hosted_zone_id:
            self._declare_origin_record(s.hosted_zone_id)
        self.alb_arn_suffix = self.alb.arn_suffix
        self.target_group_arn_suffix = self.target_group.arn_suffix
        self.request_count_label = pulumi.Output.concat(
            self.alb_arn_suffix, "/", self.target_group_arn_suffix
        )
        self.register_outputs(
            {
                "alb_arn": self.alb.arn,
                "alb_dns_name": self.alb.dns_name,
                "target_group_arn": self.target_group.arn,
            }
        )

    def _declare_security_group(self) -> aws.ec2.SecurityGroup:
        """HTTPS in from CloudFront's origin-facing prefix list only; out to the app port in
        the VPC only."""
        name, args = self._name, self._args
        port = args.settings.app_port
        prefix_list = aws.ec2.get_managed_prefix_list_output(
            name=CLOUDFRONT_ORIGIN_PREFIX_LIST, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        return aws.ec2.SecurityGroup(
            f"{name}-alb",
            vpc_id=args.vpc_id,
            description="ALB: HTTPS from CloudFront origin-facing addresses only",
            ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                      "prefix_list_ids": [prefix_list.id],
                      "description": "CloudFront origin-facing"}],
            egress=[{"protocol": "tcp", "from_port": port, "to_port": port,
                     "cidr_blocks": [args.vpc_cidr], "description": "to targets in the VPC"}],
            tags={**args.tags, "Name": f"{name}-alb"},
            opts=self._child,
        )  # fmt: skip

    def _declare_alb(self, logs: PrivateBucket) -> aws.lb.LoadBalancer:
        """The ALB, logging to `logs`, created with no LCU reservation: the provider would wait
        for one to be provisioned (its 10-minute create timeout) before applying the
        attributes (access logs, deletion protection, desync mode), and AWS fulfils a
        reservation "within a few minutes, but can take up to a few hours". The pre-scale
        runner sets the standing level after the create and steps it around events; Pulumi
        ignores it, so a refresh never puts one back (nor spends one of two daily decreases)."""
        s = self._args.settings
        return aws.lb.LoadBalancer(
            self._name,
            load_balancer_type="application",
            internal=False,
            subnets=self._args.public_subnet_ids,
            security_groups=[self.security_group.id],
            drop_invalid_header_fields=True,
            enable_deletion_protection=s.deletion_protection,
            idle_timeout=s.idle_timeout_s,
            enable_http2=True,
            desync_mitigation_mode="strictest",
            access_logs={"bucket": logs.bucket.bucket, "enabled": True, "prefix": "alb"},
            tags=self._args.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[logs.policy],
                ignore_changes=["minimumLoadBalancerCapacity"],
                # Only a create with a reservation waits on it, and none is asked for here; an
                # ALB created with one before keeps it in state (ignored), which the engine
                # shows the policy pack: hours, as AWS may take, if one is ever asked for.
                custom_timeouts=pulumi.CustomTimeouts(create=RESERVATION_CREATE_TIMEOUT),
            ),
        )

    def _declare_target_group(self) -> aws.lb.TargetGroup:
        """The instances on the app port, health-checked every 10 s."""
        s = self._args.settings
        return aws.lb.TargetGroup(
            self._name,
            vpc_id=self._args.vpc_id,
            port=s.app_port,
            protocol="HTTP",
            target_type="instance",
            deregistration_delay=s.deregistration_delay_s,
            slow_start=s.slow_start_s,
            load_balancing_algorithm_type=s.load_balancing_algorithm,
            health_check={
                "path": s.health_check_path,
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 10,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags=self._args.tags,
            opts=self._child,
        )

    def _declare_listener(self) -> None:
        """HTTPS only (the security group admits CloudFront on 443 and nothing else, so a
        port-80 listener could never be reached): 403 by default, forwarded to the targets
        only with an origin secret in ORIGIN_HEADER, which CloudFront adds."""
        name, s, tags = self._name, self._args.settings, self._args.tags
        self.https_listener = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=self.alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=s.tls_policy,
            certificate_arn=s.certificate_arn,
            default_actions=[
                {
                    "type": "fixed-response",
                    "fixed_response": {
                        "status_code": "403",
                        "content_type": "text/plain",
                        "message_body": "Forbidden",
                    },
                }
            ],
            tags=tags,
            opts=self._child,
        )
        self.forward_rule = aws.lb.ListenerRule(
            f"{name}-from-cloudfront",
            listener_arn=self.https_listener.arn,
            priority=100,
            conditions=[
                {
                    "http_header": {
                        "http_header_name": ORIGIN_HEADER,
                        "values": self._args.origin_secrets,
                    }
                }
            ],
            actions=[{"type": "forward", "target_group_arn": self.target_group.arn}],
            tags=tags,
            opts=self._child,
        )

    def _declare_origin_record(self, zone_id: str) -> None:
        """The alias record for `origin_domain_name` in the stack's hosted zone."""
        aws.route53.Record(
            f"{self._name}-origin",
            zone_id=zone_id,
            name=self._args.settings.origin_domain_name,
            type="A",
            aliases=[
                {
                    "name": self.alb.dns_name,
                    "zone_id": self.alb.zone_id,
                    "evaluate_target_health": True,
                }
            ],
            opts=self._child,
        )


def _log_delivery_grant(bucket_arn: str, region: str, account: str) -> dict[str, object]:
    """Who may write ALB access logs: the regional ELB account, or the log-delivery service, and
    only under this account's own key (`alb/AWSLogs/<account>/`, where ELB writes them): the
    ELB account writes for every customer, so the key is what keeps another account's load
    balancer out of this bucket ("Enable access logs for your Application Load Balancer")."""
    elb = aws_facts.ELB_LOG_ACCOUNTS.get(region)
    principal: dict[str, str] = (
        {"AWS": f"arn:aws:iam::{elb}:root"}
        if elb
        else {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    )
    return {
        "Sid": "AlbAccessLogs",
        "Effect": "Allow",
        "Principal": principal,
        "Action": "s3:PutObject",
        "Resource": f"{bucket_arn}/alb/AWSLogs/{account}/*",
    }
