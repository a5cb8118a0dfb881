"""Security baseline: the AWS Foundational Security Best Practices (FSBP) controls that apply
to Floodgate's resource types, each named by its Security Hub control id.

A control met on purpose in another way is a documented exception (see `Exemption`), shown in
`make policy` and reported by the engine as not applicable, with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs

from policies.apply_time import (
    T_BUCKET,
    T_DISTRIBUTION,
    T_FUNCTION,
    T_GROUP,
    T_KEY,
    T_LB,
    T_ROLE,
    T_TABLE,
    T_TOPIC,
    T_WEB_ACL,
    behaviours,
)
from policies.props import as_list, get, policy_document, statements
from policies.rule import Exemption, Finding, Resource, ResourceRule, StackRule, StackView

T_VPC = "aws:ec2/vpc:Vpc"
T_DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
T_WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
T_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
T_FLOW_LOG = "aws:ec2/flowLog:FlowLog"
T_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
T_LISTENER = "aws:lb/listener:Listener"
T_STAGE = "aws:apigatewayv2/stage:Stage"
T_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
T_PUBLIC_ACCESS = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SUPPORTED_LAMBDA_RUNTIMES = ("python3.12", "python3.13", "nodejs20.x", "nodejs22.x")
"""Lambda.2: runtimes AWS has not deprecated (Lambda runtimes page)."""
REDACTED_HEADERS = ("authorization", "cookie")


def _default_sg_closed(view: StackView) -> Iterator[Finding]:
    for vpc in view.of_type(T_VPC):
        adopted = [g for g in view.of_type(T_DEFAULT_SG) if vpc.urn in g.dependencies]
        if not adopted or any(
            as_list(get(g.props, "ingress")) or as_list(get(g.props, "egress")) for g in adopted
        ):
            yield Finding(
                "defaultSecurityGroup",
                [dict(g.props) for g in adopted] or None,
                "EC2.2: the VPC's default security group allows no inbound or outbound traffic "
                "(declare it with no rules)",
                vpc.urn,
                vpc.name,
            )


def _waf_logging(view: StackView) -> Iterator[Finding]:
    configs = view.of_type(T_WAF_LOGGING)
    for acl in view.of_type(T_WEB_ACL):
        mine = [c for c in configs if acl.urn in c.dependencies]
        if not mine:
            yield Finding("logging", None, "WAF.11: web ACL logging is enabled", acl.urn, acl.name)
            continue
        for config in mine:
            groups = [view.by_urn(u) for u in config.dependencies]
            names = [str(get(g.props, "name")) for g in groups if g and g.type == T_LOG_GROUP]
            if not names or not all(n.startswith("aws-waf-logs-") for n in names):
                yield Finding(
                    "logDestinationConfigs",
                    names,
                    "WAF logs go to a CloudWatch Logs group whose name starts aws-waf-logs-",
                    config.urn,
                    config.name,
                )
            redacted = {
                str(get(f, "singleHeader.name", "")).lower()
                for f in as_list(get(config.props, "redactedFields"))
            }
            missing = sorted(set(REDACTED_HEADERS) - redacted)
            if missing:
                yield Finding(
                    "redactedFields",
                    sorted(redacted),
                    f"visitors' {', '.join(missing)} headers are redacted from WAF logs",
                    config.urn,
                    config.name,
                )


def _alb_baseline(args: ResourceValidationArgs) -> Iterator[Finding]:
    p = args.props
    if not get(p, "dropInvalidHeaderFields"):
        yield Finding(
            "dropInvalidHeaderFields",
            get(p, "dropInvalidHeaderFields"),
            "ELB.4: invalid HTTP headers are dropped",
        )
    if not get(p, "accessLogs.enabled"):
        yield Finding(
            "accessLogs.enabled", get(p, "accessLogs.enabled"), "ELB.5: access logging is enabled"
        )
    if get(p, "desyncMitigationMode") not in ("defensive", "strictest"):
        yield Finding(
            "desyncMitigationMode",
            get(p, "desyncMitigationMode"),
            "ELB.12: desync mitigation is defensive or strictest",
        )
    if len(as_list(get(p, "subnets"))) < 2:
        yield Finding("subnets", get(p, "subnets"), "ELB.13: spans at least two zones")


def _listener_tls(args: ResourceValidationArgs) -> Iterator[Finding]:
    p = args.props
    if get(p, "protocol") == "HTTP":
        actions = [a.get("type") for a in as_list(get(p, "defaultActions"))]
        if actions != ["redirect"]:
            yield Finding("protocol", "HTTP", "ELB.1: plain HTTP listeners only redirect to HTTPS")
    elif get(p, "protocol") == "HTTPS" and not str(get(p, "sslPolicy", "")).startswith(
        "ELBSecurityPolicy-TLS13"
    ):
        yield Finding("sslPolicy", get(p, "sslPolicy"), "ELB.8: TLS 1.2+ security policy")


def _distribution_baseline(args: ResourceValidationArgs) -> Iterator[Finding]:
    p = dict(args.props)
    for pattern, behaviour in behaviours(p):
        if behaviour.get("viewerProtocolPolicy") not in ("redirect-to-https", "https-only"):
            yield Finding(
                f"behaviour {pattern}.viewerProtocolPolicy",
                behaviour.get("viewerProtocolPolicy"),
                "CloudFront.3: viewers use HTTPS",
            )
    if not get(p, "loggingConfig.bucket"):
        yield Finding("loggingConfig", None, "CloudFront.5: standard logging is enabled")
    if not get(p, "webAclId"):
        yield Finding("webAclId", None, "CloudFront.6: a WAF web ACL is associated")
    for origin in as_list(get(p, "origins")):
        custom = get(origin, "customOriginConfig")
        if custom is None:
            if not get(origin, "originAccessControlId"):
                yield Finding(
                    f"origin {origin.get('originId')}.originAccessControlId",
                    None,
                    "CloudFront.13: S3 origins use origin access control",
                )
            continue
        if get(custom, "originProtocolPolicy") != "https-only":
            yield Finding(
                f"origin {origin.get('originId')}.originProtocolPolicy",
                get(custom, "originProtocolPolicy"),
                "CloudFront.9: traffic to custom origins is encrypted",
            )
        if set(as_list(get(custom, "originSslProtocols"))) - {"TLSv1.2"}:
            yield Finding(
                f"origin {origin.get('originId')}.originSslProtocols",
                get(custom, "originSslProtocols"),
                "CloudFront.10: no deprecated SSL/TLS to origins",
            )


def _custom_certificate(args: ResourceValidationArgs) -> Iterator[Finding]:
    if get(args.props, "viewerCertificate.cloudfrontDefaultCertificate"):
        yield Finding(
            "viewerCertificate.cloudfrontDefaultCertificate",
            True,
            "CloudFront.7: the distribution uses a custom certificate",
        )


def _no_aliases(args: ResourceValidationArgs) -> bool:
    return not as_list(get(args.props, "aliases"))


def _group_baseline(args: ResourceValidationArgs) -> Iterator[Finding]:
    p = args.props
    if get(p, "healthCheckType") != "ELB":
        yield Finding(
            "healthCheckType", get(p, "healthCheckType"), "AutoScaling.1: ELB health checks"
        )
    if len(as_list(get(p, "vpcZoneIdentifiers"))) < 2:
        yield Finding(
            "vpcZoneIdentifiers",
            get(p, "vpcZoneIdentifiers"),
            "AutoScaling.2: the group spans several zones",
        )
    if get(p, "launchConfiguration"):
        yield Finding(
            "launchConfiguration",
            get(p, "launchConfiguration"),
            "AutoScaling.9: groups use launch templates",
        )


def _multiple_instance_types(args: ResourceValidationArgs) -> Iterator[Finding]:
    overrides = get(args.props, "mixedInstancesPolicy.launchTemplate.overrides")
    if len(as_list(overrides)) < 2:
        yield Finding(
            "mixedInstancesPolicy", None, "AutoScaling.6: the group uses several instance types"
        )


def _warm_pool_group(args: ResourceValidationArgs) -> bool:
    return get(args.props, "warmPool") is not None


def _launch_template_baseline(args: ResourceValidationArgs) -> Iterator[Finding]:
    p = args.props
    if get(p, "metadataOptions.httpTokens") != "required":
        yield Finding(
            "metadataOptions.httpTokens",
            get(p, "metadataOptions.httpTokens"),
            "AutoScaling.3 / EC2.8: IMDSv2 is required",
        )
    for i, nic in enumerate(as_list(get(p, "networkInterfaces"))):
        if str(get(nic, "associatePublicIpAddress", "false")).lower() == "true":
            yield Finding(
                f"networkInterfaces[{i}].associatePublicIpAddress",
                True,
                "AutoScaling.5: instances get no public IP",
            )


def _bucket_baseline(view: StackView) -> Iterator[Finding]:
    blocks = {get(b.props, "bucket"): b for b in view.of_type(T_PUBLIC_ACCESS)}
    policies = {get(b.props, "bucket"): b for b in view.of_type(T_BUCKET_POLICY)}
    keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in view.of_type(T_BUCKET):
        bucket_id = _id_of(bucket)
        block = blocks.get(bucket_id)
        if block is None or not all(get(block.props, k) for k in keys):
            current = None if block is None else dict(block.props)
            yield Finding(
                "publicAccessBlock",
                current,
                "S3.8: all public access is blocked",
                bucket.urn,
                bucket.name,
            )
        policy = policies.get(bucket_id)
        document = policy_document(get(policy.props, "policy") if policy else None)
        arn = f"arn:aws:s3:::{bucket_id}"
        if not any(_denies_plain_http(s, arn) for s in statements(document)):
            yield Finding("policy", None, "S3.5: requests must use SSL", bucket.urn, bucket.name)


def _denies_plain_http(statement: Mapping[str, Any], bucket_arn: str) -> bool:
    """A Deny of every S3 action, to everyone, on the bucket and its objects, when the request
    is not over TLS: any narrower Deny leaves plain HTTP open somewhere (S3.5)."""
    principal = statement.get("Principal")
    return (
        statement.get("Effect") == "Deny"
        and get(statement, "Condition.Bool.aws:SecureTransport") == "false"
        and (principal == "*" or get(statement, "Principal.AWS") == "*")
        and "s3:*" in as_list(statement.get("Action"))
        and {bucket_arn, f"{bucket_arn}/*"} <= set(as_list(statement.get("Resource")))
    )


def _id_of(bucket: Resource) -> str:
    """A bucket's dependants name it by its id, which for S3 is its name (`bucket`)."""
    return str(get(bucket.props, "bucket") or bucket.name)


def _table_baseline(args: ResourceValidationArgs) -> Iterator[Finding]:
    if not get(args.props, "pointInTimeRecovery.enabled"):
        yield Finding(
            "pointInTimeRecovery.enabled",
            get(args.props, "pointInTimeRecovery.enabled"),
            "DynamoDB.2: point-in-time recovery is enabled",
        )


def _lambda_baseline(args: ResourceValidationArgs) -> Iterator[Finding]:
    runtime = get(args.props, "runtime")
    if runtime not in SUPPORTED_LAMBDA_RUNTIMES:
        yield Finding("runtime", runtime, "Lambda.2: a supported runtime")


def _topic_encrypted(args: ResourceValidationArgs) -> Iterator[Finding]:
    if not get(args.props, "kmsMasterKeyId"):
        yield Finding("kmsMasterKeyId", None, "SNS.1: topics are encrypted at rest with KMS")


def _key_rotation(args: ResourceValidationArgs) -> Iterator[Finding]:
    if not get(args.props, "enableKeyRotation"):
        yield Finding(
            "enableKeyRotation",
            get(args.props, "enableKeyRotation"),
            "KMS.4: key rotation is enabled",
        )


def _stage_logging(args: ResourceValidationArgs) -> Iterator[Finding]:
    if not get(args.props, "accessLogSettings.destinationArn"):
        yield Finding("accessLogSettings", None, "APIGateway.9: stages have access logging")


def _flow_logs(view: StackView) -> Iterator[Finding]:
    for vpc in view.of_type(T_VPC):
        if not any(vpc.urn in f.dependencies for f in view.of_type(T_FLOW_LOG)):
            yield Finding("flowLogs", None, "EC2.6: VPC flow logging is enabled", vpc.urn, vpc.name)


NO_SOURCE_CONTEXT = ("ec2.amazonaws.com",)
"""Services that send no aws:SourceAccount when they assume a role: a trust condition on it would
refuse them. EC2 assumes an instance profile's role only for instances launched in the role's
own account (iam:PassRole cannot pass a role across accounts), so there is no other account to
confuse it for."""
SOURCE_OPERATORS = ("StringEquals", "ArnEquals", "ArnLike")
"""Operators that name the account: StringNotEquals, Null or a wildcard account would not."""


def _names_an_account(key: str, value: Any) -> bool:
    """Every value of the condition names one account: 12 digits, or an ARN whose account
    field is 12 digits (a wildcard account names none)."""
    values = as_list(value)
    if key == "aws:sourceaccount":
        return bool(values) and all(re.fullmatch(r"\d{12}", str(v)) for v in values)
    if key == "aws:sourcearn":
        return bool(values) and all(
            len(parts := str(v).split(":")) >= 6 and re.fullmatch(r"\d{12}", parts[4])
            for v in values
        )
    return False


def _trust_names_the_account(args: ResourceValidationArgs) -> Iterator[Finding]:
    """Every service a role trusts (but those in NO_SOURCE_CONTEXT) may assume it only for this
    account: aws:SourceAccount or aws:SourceArn in the statement's condition."""
    for statement in statements(policy_document(get(args.props, "assumeRolePolicy"))):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
        if not [svc for svc in services if svc not in NO_SOURCE_CONTEXT]:
            continue
        condition = statement.get("Condition")
        named = any(
            _names_an_account(key.lower(), value)
            for operator, test in (condition.items() if isinstance(condition, Mapping) else [])
            if operator in SOURCE_OPERATORS and isinstance(test, Mapping)
            for key, value in test.items()
        )
        if not named:
            yield Finding(
                "assumeRolePolicy",
                services,
                "a service principal's trust names the account (aws:SourceAccount or "
                "aws:SourceArn): cross-service confused-deputy prevention",
            )


_HUB = "https://docs.aws.amazon.com/securityhub/latest/userguide"
RULES = [
    StackRule(
        "fsbp-ec2-2-default-security-group-closed",
        "baseline",
        "EC2.2: the VPC default security group has no rules",
        f"{_HUB}/ec2-controls.html#ec2-2",
        _default_sg_closed,
    ),
    StackRule(
        "fsbp-ec2-6-vpc-flow-logs",
        "baseline",
        "EC2.6: VPC flow logging",
        f"{_HUB}/ec2-controls.html#ec2-6",
        _flow_logs,
    ),
    StackRule(
        "fsbp-waf-11-web-acl-logging",
        "baseline",
        "WAF.11: web ACL logging, cookie and authorization headers redacted",
        f"{_HUB}/waf-controls.html#waf-11",
        _waf_logging,
    ),
    ResourceRule(
        "fsbp-elb-load-balancer",
        "baseline",
        "ELB.4, ELB.5, ELB.12, ELB.13: headers, logs, desync, zones",
        f"{_HUB}/elb-controls.html",
        (T_LB,),
        _alb_baseline,
    ),
    ResourceRule(
        "fsbp-elb-listener-tls",
        "baseline",
        "ELB.1, ELB.8: HTTPS with TLS 1.2+",
        f"{_HUB}/elb-controls.html",
        (T_LISTENER,),
        _listener_tls,
    ),
    ResourceRule(
        "fsbp-cloudfront-distribution",
        "baseline",
        "CloudFront.3, .5, .6, .9, .10, .13: HTTPS, logs, WAF, origin encryption, OAC",
        f"{_HUB}/cloudfront-controls.html",
        (T_DISTRIBUTION,),
        _distribution_baseline,
    ),
    ResourceRule(
        "fsbp-cloudfront-7-custom-certificate",
        "baseline",
        "CloudFront.7: custom SSL/TLS certificate",
        f"{_HUB}/cloudfront-controls.html#cloudfront-7",
        (T_DISTRIBUTION,),
        _custom_certificate,
        Exemption(
            "a stack with no domain names of its own (dev, PR previews) is "
            "reached on *.cloudfront.net, which only the default certificate "
            "covers",
            _no_aliases,
        ),
    ),
    ResourceRule(
        "fsbp-autoscaling-group",
        "baseline",
        "AutoScaling.1, .2, .9: ELB health checks, zones, launch templates",
        f"{_HUB}/autoscaling-controls.html",
        (T_GROUP,),
        _group_baseline,
    ),
    ResourceRule(
        "fsbp-autoscaling-6-instance-types",
        "baseline",
        "AutoScaling.6: several instance types",
        f"{_HUB}/autoscaling-controls.html#autoscaling-6",
        (T_GROUP,),
        _multiple_instance_types,
        Exemption(
            "AWS cannot attach a warm pool to a group with a mixed instances "
            "policy; prod trades type diversity for instances in service in "
            "30-60 s",
            _warm_pool_group,
        ),
    ),
    ResourceRule(
        "fsbp-launch-template",
        "baseline",
        "AutoScaling.3, .5 / EC2.8: IMDSv2, no public IPs",
        f"{_HUB}/autoscaling-controls.html",
        (T_LAUNCH_TEMPLATE,),
        _launch_template_baseline,
    ),
    StackRule(
        "fsbp-s3-buckets",
        "baseline",
        "S3.5, S3.8: TLS only, public access blocked",
        f"{_HUB}/s3-controls.html",
        _bucket_baseline,
    ),
    ResourceRule(
        "fsbp-dynamodb-2-pitr",
        "baseline",
        "DynamoDB.2: point-in-time recovery",
        f"{_HUB}/dynamodb-controls.html#dynamodb-2",
        (T_TABLE,),
        _table_baseline,
    ),
    ResourceRule(
        "fsbp-lambda-2-runtime",
        "baseline",
        "Lambda.2: supported runtimes",
        f"{_HUB}/lambda-controls.html#lambda-2",
        (T_FUNCTION,),
        _lambda_baseline,
    ),
    ResourceRule(
        "fsbp-sns-encrypted",
        "baseline",
        "SNS.1: topics encrypted with KMS",
        f"{_HUB}/sns-controls.html",
        (T_TOPIC,),
        _topic_encrypted,
    ),
    ResourceRule(
        "fsbp-kms-4-rotation",
        "baseline",
        "KMS.4: key rotation",
        f"{_HUB}/kms-controls.html#kms-4",
        (T_KEY,),
        _key_rotation,
    ),
    ResourceRule(
        "service-trust-names-the-account",
        "baseline",
        "service roles: aws:SourceAccount in the trust (confused deputy)",
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html",
        (T_ROLE,),
        _trust_names_the_account,
    ),
    ResourceRule(
        "fsbp-apigateway-9-access-logs",
        "baseline",
        "APIGateway.9: access logging",
        f"{_HUB}/apigateway-controls.html#apigateway-9",
        (T_STAGE,),
        _stage_logging,
    ),
]
